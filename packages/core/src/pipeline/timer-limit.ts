// Time limits that setTimeout can hold. Beyond 2^31-1 ms (about 24.8 days) it fires at once,
// with only a warning: a month-long limit would end a run the moment it began.

export const MAX_TIMER_MS = 2 ** 31 - 1;

// The limit in milliseconds as a timer can keep it: 0 (none) for 0 or anything longer.
export function timerLimit(ms: number): number {
  return ms > 0 && ms <= MAX_TIMER_MS ? ms : 0;
}
