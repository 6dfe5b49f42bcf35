// Checks a timer's OnCalendar= before it is printed or installed: a typo there makes systemd
// refuse the timer at `enable` (or never fire it), long after the admin has moved on.
import { UsageError } from '@ssh-r-sync/core/internal';
import { runBounded } from './bounded-run.js';

const SHORTHANDS = new Set(['minutely', 'hourly', 'daily', 'weekly', 'monthly', 'yearly', 'annually', 'quarterly', 'semiannually']);
const DAY = '(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*';
const WEEKDAYS = new RegExp(`^${DAY}(?:\\.\\.${DAY})?(?:,${DAY}(?:\\.\\.${DAY})?)*$`, 'i');
const FIELD = '[*0-9]+(?:\\.\\.[0-9]+)?(?:/[0-9]+)?(?:,[*0-9]+(?:\\.\\.[0-9]+)?(?:/[0-9]+)?)*';
const DATE = new RegExp(`^(?:${FIELD}-)?${FIELD}[-~]${FIELD}$`);
const TIME = new RegExp(`^${FIELD}:${FIELD}(?::${FIELD}(?:\\.[0-9]+)?)?$`);
const ZONE = /^(?:UTC|[A-Z][A-Za-z_+-]*(?:\/[A-Za-z_+-]+)*)$/;

// Throws a one-line usage error unless SPEC is a valid OnCalendar= expression.
export async function checkCalendar(spec: string): Promise<void> {
  const result = await runBounded('systemd-analyze', ['calendar', '--', spec], { timeoutMs: 10_000, maxBytes: 16 * 1024 });
  if (!result.missing && !result.timedOut && result.exitCode !== null) {
    if (result.exitCode === 0) return;
    const reason = result.stderr.trim().split('\n')[0]?.replace(/^Failed to parse calendar specification '.*': /, '') || `exit ${result.exitCode}`;
    throw new UsageError(`invalid --calendar "${printable(spec)}": systemd-analyze calendar says: ${reason} (e.g. daily, weekly, Mon..Fri 02:00, *-*-* 03:30)`);
  }
  if (!calendarLooksValid(spec)) {
    throw new UsageError(`invalid --calendar "${printable(spec)}": expected an OnCalendar= expression such as daily, weekly, Mon..Fri 02:00, *-*-* 03:30 (systemd.time(7))`);
  }
}

// The grammar of systemd.time(7) "Calendar Events", for machines without systemd-analyze:
// a shorthand, or [WEEKDAYS] [DATE] [TIME] [TIMEZONE] with at least one part.
export function calendarLooksValid(spec: string): boolean {
  const words = spec.trim().split(/\s+/);
  if (words.length === 1 && SHORTHANDS.has(words[0]!.toLowerCase())) return true;
  let i = 0;
  let parts = 0;
  if (words[i] !== undefined && WEEKDAYS.test(words[i]!)) (i += 1), (parts += 1);
  if (words[i] !== undefined && DATE.test(words[i]!)) (i += 1), (parts += 1);
  if (words[i] !== undefined && TIME.test(words[i]!)) (i += 1), (parts += 1);
  if (parts && words[i] !== undefined && ZONE.test(words[i]!)) i += 1;
  return parts > 0 && i === words.length;
}

function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}
