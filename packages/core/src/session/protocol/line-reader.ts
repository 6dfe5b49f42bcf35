// Splits a byte stream into bounded lines. It reads while someone waits for a line, or, if asked
// (watchWhileIdle), between waits to notice the peer's end, keeping at most a few lines: so what
// is read ahead is bounded, and a line over the limit fails as soon as the buffer passes the limit,
// without waiting for "\n" (so at most limit + one chunk is ever held).
// After a failure (EOF, oversize, stream error, timeout) it stops reading for good.
import type { Readable } from 'node:stream';
import { SshRSyncError, oneLine } from '../../errors.js';
import { formatDuration } from './text.js';

// setTimeout fires at once beyond this; longer waits are treated as "no timeout".
const MAX_TIMER_MS = 2 ** 31 - 1;
// Collapse many tiny chunks (one byte each, say) into one buffer now and then.
const MAX_PENDING_CHUNKS = 1024;
// Complete messages kept while nobody waits (the peer spoke out of turn); more break the reader.
const MAX_UNREAD_LINES = 4;

interface Waiter {
  what: string;
  resolve(line: Buffer): void;
  reject(error: SshRSyncError): void;
  timer: NodeJS.Timeout | undefined;
}

export class LineReader {
  private readonly lines: Buffer[] = [];
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failure: SshRSyncError | undefined;
  private waiter: Waiter | undefined;
  private idleWatch: { onEnd: (error: SshRSyncError) => void } | undefined;

  constructor(
    private readonly input: Readable,
    private readonly maxBytes: number,
    private readonly peer: string,
  ) {
    // Kept for the reader's whole life: an 'error' without a listener would crash the process.
    input.on('error', this.onError);
  }

  // Bytes held that are not yet a complete line (for tests and diagnostics).
  get bufferedBytes(): number {
    return this.pendingBytes + this.lines.reduce((sum, line) => sum + line.length + 1, 0);
  }

  // Resolves with the next line (no newline); `what` names it in EOF and timeout errors.
  next(what: string, timeoutMs: number): Promise<Buffer> {
    this.stopIdleWatch();
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.waiter !== undefined) {
      return Promise.reject(new SshRSyncError('EINTERNAL', `already waiting for ${this.waiter.what}`));
    }
    if (this.input.readableEnded || this.input.destroyed) this.ended(what);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timed = timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS;
      const timer = timed ? setTimeout(() => this.onTimeout(timeoutMs), timeoutMs) : undefined;
      this.waiter = { what, resolve, reject, timer };
      this.input.on('data', this.onData);
      this.input.on('end', this.onEnd);
      this.input.on('close', this.onEnd);
      this.input.resume();
    });
  }

  // Between waits, keeps reading so that the peer's end is noticed at once (a hook may run for
  // hours before the next wait); what arrives meanwhile is kept for the next wait, bounded to a
  // few lines. `onEnd` is called once, with the failure, if the stream ends or breaks while idle.
  watchWhileIdle(onEnd: (error: SshRSyncError) => void): void {
    if (this.failure !== undefined) return onEnd(this.failure);
    if (this.waiter !== undefined || this.idleWatch !== undefined) return;
    this.idleWatch = { onEnd };
    this.input.on('data', this.onIdleData);
    this.input.on('end', this.onIdleEnd);
    this.input.on('close', this.onIdleEnd);
    this.input.resume();
  }

  private readonly onIdleData = (chunk: Buffer | string): void => {
    const watch = this.idleWatch;
    this.append(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (this.lines.length > MAX_UNREAD_LINES) this.fail(new SshRSyncError('EPROTOCOL', `${this.peer} sent ${this.lines.length} messages out of turn`));
    if (this.failure !== undefined) this.endIdleWatch(watch);
  };

  // The end is not recorded as the failure here: the next wait names what it waited for.
  private readonly onIdleEnd = (): void => {
    const watch = this.idleWatch;
    this.stopIdleWatch();
    const how = this.pendingBytes > 0 ? `left a truncated message (${this.pendingBytes} bytes without end of line)` : 'closed the connection';
    watch?.onEnd(this.failure ?? new SshRSyncError('EPROTOCOL', `${this.peer} ${how}`));
  };

  private endIdleWatch(watch: { onEnd: (error: SshRSyncError) => void } | undefined): void {
    this.stopIdleWatch();
    if (watch && this.failure !== undefined) watch.onEnd(this.failure);
  }

  private stopIdleWatch(): void {
    if (this.idleWatch === undefined) return;
    this.idleWatch = undefined;
    this.input.off('data', this.onIdleData);
    this.input.off('end', this.onIdleEnd);
    this.input.off('close', this.onIdleEnd);
    this.input.pause();
  }

  // Stops reading for good; a pending wait is rejected with the first failure.
  stop(error: SshRSyncError): void {
    this.fail(error);
    this.settle();
  }

  private readonly onData = (chunk: Buffer | string): void => {
    this.append(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    this.settle();
  };

  private readonly onEnd = (): void => {
    this.ended(this.waiter?.what ?? 'a message');
    this.settle();
  };

  private ended(what: string): void {
    if (this.pendingBytes > 0) {
      this.fail(new SshRSyncError('EPROTOCOL', `truncated message from ${this.peer} (${this.pendingBytes} bytes without end of line)`));
    } else {
      this.fail(new SshRSyncError('EPROTOCOL', `${this.peer} closed the connection while we waited for ${what}`));
    }
  }

  private readonly onError = (error: Error): void => {
    this.fail(new SshRSyncError('EPROTOCOL', `reading from ${this.peer} failed: ${oneLine(error)}`, { cause: error }));
    this.settle();
  };

  private onTimeout(timeoutMs: number): void {
    const what = this.waiter?.what ?? 'a message';
    this.fail(new SshRSyncError('ETIMEOUT', `timed out after ${formatDuration(timeoutMs)} waiting for ${what} from ${this.peer}`));
    this.settle();
  }

  private append(chunk: Buffer): void {
    if (this.failure !== undefined) return;
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      if (!this.hold(nl - start)) return;
      this.pending.push(chunk.subarray(start, nl));
      this.lines.push(this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending));
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
    }
    if (start >= chunk.length || !this.hold(chunk.length - start)) return;
    this.pending.push(chunk.subarray(start));
    this.pendingBytes += chunk.length - start;
    if (this.pending.length > MAX_PENDING_CHUNKS) this.pending = [Buffer.concat(this.pending)];
  }

  // Accounts for `bytes` more of the current line, or fails once the line passes the limit.
  private hold(bytes: number): boolean {
    if (this.pendingBytes + bytes <= this.maxBytes) return true;
    this.fail(new SshRSyncError('EPROTOCOL', `message from ${this.peer} exceeds ${this.maxBytes} bytes`));
    return false;
  }

  // Records the first failure, stops reading and drops the partial line.
  private fail(error: SshRSyncError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.pending = [];
    this.pendingBytes = 0;
    this.unlisten();
  }

  // Hands a line (first) or the failure to the waiter, then stops reading until the next wait.
  private settle(): void {
    const waiter = this.waiter;
    if (waiter === undefined) return;
    const line = this.lines.shift();
    if (line === undefined && this.failure === undefined) return;
    this.waiter = undefined;
    clearTimeout(waiter.timer);
    this.unlisten();
    if (line !== undefined) waiter.resolve(line);
    else if (this.failure !== undefined) waiter.reject(this.failure);
  }

  private unlisten(): void {
    this.stopIdleWatch();
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('close', this.onEnd);
    this.input.pause();
  }
}
