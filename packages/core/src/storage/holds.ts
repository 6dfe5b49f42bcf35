// Holds: a plugin's word that some of a host's snapshots must not be deleted yet (plugin-restic:
// "not yet copied off-site"). One small file per host and holder, ROOT/.ssh-r-sync/holds/NAME/HOLDER.json,
// written by that holder only and read by rotation's plan (plugin-rotate, `ssh-r-sync-admin prune`),
// which keeps a held snapshot with the hold's reason. Holds never delete anything and never make a
// snapshot complete; an unreadable hold file is a held-nothing (rotation logs it), not a crash.
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from './durable.js';
import { validateName } from './host-dir.js';

/** What one holder holds of one host. */
export interface HoldRecord {
  schema: 1;
  holder: string;
  /** Why, in words a `prune --dry-run` reader understands: "not yet copied to offsite (restic)". */
  reason: string;
  ids: string[];
  at: string;
}

const MAX_HOLD_BYTES = 1024 * 1024;
const MAX_HOLDERS = 32;
const HOLDER = /^[a-z0-9][a-z0-9-]{0,63}$/;

function holdsDir(root: string, name: string): string {
  return join(root, '.ssh-r-sync', 'holds', validateName(name));
}

// Puts holder's hold on `ids` of host `name` (replacing its previous one); no ids removes it.
export async function setHolds(root: string, name: string, holder: string, ids: readonly string[], reason: string): Promise<void> {
  if (!HOLDER.test(holder)) throw new TypeError(`hold holder ${JSON.stringify(holder)}: lower-case letters, digits and -`);
  const dir = holdsDir(root, name);
  const path = join(dir, `${holder}.json`);
  if (ids.length === 0) {
    await rm(path, { force: true });
    return;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const record: HoldRecord = { schema: 1, holder, reason, ids: [...new Set(ids)].sort(), at: new Date().toISOString() };
  await writeAtomic(path, `${JSON.stringify(record)}\n`);
}

// Every hold on host `name`: snapshot id → the reasons it is held. `problems` gets one line per
// hold file that could not be read (it then holds nothing).
export async function readHolds(root: string, name: string, problems: string[] = []): Promise<Map<string, string[]>> {
  const held = new Map<string, string[]>();
  const dir = holdsDir(root, name);
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const file of names.filter((n) => n.endsWith('.json') && HOLDER.test(n.slice(0, -5))).sort().slice(0, MAX_HOLDERS)) {
    try {
      const handle = await open(join(dir, file), 'r');
      let text: string;
      try {
        const buffer = Buffer.alloc(MAX_HOLD_BYTES + 1);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
        if (bytesRead > MAX_HOLD_BYTES) throw new Error(`larger than ${MAX_HOLD_BYTES} bytes`);
        text = buffer.subarray(0, bytesRead).toString();
      } finally {
        await handle.close();
      }
      const record = JSON.parse(text) as Partial<HoldRecord>;
      if (record.schema !== 1 || !Array.isArray(record.ids) || typeof record.reason !== 'string') throw new Error('not a hold record');
      for (const id of record.ids) if (typeof id === 'string') held.set(id, [...(held.get(id) ?? []), `held: ${record.reason.slice(0, 200)}`]);
    } catch (error) {
      problems.push(`${join(dir, file)}: ${(error as Error).message}`);
    }
  }
  return held;
}
