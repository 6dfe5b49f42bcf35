// Exact, deadline-bounded reads and writes on raw file descriptors, for the gate. They never
// read a byte past the requested length, so the bytes after the proof stay in the socket for
// rsync. Streams cannot promise that: they read ahead into their own buffers.
import { readSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { closedEarly, proofFailed } from './proof.js';
import { proofTimedOut, remainingMs, type Deadline } from './deadline.js';

const POLL_MS = 5;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const openedHandles: Socket[] = [];

// Switches a socket or pipe descriptor to non-blocking mode so that reads can respect a
// deadline. libuv hands children blocking fds 0-2, and a blocking read on a stalled peer would
// never return. Opening (but not reading) a net.Socket on the fd is the only way node offers to
// set O_NONBLOCK; the handle is kept so that it is never closed under us. Returns false for
// other kinds of fd, whose reads then stay blocking (the listener's timer still bounds them).
export function makeNonBlocking(fd: number): boolean {
  try {
    openedHandles.push(new Socket({ fd, readable: false, writable: false }));
    return true;
  } catch {
    return false;
  }
}

function isRetry(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR';
}

function pause(deadline: Deadline): void {
  const left = remainingMs(deadline);
  if (left === 0) throw proofTimedOut(deadline);
  Atomics.wait(sleeper, 0, 0, Math.min(POLL_MS, left));
}

// Reads exactly size bytes from fd, or throws "closed after N of M bytes" / "timed out".
// idle runs while waiting for data (the gate uses it to notice that its listener died).
export function readExactSync(fd: number, size: number, deadline: Deadline, idle?: () => void): Buffer {
  const buffer = Buffer.alloc(size);
  let got = 0;
  while (got < size) {
    let n: number;
    try {
      n = readSync(fd, buffer, got, size - got, null);
    } catch (error) {
      if (!isRetry(error)) throw closedEarly(got, size, ` (${(error as NodeJS.ErrnoException).code ?? 'read error'})`);
      pause(deadline);
      idle?.();
      continue;
    }
    if (n === 0) throw closedEarly(got, size);
    got += n;
  }
  return buffer;
}

// True once the other end of a non-blocking socket fd has closed (EOF); data is discarded.
export function peerClosedSync(fd: number): boolean {
  try {
    return readSync(fd, Buffer.alloc(64), 0, 64, null) === 0;
  } catch (error) {
    return !isRetry(error);
  }
}

// Writes all of data to fd before the deadline.
export function writeAllSync(fd: number, data: Buffer, deadline: Deadline): void {
  let sent = 0;
  while (sent < data.length) {
    try {
      sent += writeSync(fd, data, sent, data.length - sent);
    } catch (error) {
      if (!isRetry(error)) throw proofFailed(`could not write to the connection (${(error as NodeJS.ErrnoException).code ?? 'write error'})`);
      pause(deadline);
    }
  }
}
