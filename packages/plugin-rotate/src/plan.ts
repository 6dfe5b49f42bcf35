// The retention decision as a pure function: which snapshots to keep and which to delete, each
// with its reasons. Count-based, like borg and restic: a rule `14d` keeps the newest complete
// snapshot of each of the 14 most recent days *that have one*, so a host that was offline for a
// month keeps its history instead of having it expire. Rules are OR-ed: one snapshot may be the
// daily, the weekly and the monthly at once, and then carries all three reasons.
import { periodKey } from './periods.js';
import { FUTURE_TOLERANCE_MS } from '@ssh-r-sync/core';
import { UNITS, parsePolicy, type RetentionPolicy, type Unit } from './policy.js';

/** What the plan needs to know of a snapshot. */
export interface SnapshotState {
  id: string;
  /** When the run started (the date in the id). */
  date: Date;
  /** It has its done mark. Incomplete snapshots never count toward any rule. */
  complete: boolean;
  /** Dated in the future (see listSnapshots): kept, and never counted as newest or toward a rule. */
  future?: boolean;
  /** Holds on it (core's readHolds: "held: not yet copied to offsite (restic)"): kept with these reasons. */
  held?: readonly string[];
}

export interface KeepDecision {
  id: string;
  reasons: string[];
}

export interface DeleteDecision {
  id: string;
  reason: string;
}

/** Both lists oldest first; every snapshot given appears in exactly one of them. */
export interface RetentionPlan {
  keep: KeepDecision[];
  delete: DeleteDecision[];
}

// Decides, for one host's snapshots, what `policy` keeps and deletes at time `now`.
export function plan(snapshots: readonly SnapshotState[], policy: RetentionPolicy, now: Date): RetentionPlan {
  const p = parsePolicy(policy);
  const sorted = sortSnapshots(snapshots);
  // Newest first. One dated in the future (a clock that went back, or a planted id) would take
  // "newest" and its period from the real latest backup, which could then expire: it is kept
  // aside instead, and every rule counts the rest.
  const isFuture = (s: SnapshotState) => s.future ?? s.date.getTime() > now.getTime() + FUTURE_TOLERANCE_MS;
  const complete = sorted.filter((s) => s.complete && !isFuture(s)).reverse();
  const newest = complete[0];
  const reasons = new Map<string, string[]>();
  const add = (id: string, reason: string) => reasons.set(id, [...(reasons.get(id) ?? []), reason]);

  if (newest) add(newest.id, 'newest complete');
  if (p.keepLast > 1) complete.slice(0, p.keepLast).forEach((s, i) => add(s.id, `keep-last ${i + 1}/${p.keepLast}`));

  // For each rule: the periods it counts, each with the snapshot that represents it.
  const counted = new Map<Unit, Map<string, string>>();
  for (const rule of p.rules) {
    const periods = new Map<string, string>();
    for (const s of complete) {
      const key = periodKey(rule.unit, s.date);
      if (periods.has(key)) continue; // an older snapshot of a period already represented
      if (periods.size >= rule.count) break;
      periods.set(key, s.id);
      add(s.id, `${UNITS[rule.unit].rule} ${periods.size}/${rule.count === Infinity ? '*' : rule.count} (${key})`);
    }
    counted.set(rule.unit, periods);
  }

  for (const s of sorted) {
    if (!s.complete) {
      if (!newest) add(s.id, 'incomplete, no complete snapshot yet');
      else if (compare(s, newest) > 0) add(s.id, 'incomplete, newer than the newest complete');
    }
    if (isFuture(s)) {
      add(s.id, 'dated in the future: kept, never counted as newest (check the clock)');
      continue;
    }
    const age = now.getTime() - s.date.getTime();
    // An incomplete snapshot older than the newest complete one is superseded whatever the clock
    // says: the ids of runs in quick succession step ahead of it (beginSnapshot), not the clock back.
    const superseded = newest !== undefined && !s.complete && compare(s, newest) < 0;
    if (age < 0) {
      if (!superseded) add(s.id, 'dated in the future');
    } else if (age < p.minAgeMs) add(s.id, `younger than ${p.minAge} (min-age)`);
  }

  // A plugin's hold (an off-site copy still to be made) keeps the snapshot whatever the rules say.
  for (const s of sorted) for (const reason of s.held ?? []) add(s.id, reason);

  // Everything without a reason to stay is deleted, oldest first, up to the cap.
  const expired = (s: SnapshotState): string => {
    const beyond: string[] = [];
    const superseded: string[] = [];
    for (const rule of p.rules) {
      const key = periodKey(rule.unit, s.date);
      if (counted.get(rule.unit)!.has(key)) superseded.push(`${UNITS[rule.unit].period} ${key}`);
      else beyond.push(rule.token);
    }
    const parts = [...(beyond.length ? [`beyond ${beyond.join(' ')}`] : []), ...(superseded.length ? [`not the newest of its ${superseded.join(', ')}`] : [])];
    return `expired: ${parts.join('; ')}`;
  };
  const candidates = sorted
    .filter((s) => !reasons.has(s.id))
    .map((s) => ({ id: s.id, reason: s.complete ? expired(s) : `incomplete, superseded by ${newest!.id}` }));
  const toDelete = candidates.slice(0, p.maxDeletes);
  for (const c of candidates.slice(toDelete.length)) add(c.id, `deletion cap reached (${p.maxDeletes} per run); next run: ${c.reason}`);

  return {
    keep: sorted.filter((s) => reasons.has(s.id)).map((s) => ({ id: s.id, reasons: reasons.get(s.id)! })),
    delete: toDelete,
  };
}

function compare(a: SnapshotState, b: SnapshotState): number {
  return a.date.getTime() - b.date.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

// Oldest first; refuses input that would make the plan ambiguous.
function sortSnapshots(snapshots: readonly SnapshotState[]): SnapshotState[] {
  const ids = new Set<string>();
  for (const s of snapshots) {
    if (!(s.date instanceof Date) || Number.isNaN(s.date.getTime())) throw new TypeError(`snapshot ${JSON.stringify(s.id)} has no valid date`);
    if (ids.has(s.id)) throw new TypeError(`snapshot ${JSON.stringify(s.id)} is listed twice`);
    ids.add(s.id);
  }
  return [...snapshots].sort(compare);
}
