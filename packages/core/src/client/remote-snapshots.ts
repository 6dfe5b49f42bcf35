// `ssh-r-sync snapshots`: asks the key's forced command for this host's complete snapshots. The
// answer is the server's text: bounded in size and time, checked field by field before use.
import { spawn } from 'node:child_process';
import { SshRSyncError } from '../errors.js';
import { validateName } from '../storage/host-dir.js';
import type { Logger } from '../logger.js';
import { dieWithUs, killGroup } from '../exec/process-group.js';
import { escapeText } from '../session/protocol/text.js';
import { SNAPSHOTS_REQUEST } from '../serve/request.js';
import { verifyState, type ListedSnapshot, type SnapshotListing } from '../serve/snapshot-list.js';
import { SNAPSHOT_ID } from '../storage/snapshots.js';
import { parseDestination } from './destination.js';
import { remoteSshOptions } from './remote-ssh.js';
import { connectionAdvice } from './ssh-advice.js';

/** A listing of thousands of snapshots is a few MiB. */
const MAX_ANSWER_BYTES = 32 * 1024 * 1024;
const MAX_STDERR_BYTES = 64 * 1024;

export interface SnapshotsOptions {
  destination: string;
  port?: number | undefined;
  identityFile?: string | undefined;
  sshOptions: string[];
  sshDefaults: boolean;
  sshProgram?: string | undefined;
  timeoutMs: number;
  logger: Logger;
  signal?: AbortSignal;
}

// The server's listing of this key's host; throws a one-line error when there is none.
export async function remoteSnapshots(options: SnapshotsOptions): Promise<SnapshotListing> {
  const destination = parseDestination(options.destination, options.port);
  const argv = [...remoteSshOptions({ destination, identityFile: options.identityFile, extraOptions: options.sshOptions, defaults: options.sshDefaults }), '--', destination.target, SNAPSHOTS_REQUEST];
  const program = options.sshProgram ?? 'ssh';
  options.logger.debug(`running ${[program, ...argv].map((arg) => JSON.stringify(arg)).join(' ')}`);
  const child = spawn(program, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const forget = dieWithUs(child.pid);
  let why: string | null = null;
  const stop = (reason: string) => {
    why ??= reason;
    killGroup(child.pid, 'SIGKILL');
  };
  const timer = setTimeout(() => stop(`no answer from the backup server within ${Math.round(options.timeoutMs / 1000)} s (--timeout)`), options.timeoutMs);
  const onAbort = () => stop('stopped');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const out: Buffer[] = [];
  let outBytes = 0;
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => {
    outBytes += chunk.length;
    if (outBytes > MAX_ANSWER_BYTES) return stop(`the backup server's answer is larger than ${MAX_ANSWER_BYTES} bytes`);
    out.push(chunk);
    // A receiver from before restores ignores the request and greets for a backup instead.
    if (outBytes < 4096 && /^\{[^\n]*"type":"hello"/.test(Buffer.concat(out).toString('utf8'))) {
      stop("the backup server's ssh-r-sync-recv answered with a backup greeting: it predates `ssh-r-sync snapshots` (update it)");
    }
  });
  child.stderr.on('data', (chunk: Buffer) => {
    if (err.length < MAX_STDERR_BYTES) err += chunk.toString('utf8');
  });
  try {
    const ended = await new Promise<{ code: number | null; error?: NodeJS.ErrnoException }>((done) => {
      child.once('error', (error: NodeJS.ErrnoException) => done({ code: null, error }));
      child.once('close', (code) => done({ code }));
    });
    if (ended.error) throw new SshRSyncError('ESPAWN', `cannot run ${program}: ${ended.error.code === 'ENOENT' ? 'not found (is ssh installed?)' : ended.error.code}`);
    if (why) throw new SshRSyncError('ETIMEOUT', why);
    const refusal = /^ssh-r-sync-recv: error: (.*)$/m.exec(err);
    if (refusal) throw new SshRSyncError('EPEER', `the backup server refused: ${escapeText(refusal[1]!.slice(0, 300))}`);
    if (ended.code !== 0) {
      const lines = err.split('\n').map((line) => escapeText(line.trim().slice(0, 300))).filter(Boolean).slice(-20);
      // The set-up mistakes a backup run names (refused key, host key, forced command) are named here too.
      const advice = connectionAdvice({ code: ended.code, lines, identityFile: options.identityFile, target: destination.target, port: destination.port });
      const last = lines.at(-1);
      throw new SshRSyncError('EPEER', `ssh to the backup server failed (exit ${ended.code})${advice ? `: ${advice}` : last ? `: ${last}` : ''}`);
    }
    return parseListing(Buffer.concat(out).toString('utf8'));
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    forget();
  }
}

// The listing as the server printed it, checked; unknown fields are dropped.
export function parseListing(text: string): SnapshotListing {
  const bad = (why: string) => new SshRSyncError('EPROTOCOL', `the backup server's snapshot list is not one: ${why}`);
  let value: unknown;
  try {
    value = JSON.parse(text.trim().split('\n').pop() ?? '');
  } catch {
    throw bad('not JSON');
  }
  const v = value as Partial<SnapshotListing> | null;
  if (!v || v.version !== 1 || !Array.isArray(v.snapshots) || (v.kind !== 'snapshots' && v.kind !== 'mirror') || typeof v.host !== 'string') throw bad('unknown shape');
  try {
    validateName(v.host);
  } catch {
    throw bad('invalid host name');
  }
  const count = (value: unknown) => (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : null);
  const time = (value: unknown) => (typeof value === 'string' && !Number.isNaN(Date.parse(value)) ? new Date(value).toISOString() : null);
  const snapshots: ListedSnapshot[] = v.snapshots.map((raw: Partial<ListedSnapshot>) => {
    const id = typeof raw?.id === 'string' && (raw.id === '' || SNAPSHOT_ID.test(raw.id)) ? raw.id : null;
    const startedAt = time(raw?.startedAt);
    if (id === null || startedAt === null) throw bad('a snapshot without a valid id or date');
    const mode = raw.mode === 'privileged' || raw.mode === 'fake-super' || raw.mode === 'plain' ? raw.mode : null;
    return {
      id,
      startedAt,
      completedAt: time(raw.completedAt) ?? startedAt,
      mode,
      entries: count(raw.entries),
      files: count(raw.files),
      bytes: count(raw.bytes),
      future: raw.future === true,
      verify: verifyState(raw.verify),
    };
  });
  return { version: 1, host: v.host, kind: v.kind, snapshots };
}
