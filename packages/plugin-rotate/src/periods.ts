// Calendar periods in UTC, named the way reasons show them: hour 2026-11-20T14, day 2026-11-20,
// ISO week 2026-W47 (Monday to Sunday; the week-year may differ from the calendar year), month
// 2026-11, year 2026. UTC because snapshot ids are UTC: a period never depends on the server's zone.
import type { Unit } from './policy.js';

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

// The ISO 8601 week of a date: the week-year and week number.
export function isoWeek(date: Date): { year: number; week: number } {
  // The Thursday of this date's week decides the week-year.
  const day = (date.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() - day + 3));
  const year = thursday.getUTCFullYear();
  const firstThursday = new Date(Date.UTC(year, 0, 4));
  const firstMonday = Date.UTC(year, 0, 4 - ((firstThursday.getUTCDay() + 6) % 7));
  return { year, week: 1 + Math.round((thursday.getTime() - 3 * 86400000 - firstMonday) / (7 * 86400000)) };
}

// The period of `unit` that `date` falls in, as a sortable label.
export function periodKey(unit: Unit, date: Date): string {
  const y = pad(date.getUTCFullYear(), 4);
  const m = pad(date.getUTCMonth() + 1);
  const d = pad(date.getUTCDate());
  switch (unit) {
    case 'h':
      return `${y}-${m}-${d}T${pad(date.getUTCHours())}`;
    case 'd':
      return `${y}-${m}-${d}`;
    case 'w': {
      const { year, week } = isoWeek(date);
      return `${pad(year, 4)}-W${pad(week)}`;
    }
    case 'm':
      return `${y}-${m}`;
    case 'y':
      return y;
  }
}
