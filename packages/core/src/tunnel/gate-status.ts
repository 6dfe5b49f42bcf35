// The gate's control channel (its fd 3, a socket pair with the listener):
//   listener → gate  the 32-byte key K, raw, then nothing; the listener keeps its end open for the
//                    connection's lifetime, so EOF tells the gate that the listener died.
//   gate → listener  newline-terminated status lines: "verified check", "verified rsync" or
//                    "rejected <one-line reason>". At most one is sent, before any rsync runs.
// rsync's own stderr goes to the gate's fd 2, which the listener only forwards as log lines, so
// nothing rsync or a peer can make it print is ever read as a status.
import type { TunnelCommand } from './proof.js';

export const GATE_CONTROL_FD = 3;
export const GATE_STATUS_MAX = 1024;

export type GateStatus = { kind: 'verified'; command: TunnelCommand } | { kind: 'rejected'; reason: string };

// The status line the gate writes on its control fd.
export function formatGateStatus(status: GateStatus): string {
  const text = status.kind === 'verified' ? `verified ${status.command}` : `rejected ${status.reason}`;
  return `${text.replace(/[\r\n]+/g, ' ').slice(0, GATE_STATUS_MAX - 1)}\n`;
}

// The status a line stands for, or undefined for anything else.
export function parseGateStatus(line: string): GateStatus | undefined {
  if (line === 'verified check') return { kind: 'verified', command: 'check' };
  if (line === 'verified rsync') return { kind: 'verified', command: 'rsync' };
  if (line.startsWith('rejected ')) return { kind: 'rejected', reason: line.slice('rejected '.length) };
  return undefined;
}
