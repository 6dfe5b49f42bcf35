// One duration syntax for every option and config key that takes a length of time: terms of a
// number and a unit, written together or apart (90s, 90m, 2h30m, 1h 30m, 36h, 14d, 2w), or a
// plain number, which is seconds (so options documented in seconds keep their meaning). Months
// and years are not durations (they have no fixed length): retention keeps count them itself.
import { SshRSyncError } from './errors.js';

const UNIT_MS: Record<string, number> = {
  s: 1000, sec: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
  w: 604_800_000, week: 604_800_000, weeks: 604_800_000,
};
const TERM = /(\d+(?:\.\d+)?)\s*([a-z]+)\s*/gy;

/** What a duration looks like, for error messages. */
export const DURATION_EXAMPLES = 'e.g. 90s, 90m, 2h30m, 36h or 14d (s, m or min, h, d, w; a plain number is seconds)';

// Parses a duration into milliseconds; throws EUSAGE naming the text and the syntax.
export function parseDuration(text: string): number {
  const trimmed = String(text).trim().toLowerCase();
  const fail = (why = ''): never => {
    throw new SshRSyncError('EUSAGE', `cannot read duration ${JSON.stringify(text)}: ${why}${DURATION_EXAMPLES}`);
  };
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  if (trimmed === '') fail('it is empty: ');
  let total = 0;
  TERM.lastIndex = 0;
  const seen = new Set<number>();
  while (TERM.lastIndex < trimmed.length) {
    const start = TERM.lastIndex;
    const match = TERM.exec(trimmed);
    if (!match || match.index !== start) fail();
    const factor = UNIT_MS[match![2]!];
    if (factor === undefined) fail(`unknown unit "${match![2]}": `);
    if (seen.has(factor!)) fail(`a unit is given twice: `);
    seen.add(factor!);
    total += Number(match![1]) * factor!;
  }
  if (!Number.isFinite(total)) fail('too large: ');
  return total;
}

// A rounded age for people: 45s, 12m, 5h 3m, 2d 4h, 40d.
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return d < 14 && h % 24 ? `${d}d ${h % 24}h` : `${d}d`;
}
