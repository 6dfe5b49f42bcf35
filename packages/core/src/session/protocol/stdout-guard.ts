// In reverse mode fd 1 is the message channel to the client, and a plugin's console.log or
// process.stdout.write would put text between two messages and break the session. The guard
// keeps process.stdout's own write for the channel and turns every other stdout write into log
// lines on stderr (which ssh shows on the client). The global console looks up
// process.stdout.write at each call, so it is covered too. What it cannot cover: a plugin that
// writes to fd 1 itself (fs.writeSync(1, …)) or hands it to a child (stdio: 'inherit').
import { Writable } from 'node:stream';
import { LineSplitter } from '../../exec/line-splitter.js';
import type { Logger } from '../../logger.js';

// A plugin's longest stdout line we log; the rest of a longer one is dropped.
const LINE_MAX = 4096;

type WriteCallback = (error?: Error | null) => void;

let claimed: Writable | undefined;

// Takes stdout for the channel: returns the only stream that still writes to fd 1, and sends
// whatever else is written to process.stdout to `logger` (scope "stdout"), one line at a time.
export function claimStdout(logger: Logger): Writable {
  if (claimed) return claimed;
  const stdout = process.stdout;
  const ownWrite = stdout.write.bind(stdout) as (chunk: Uint8Array, callback: WriteCallback) => boolean;
  const log = logger.scope('stdout');
  const lines = new LineSplitter(LINE_MAX);
  const toLog = (chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
    const done = (typeof encoding === 'function' ? encoding : callback) as WriteCallback | undefined;
    const text =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' && Buffer.isEncoding(encoding) ? encoding : 'utf8')
        : ArrayBuffer.isView(chunk)
          ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
          : Buffer.from(String(chunk));
    for (const line of lines.push(text)) log.info(line);
    if (done) process.nextTick(done, null);
    return true;
  };
  stdout.write = toLog as typeof stdout.write;
  // A last line without its newline is still worth seeing.
  process.once('exit', () => lines.flush().forEach((line) => log.info(line)));
  const channel = new Writable({
    write(chunk: Buffer, _encoding, done) {
      ownWrite(chunk, (error) => done(error ?? null));
    },
    final(done) {
      stdout.end(() => done()); // an error instead reaches the 'error' handler below
    },
  });
  // stdout's errors (EPIPE when the client is gone) are the channel's; the message channel
  // records them, and until it listens an error must not crash the receiver.
  stdout.on('error', (error) => channel.destroy(error));
  channel.on('error', () => {});
  claimed = channel;
  return channel;
}
