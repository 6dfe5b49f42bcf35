// The plugin's own record per host, ROOT/.ssh-r-sync/notify/NAME.json: how many notifications
// could not be delivered and the last such error (for `status` and Prometheus to read), and what
// the status timer last sent, so that a stale host is reported once per episode, not every hour.
// Only this plugin writes it; it is read back bounded and anything unreadable counts as empty.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readSmallFile, writeAtomic } from '@ssh-r-sync/core';

export const STATE_SCHEMA = 1;

export interface NotifyState {
  schema: typeof STATE_SCHEMA;
  /** Deliveries that failed, counted for ever (a channel of one event is one delivery). */
  failures: number;
  lastFailure: { at: string; channel: Channel; status: string; error: string } | null;
  /** The last delivery that worked. */
  lastDelivered: { at: string; channel: Channel; status: string } | null;
  /** What the status timer last reported for the host; `key` names the stale episode. */
  staleSent: { at: string; key: string; problem: string | null } | null;
}

export type Channel = 'healthchecks' | 'webhook' | 'command';

const MAX_STATE_BYTES = 64 * 1024;

// Where host `name`'s record lives.
export function notifyStatePath(root: string, name: string): string {
  return join(root, '.ssh-r-sync', 'notify', `${name}.json`);
}

// Reads host `name`'s record; a missing, oversized or unreadable one is an empty record.
export async function readNotifyState(root: string, name: string): Promise<NotifyState> {
  const empty: NotifyState = { schema: STATE_SCHEMA, failures: 0, lastFailure: null, lastDelivered: null, staleSent: null };
  // Bounded, never through a symlink or a fifo (core's readSmallFile).
  const text = await readSmallFile(notifyStatePath(root, name), MAX_STATE_BYTES);
  if (text === null) return empty;
  try {
    const parsed = JSON.parse(text) as Partial<NotifyState>;
    if (parsed.schema !== STATE_SCHEMA) return empty;
    return {
      ...empty,
      failures: Number.isSafeInteger(parsed.failures) && parsed.failures! >= 0 ? parsed.failures! : 0,
      lastFailure: parsed.lastFailure ?? null,
      lastDelivered: parsed.lastDelivered ?? null,
      staleSent: parsed.staleSent ?? null,
    };
  } catch {
    return empty;
  }
}

// Changes host `name`'s record with `change` and writes it atomically (private, 0600).
export async function updateNotifyState(root: string, name: string, change: (state: NotifyState) => void): Promise<void> {
  const state = await readNotifyState(root, name);
  change(state);
  await mkdir(join(root, '.ssh-r-sync', 'notify'), { recursive: true, mode: 0o700 });
  await writeAtomic(notifyStatePath(root, name), `${JSON.stringify(state, null, 2)}\n`);
}
