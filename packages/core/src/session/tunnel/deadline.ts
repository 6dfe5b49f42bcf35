// One time limit for a whole proof, shared by its reads and writes.
import { SshRSyncError } from '../../errors.js';

export interface Deadline {
  readonly at: number;
  readonly ms: number;
}

// A deadline timeoutMs from now.
export function startDeadline(timeoutMs: number): Deadline {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new SshRSyncError('EUSAGE', `tunnel timeout must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  return { at: Date.now() + timeoutMs, ms: timeoutMs };
}

// Milliseconds left, never negative.
export function remainingMs(deadline: Deadline): number {
  return Math.max(0, deadline.at - Date.now());
}

// "tunnel proof timed out after Ns".
export function proofTimedOut(deadline: Deadline): SshRSyncError {
  return new SshRSyncError('ETIMEOUT', `tunnel proof timed out after ${deadline.ms / 1000}s`);
}
