// The client's progress display: on a terminal one line, rewritten in place (\r and erase to the
// end of the line), cut to the terminal's width; in a pipe (only with --progress) a plain line now
// and then, for logs. Whatever else is written to the stream meanwhile (a warning) first erases the
// line, so the two never mix; the line is erased for good before the result is printed.
import type { RsyncProgress } from '@ssh-r-sync/core/internal';
import { humanBytes } from './format.js';

/** In a pipe, at most one line per this long. */
const LINE_EVERY_MS = 10_000;
/** An estimate is shown only once rsync knows the whole tree and this much time has passed. */
const ESTIMATE_AFTER_MS = 5_000;
const ERASE = '\r\x1b[K';

export interface ProgressLine {
  update(event: RsyncProgress): void;
  /** Erases the line (on a terminal) and stops watching the stream. */
  close(): void;
}

// A progress display for host `name` on `stream`.
export function progressLine(stream: NodeJS.WriteStream, name: string): ProgressLine {
  const tty = Boolean(stream.isTTY);
  let shown = false;
  let lastLineAt = -Infinity;
  const write = stream.write.bind(stream) as (chunk: string) => boolean;
  // Anything else written while the line is up goes on a clean line.
  const patched = ((chunk: unknown, ...rest: unknown[]) => {
    if (shown) {
      write(ERASE);
      shown = false;
    }
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof stream.write;
  if (tty) stream.write = patched;
  return {
    update(event) {
      const text = describeProgress(name, event);
      if (tty) {
        const width = Math.max(20, (stream.columns || 80) - 1); // 0 in a pty nobody sized
        write(`${ERASE}${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
        shown = true;
        return;
      }
      const now = performance.now();
      if (now - lastLineAt < LINE_EVERY_MS) return;
      lastLineAt = now;
      write(`${text}\n`);
    },
    close() {
      if (!tty) return;
      if (shown) write(ERASE);
      shown = false;
      if (stream.write === patched) stream.write = write as typeof stream.write;
    },
  };
}

// "laptop: 1.2 GiB, 45%, 12.3 MiB/s, 2,345 files, 1m 23s, about 2m left".
export function describeProgress(name: string, event: RsyncProgress): string {
  const parts = [humanBytes(event.bytes)];
  if (event.percent !== null) parts.push(`${event.percent}%${event.scanDone ? '' : ' of the files listed so far'}`);
  if (event.bytesPerSecond !== null) parts.push(`${humanBytes(event.bytesPerSecond)}/s`);
  if (event.files !== null) parts.push(`${event.files.toLocaleString('en-US')} file${event.files === 1 ? '' : 's'}`);
  parts.push(clock(event.elapsedMs));
  const estimate = remainingMs(event);
  if (estimate !== null) parts.push(`about ${clock(estimate)} left`);
  return `${name}: ${parts.join(', ')}`;
}

// The time left, once an estimate is honest: rsync has listed the whole tree (its percentage is
// of the real total, not of what incremental recursion found so far), and the run is past its start.
export function remainingMs(event: RsyncProgress): number | null {
  if (!event.scanDone || event.percent === null || event.percent <= 0 || event.percent >= 100 || event.elapsedMs < ESTIMATE_AFTER_MS) return null;
  return Math.round((event.elapsedMs * (100 - event.percent)) / event.percent);
}

// 45s, 12m 3s, 2h 5m.
function clock(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}
