// A message channel over a pair of byte streams: process.stdin/stdout on the receiver, the
// ssh child's stdout/stdin on the client. Every receive names what it waits for and has a
// timeout; any receive error breaks the channel, so no later step runs on a confused stream.
import type { Readable, Writable } from 'node:stream';
import { SshRSyncError, isSshRSyncError, oneLine } from '../../errors.js';
import { decodeMessage, encodeMessage } from './codec.js';
import { LineReader } from './line-reader.js';
import { MAX_MESSAGE_BYTES, type Message, type MessageInput, type MessageType } from './messages.js';
import { escapeText, formatDuration } from './text.js';

export interface ChannelOptions {
  // Who is at the other end, as named in errors: 'client' or 'receiver'.
  peer: string;
  // Bound on one incoming or outgoing line, newline excluded.
  maxMessageBytes?: number;
  // Called once if the peer's end closes (or breaks) while nobody waits for a message: a peer that
  // vanishes during a long hook is noticed at once, not at the next receive.
  onIdleEnd?: (error: SshRSyncError) => void;
}

export interface ReceiveOptions {
  // 0 or Infinity (or more than the ~24.8 days setTimeout can hold): wait forever.
  timeoutMs: number;
  // Names the awaited step in errors; defaults to the expected types ("start or skip").
  waitingFor?: string;
  // Progress messages that arrive meanwhile go here and the wait goes on (within the same timeout);
  // without it, a progress message is as unexpected as any other.
  onProgress?: (message: Message<'progress'>) => void;
}

export interface SendOptions {
  // How long the peer may take to accept the bytes; 0 or absent: no limit.
  timeoutMs?: number;
}

const closedCodes = new Set(['EPIPE', 'ECONNRESET', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

export class MessageChannel {
  readonly peer: string;
  readonly maxMessageBytes: number;
  private readonly reader: LineReader;
  private broken: SshRSyncError | undefined;
  private writeError: Error | undefined;
  private closed = false;
  private receiving = false;
  private readonly onIdleEnd: ((error: SshRSyncError) => void) | undefined;

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    options: ChannelOptions,
  ) {
    const max = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) throw new SshRSyncError('EINTERNAL', `invalid maxMessageBytes ${max}`);
    this.peer = options.peer;
    this.maxMessageBytes = max;
    this.reader = new LineReader(input, max, options.peer);
    // Kept after close(): a late EPIPE must not become an unhandled 'error' event.
    output.on('error', (error) => (this.writeError ??= error));
    this.onIdleEnd = options.onIdleEnd;
    this.watchWhileIdle();
  }

  private watchWhileIdle(): void {
    const onEnd = this.onIdleEnd;
    if (onEnd === undefined || this.closed || this.broken !== undefined) return;
    this.reader.watchWhileIdle((error) => {
      if (!this.closed) onEnd(error);
    });
  }

  // Bytes read from the peer but not yet returned by receive().
  get bufferedBytes(): number {
    return this.reader.bufferedBytes;
  }

  // Validates, then writes one message line; resolves once the stream has taken it.
  async send(message: MessageInput, options: SendOptions = {}): Promise<void> {
    if (this.closed) throw new SshRSyncError('EINTERNAL', `cannot send ${message.type}: the channel is closed`);
    const line = encodeMessage(message, this.maxMessageBytes);
    const out = this.output;
    if (this.writeError !== undefined || out.destroyed || out.writableEnded) throw this.sendFailure(message.type, this.writeError);
    await new Promise<void>((resolve, reject) => {
      const limit = options.timeoutMs ?? 0;
      const timer = limit > 0 && Number.isFinite(limit) ? setTimeout(() => reject(this.sendTimeout(message.type, limit)), limit) : undefined;
      out.write(line, (error) => {
        clearTimeout(timer);
        if (error) reject(this.sendFailure(message.type, error));
        else resolve();
      });
    });
  }

  // Resolves with the next message if its type is expected; anything else breaks the channel.
  async receive<T extends MessageType>(expected: T | readonly T[], options: ReceiveOptions): Promise<Message<T>> {
    const types: readonly MessageType[] = typeof expected === 'string' ? [expected] : expected;
    if (this.broken !== undefined) throw this.broken;
    if (this.closed) throw new SshRSyncError('EINTERNAL', 'cannot receive: the channel is closed');
    if (!(options.timeoutMs >= 0)) throw new SshRSyncError('EINTERNAL', `invalid timeout ${options.timeoutMs}`);
    if (this.receiving) throw new SshRSyncError('EINTERNAL', `receive(${types.join(', ')}) while another receive is waiting`);
    const what = options.waitingFor ?? types.join(' or ');
    this.receiving = true;
    const limited = options.timeoutMs > 0 && Number.isFinite(options.timeoutMs);
    const deadline = performance.now() + options.timeoutMs;
    try {
      let message = decodeMessage(await this.reader.next(what, options.timeoutMs), this.peer);
      while (message.type === 'progress' && options.onProgress && !types.includes(message.type)) {
        options.onProgress(message);
        const left = limited ? Math.max(1, deadline - performance.now()) : options.timeoutMs;
        message = decodeMessage(await this.reader.next(what, left), this.peer);
      }
      if (types.includes(message.type)) return message as Message<T>;
      if (message.type === 'error') {
        throw new SshRSyncError('EPEER', `peer: ${escapeText(message.message)}`, { details: `sent by the ${this.peer}` });
      }
      throw new SshRSyncError('EPROTOCOL', `expected ${types.join(' or ')} from ${this.peer}, got ${message.type}`);
    } catch (error) {
      if (this.closed && this.broken === undefined) throw error;
      this.broken ??= isSshRSyncError(error) ? error : new SshRSyncError('EINTERNAL', oneLine(error), { cause: error });
      this.reader.stop(this.broken);
      throw this.broken;
    } finally {
      this.receiving = false;
      this.watchWhileIdle();
    }
  }

  // Ends our output and stops reading; the input is paused and unref'd, not destroyed (it may
  // be stdin): a paused socket still has a read pending that would keep the process alive.
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.stop(new SshRSyncError('EINTERNAL', 'the channel was closed while waiting for a message'));
    if ('unref' in this.input && typeof this.input.unref === 'function') this.input.unref();
    if (!this.output.destroyed && !this.output.writableEnded) this.output.end();
  }

  private sendFailure(type: string, error: Error | undefined): SshRSyncError {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    const cause = error === undefined || (code !== undefined && closedCodes.has(code)) ? 'connection closed' : oneLine(error);
    const suffix = code !== undefined && code.startsWith('E') && !code.startsWith('ERR_') ? ` (${code})` : '';
    return new SshRSyncError('EPROTOCOL', `could not send ${type} to ${this.peer}: ${cause}${suffix}`, { cause: error });
  }

  private sendTimeout(type: string, ms: number): SshRSyncError {
    return new SshRSyncError('ETIMEOUT', `timed out after ${formatDuration(ms)} sending ${type} to ${this.peer}`);
  }
}

// Opens a message channel reading `input` and writing `output`.
export function openChannel(input: Readable, output: Writable, options: ChannelOptions): MessageChannel {
  return new MessageChannel(input, output, options);
}
