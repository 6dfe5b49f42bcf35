// What a tunnel listener reports about each connection it accepted (numbered from 1; a log line
// with connection 0 is about the listener itself).
import type { TunnelCommand } from './proof.js';

export type TunnelEvent =
  /** A line the gate or its rsync wrote on stderr (cut at a bounded length). */
  | { type: 'log'; connection: number; line: string }
  /** The receiver proved itself and chose a command; for 'rsync' the daemon starts now. */
  | { type: 'verified'; connection: number; command: TunnelCommand }
  /** The connection was dropped before or during the proof: wrong proof, timeout, overload. */
  | { type: 'rejected'; connection: number; reason: string }
  /** The rsync daemon of a verified connection ended; exitCode is null if it was killed. */
  | { type: 'served'; connection: number; exitCode: number | null };
