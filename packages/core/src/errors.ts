// One catalogue of the errors a user can meet. Each has a code, a one-line message and
// optional details; only the CLI prints them and maps them to exit codes.

export type ErrorCode =
  | 'EUSAGE' // bad command line or config: exit 2
  | 'ECONFIG' // config file or plugin could not be loaded: exit 2
  | 'EHOOK' // a hook script or plugin tap failed
  | 'ETIMEOUT' // a hook, a read or a peer took too long
  | 'ERSYNC' // rsync exited non-zero (after rsync.post)
  | 'EPROTOCOL' // the peer said something we do not understand
  | 'ETUNNEL' // the tunnel could not be set up or proven
  | 'ELOCK' // another run for the same host holds the lock
  | 'ENAME' // a host name is refused
  | 'ESPAWN' // a program could not be started
  | 'EPEER' // the peer reported a failure
  | 'ESTORAGE' // BACKUP_ROOT could not be written or flushed (disk full, I/O error)
  | 'EINTERNAL';

const marker = Symbol.for('ssh-r-sync.error');

export class SshRSyncError extends Error {
  readonly code: ErrorCode;
  readonly details: string | undefined;
  readonly [marker] = true;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }
}
Object.defineProperty(SshRSyncError.prototype, 'name', { value: 'SshRSyncError', enumerable: false });

// Recognises our errors across module copies (a plugin may bundle its own core).
export function isSshRSyncError(error: unknown): error is SshRSyncError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
}

export class UsageError extends SshRSyncError {
  constructor(message: string, options: { cause?: unknown; details?: string } = {}) {
    super('EUSAGE', message, options);
  }
}

// The exit code a CLI returns for an error of this code.
export function exitCodeFor(error: unknown): number {
  if (!isSshRSyncError(error)) return 1;
  return error.code === 'EUSAGE' || error.code === 'ECONFIG' ? 2 : 1;
}

// A one-line description of any thrown value, for logs and the client.
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
