// The values that travel through one run: who is backed up, where to, how rsync is called,
// and how it ended. Hooks receive these objects; the pipeline owns them.
import type { Logger } from '../logger.js';
import type { TapRecord } from './tap-guard.js';

export type Role = 'receiver' | 'client';
export type Mode = 'privileged' | 'fake-super' | 'plain';
export type Status = 'success' | 'failure' | 'skipped';

export interface RunContext {
  readonly role: Role;
  /** BACKUP_ROOT with symlinks resolved. */
  readonly root: string;
  /** The host's name; known from the `handshake` point on (empty before). */
  name: string;
  /** ROOT/NAME, or where plugins moved it; known from `handshake` on (empty before). */
  dir: string;
  /** How rsync keeps ownership and devices: decided by the receiver, never by the client. */
  mode: Mode;
  /** The client asked for `-x/--one-file-system`. */
  oneFileSystem: boolean;
  /** Aborted when the run must stop (a signal, a dead peer). */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly startedAt: Date;
  /** Snapshot id that a plugin created, reported to the client. */
  snapshot: string | null;
  /** Free space for plugins, keyed by plugin name. */
  readonly data: Map<string, unknown>;
  /** Every tap that finished so far in this run, in order (scripts and plugins). */
  readonly taps: TapRecord[];
}

/** The rsync call that `rsync.pre` taps edit and the `rsync` point runs. */
export interface RsyncCommand {
  /** The rsync program. */
  program: string;
  /** Options users see and hooks edit (stdin of `rsync.pre` scripts). */
  args: string[];
  /** Source and destination, appended after the options. */
  source: string;
  destination: string;
  /** Options the transport needs (password file, …); not shown to hooks, kept when defaults are replaced. */
  transportArgs: string[];
  /** Environment for rsync, on top of the receiver's own. */
  env: Record<string, string>;
  /**
   * The connection rsync's --rsh program expects as its fd 3 (reverse mode: the proven tunnel
   * connection). runRsync claims it; a runner of its own must claim it and pass the socket as
   * stdio[3] in the tick it spawns rsync, then destroy its copy.
   */
  connection?: RsyncConnection;
  /**
   * Set by the pipeline when someone follows the transfer (the client's progress line, a
   * plugin's `hooks.progress` tap): runRsync then reads rsync's --info=progress2 lines (which the
   * pipeline adds to transportArgs) into these events instead of its output.
   */
  onProgress?: (event: import('../rsync/progress.js').RsyncProgress) => void;
}

/** A connection handed to rsync as its fd 3; claim() may be called once. */
export interface RsyncConnection {
  claim(): import('node:net').Socket;
}

/** What rsync did, as `rsync.post` taps see and may change it. */
export interface RsyncResult {
  exitCode: number;
  /** The signal that killed rsync, if any. */
  signal: string | null;
  /** rsync's merged stdout and stderr (bounded: the middle of a huge output is dropped). */
  output: string;
  /** Regular files transferred and their total size, from `--stats` when present. */
  files: number | null;
  bytes: number | null;
  durationMs: number;
  /** The exit code before any `rsync.post` tap changed it. */
  originalExitCode: number;
}

/** A tap's "not now": ends the run as skipped (exit 75), which is not a failure. */
export interface Skip {
  readonly skip: true;
  readonly reason: string;
}

// Builds the value a tap returns to skip the run.
export function skip(reason: string): Skip {
  return { skip: true, reason };
}

export function isSkip(value: unknown): value is Skip {
  return typeof value === 'object' && value !== null && (value as Skip).skip === true;
}

/** How a run ended. `exitCode` is what the CLI exits with. */
export interface Outcome {
  status: Status;
  exitCode: 0 | 1 | 2 | 75;
  message: string | null;
  error: Error | null;
  rsync: RsyncResult | null;
  durationMs: number;
  /** The snapshot a plugin made in this run, if any. */
  snapshot?: string | null;
  /** The backup passed the commit point: it is complete on disk. Only a committed run is a success. */
  committed?: boolean;
  /** Every `done` tap that failed (all of them ran), each named. */
  doneErrors?: Error[];
}
