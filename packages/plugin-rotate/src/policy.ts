// The retention policy as users write it ('14d 4w 6m 2y', a keep-last floor, a deletion cap)
// and its checked form. A policy that cannot be read is a configuration error: it never
// falls back to "keep nothing".
import { SshRSyncError, parseDuration } from '@ssh-r-sync/core';

/** A retention policy as written in the config or on the command line. */
export interface RetentionPolicy {
  /** Periods to keep, e.g. '14d 4w 6m 2y' (h, d, w, m, y; '*' for all, as in '*y'). */
  keep: string;
  /** Always keep this many of the newest complete snapshots (default 1: the newest). */
  keepLast?: number;
  /** Delete at most this many snapshots per run (default 10); Infinity for no cap. */
  maxDeletes?: number;
  /** Keep every snapshot younger than this, e.g. '36h' or '2d' (default: none). */
  minAge?: string;
}

export type Unit = 'h' | 'd' | 'w' | 'm' | 'y';

/** One `<N><unit>` term: keep the newest complete snapshot of each of the last N periods. */
export interface PeriodRule {
  unit: Unit;
  /** Number of periods; Infinity for '*'. */
  count: number;
  /** As written: '14d', '*y'. */
  token: string;
}

export interface ParsedPolicy {
  rules: PeriodRule[];
  keepLast: number;
  maxDeletes: number;
  /** Milliseconds, or 0 for none. */
  minAgeMs: number;
  /** As written, for reasons: '2d'. */
  minAge: string | null;
  /** The policy in one line, for logs: '14d 4w 6m 2y, keep-last 3, max 10 deletions per run'. */
  summary: string;
}

export const DEFAULT_KEEP_LAST = 1;
export const DEFAULT_MAX_DELETES = 10;

/** Units from the finest to the coarsest, with the words reasons use. */
export const UNITS: Record<Unit, { rule: string; period: string }> = {
  h: { rule: 'hourly', period: 'hour' },
  d: { rule: 'daily', period: 'day' },
  w: { rule: 'weekly', period: 'week' },
  m: { rule: 'monthly', period: 'month' },
  y: { rule: 'yearly', period: 'year' },
};
const UNIT_ORDER: Unit[] = ['h', 'd', 'w', 'm', 'y'];
const KEYS = new Set(['keep', 'keepLast', 'maxDeletes', 'minAge']);
const EXAMPLE = "e.g. '14d 4w 6m 2y' (h hourly, d daily, w weekly, m monthly, y yearly; '*' for all)";

function configError(message: string): SshRSyncError {
  return new SshRSyncError('ECONFIG', `retention policy: ${message}`);
}

// Parses the `keep` string: whitespace-separated `<N><unit>` terms, each unit at most once.
export function parseKeep(keep: unknown): PeriodRule[] {
  if (typeof keep !== 'string' || keep.trim() === '') throw configError(`keep is ${keep === undefined ? 'missing' : 'empty'}: ${EXAMPLE}`);
  const rules = new Map<Unit, PeriodRule>();
  for (const token of keep.trim().split(/\s+/)) {
    const match = /^(\d+|\*)([hdwmy])$/.exec(token);
    if (!match) throw configError(`cannot read ${JSON.stringify(token)} in keep ${JSON.stringify(keep)}: ${EXAMPLE}`);
    const unit = match[2] as Unit;
    const count = match[1] === '*' ? Infinity : Number(match[1]);
    if (count === 0) throw configError(`${JSON.stringify(token)} keeps nothing: leave it out, or give at least 1`);
    if (!Number.isSafeInteger(count) && count !== Infinity) throw configError(`${JSON.stringify(token)} is too large`);
    if (rules.has(unit)) throw configError(`${UNITS[unit].rule} is given twice in keep ${JSON.stringify(keep)}`);
    rules.set(unit, { unit, count, token });
  }
  return UNIT_ORDER.filter((unit) => rules.has(unit)).map((unit) => rules.get(unit)!);
}

// The shared duration syntax (core), re-exported: '90s', '90m', '2h30m', '36h', '2d', '1w'.
export { parseDuration };

// Checks a policy as a whole and fills in the defaults; throws ECONFIG with the reason.
export function parsePolicy(policy: RetentionPolicy): ParsedPolicy {
  if (typeof policy !== 'object' || policy === null) throw configError(`expected an object like { keep: '14d 4w 6m 2y' }`);
  const unknown = Object.keys(policy).filter((key) => !KEYS.has(key));
  if (unknown.length) throw configError(`unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...KEYS].join(', ')})`);
  const rules = parseKeep(policy.keep);
  const keepLast = policy.keepLast ?? DEFAULT_KEEP_LAST;
  if (!Number.isSafeInteger(keepLast) || keepLast < 1) {
    throw configError(`keepLast must be a whole number >= 1 (the newest complete snapshot is always kept), got ${JSON.stringify(policy.keepLast)}`);
  }
  const maxDeletes = policy.maxDeletes ?? DEFAULT_MAX_DELETES;
  if (maxDeletes !== Infinity && (!Number.isSafeInteger(maxDeletes) || maxDeletes < 1)) {
    throw configError(`maxDeletes must be a whole number >= 1 or Infinity, got ${JSON.stringify(policy.maxDeletes)}`);
  }
  let minAgeMs = 0;
  if (policy.minAge !== undefined) {
    if (typeof policy.minAge !== 'string') throw configError(`minAge must be a duration such as '2d', got ${JSON.stringify(policy.minAge)}`);
    // In a policy, keep's m is months: a bare minAge '3m' would silently mean 3 minutes.
    if (/^\s*\d+(\.\d+)?\s*m\s*$/i.test(policy.minAge)) {
      throw configError(`minAge: cannot read duration ${JSON.stringify(policy.minAge)}: 'm' is ambiguous here (keep's m is months): write ${parseFloat(policy.minAge)}min or ${parseFloat(policy.minAge) * 30}d`);
    }
    try {
      minAgeMs = parseDuration(policy.minAge);
    } catch (error) {
      throw configError(`minAge: ${(error as Error).message}`);
    }
  }
  const summary = [
    rules.map((rule) => rule.token).join(' '),
    ...(keepLast > 1 ? [`keep-last ${keepLast}`] : []),
    ...(policy.minAge ? [`min-age ${policy.minAge}`] : []),
    maxDeletes === Infinity ? 'no deletion cap' : `max ${maxDeletes} deletions per run`,
  ].join(', ');
  return { rules, keepLast, maxDeletes, minAgeMs, minAge: policy.minAge ?? null, summary };
}
