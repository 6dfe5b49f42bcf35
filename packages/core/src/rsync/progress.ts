// rsync's --info=progress2 lines, turned into progress events: the receiver relays them to the
// client (and to plugins), at most a few per second. rsync rewrites one line with \r; every
// other line of its output (errors, --stats) is passed on untouched.
//
//   "  1,671,168  55%    1.47MB/s    0:00:00  \r"
//   "  3,000,000 100%    1.47MB/s    0:00:01 (xfr#1, to-chk=0/2)\r"
//   "    812,345   3%  210.12kB/s    0:01:40 (xfr#12, ir-chk=1004/2060)\r"   (still scanning)
import { StringDecoder } from 'node:string_decoder';

/** One progress event: what rsync has done so far in this run. */
export interface RsyncProgress {
  /** Bytes of file data transferred (or matched) so far. */
  bytes: number;
  /** rsync's percentage of the total it knows of; null when it printed none. */
  percent: number | null;
  /** rsync's current rate in bytes per second; null when it printed none. */
  bytesPerSecond: number | null;
  /** Files transferred so far (rsync's xfr#); null before the first. */
  files: number | null;
  /** Entries rsync still has to check, and how many it knows of. */
  toCheck: { remaining: number; total: number } | null;
  /** rsync has listed the whole tree (to-chk, not ir-chk): its percentage is of the real total. */
  scanDone: boolean;
  /** Since rsync started. */
  elapsedMs: number;
}

const LINE = /^\s*([\d,.]+)\s+(\d{1,3})%\s+([\d.]+)([kMGT]?)B\/s\s+\d+:\d\d:\d\d\s*(?:\(xfr#(\d+),\s*(to|ir)-chk=(\d+)\/(\d+)\))?\s*$/;
const UNIT: Record<string, number> = { '': 1, k: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
/** A line longer than this is not a progress line: passed on, and the buffer never grows past it. */
const MAX_SEGMENT = 4096;
/** rsync's progress lines are about 80 characters; a longer line is never matched (the pattern's
 *  runs of spaces would cost time on a line of thousands). */
const MAX_PROGRESS_LINE = 200;

// A progress line in rsync's output; null for any other line.
export function parseProgressLine(line: string, elapsedMs: number, files: number | null = null): RsyncProgress | null {
  if (line.length > MAX_PROGRESS_LINE) return null;
  const m = LINE.exec(line);
  if (!m) return null;
  const percent = Number(m[2]);
  const rate = Number(m[3]) * UNIT[m[4]!]!;
  const bytes = Number(m[1]!.replace(/[,.]/g, ''));
  const counts = [bytes, ...(m[5] !== undefined ? [Number(m[5]), Number(m[7]), Number(m[8])] : [])];
  if (!counts.every((n) => Number.isSafeInteger(n))) return null;
  return {
    bytes,
    percent: percent <= 100 ? percent : null,
    bytesPerSecond: Number.isSafeInteger(Math.round(rate)) ? Math.round(rate) : null,
    files: m[5] !== undefined ? Number(m[5]) : files,
    toCheck: m[7] !== undefined ? { remaining: Number(m[7]), total: Number(m[8]) } : null,
    scanDone: m[6] === 'to',
    elapsedMs,
  };
}

// Splits rsync's stdout into progress events (to `onProgress`, at most one per `intervalMs`, and
// the last one at the end) and everything else (to `onText`, as lines with their newline).
export class ProgressSplitter {
  private partial = '';
  private last: RsyncProgress | null = null;
  private lastSentAt = -Infinity;
  private pending = false;
  private files: number | null = null;
  private readonly decoder = new StringDecoder('utf8');

  constructor(
    private readonly onProgress: (event: RsyncProgress) => void,
    private readonly onText: (text: string) => void,
    private readonly intervalMs = 250,
    private readonly started = performance.now(),
  ) {}

  // Feeds a chunk of rsync's stdout.
  add(chunk: Buffer): void {
    // A character cut between two chunks is decoded whole (the text goes on to rsync.post hooks).
    const text = this.partial + this.decoder.write(chunk);
    let start = 0;
    for (let i = 0; i < text.length; i += 1) {
      const c = text.charCodeAt(i);
      if (c !== 13 && c !== 10) continue;
      this.segment(text.slice(start, i), c === 10);
      start = i + 1;
    }
    this.partial = text.slice(start);
    if (this.partial.length > MAX_SEGMENT) {
      this.onText(this.partial);
      this.partial = '';
    }
  }

  // The end of rsync's output: what is left, and the last progress if it was held back.
  end(): void {
    this.partial += this.decoder.end();
    if (this.partial) this.segment(this.partial, false);
    this.partial = '';
    if (this.pending && this.last) this.emit(this.last);
  }

  private segment(line: string, newline: boolean): void {
    const now = performance.now();
    const event = parseProgressLine(line, Math.round(now - this.started), this.files);
    if (!event) {
      if (line.trim() !== '' || newline) this.onText(`${line}\n`);
      return;
    }
    this.files = event.files;
    this.last = event;
    if (now - this.lastSentAt >= this.intervalMs) this.emit(event);
    else this.pending = true;
  }

  private emit(event: RsyncProgress): void {
    this.lastSentAt = performance.now();
    this.pending = false;
    this.onProgress(event);
  }
}
