// What a tunnel listener reports about each connection it accepted (numbered from 1; a log line
// with connection 0 is about the listener itself).
import type { TunnelCommand } from './proof.js';

export type TunnelEvent =
  /** A line an rsync daemon wrote on stderr (cut at a bounded length), or a note about the listener. */
  | { type: 'log'; connection: number; line: string }
  /** The receiver proved itself (the tunnel check); the connection now waits for its command. */
  | { type: 'proven'; connection: number }
  /** The receiver chose a command; for 'rsync' its daemon has just been started. */
  | { type: 'verified'; connection: number; command: TunnelCommand }
  /** The connection was dropped during or right after the proof: wrong proof, stray bytes, timeout, overload. */
  | { type: 'rejected'; connection: number; reason: string }
  /** The rsync daemon of a verified connection ended; exitCode is null if it was killed or never started. */
  | { type: 'served'; connection: number; exitCode: number | null };
