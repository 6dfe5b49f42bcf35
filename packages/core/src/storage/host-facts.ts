// What a plugin knows about a host beyond the receiver's own records, kept in the host's record
// under the plugin's name (plugin-restic: the newest off-site copy and its lag): a few lines that
// `ssh-r-sync-admin status` prints, and named gauges that plugin-prometheus exports. Plugins never
// import each other; they meet here. Read back checked and bounded: the record lies in ROOT.
import { readHostRecord, writeHostRecord, KIND_PATTERN } from './host-record.js';

/** One gauge: `ssh_r_sync_PLUGIN_NAME{host, LABELS…} VALUE` in the Prometheus file. */
export interface HostGauge {
  name: string;
  help: string;
  labels: Record<string, string>;
  value: number;
}

/** A plugin's facts about one host. */
export interface HostFact {
  /** When the plugin last recorded them. */
  at: string;
  /** Short lines for people (status prints them under the host). */
  lines: string[];
  gauges: HostGauge[];
}

const MAX_LINES = 8;
const MAX_LINE = 500;
const MAX_GAUGES = 64;
const METRIC = /^[a-z][a-z0-9_]{0,63}$/;
const LABEL = /^[a-z][a-z0-9_]{0,31}$/;

// Records (or with null, removes) plugin `plugin`'s facts about host `name`; only a host the
// receiver has a record of; the caller holds the host's lock (the record is read, changed, written).
export async function recordHostFacts(root: string, name: string, plugin: string, fact: Omit<HostFact, 'at'> | null): Promise<void> {
  if (!KIND_PATTERN.test(plugin)) throw new Error(`facts of plugin "${plugin}": the name must match ${KIND_PATTERN.source}`);
  const record = await readHostRecord(root, name);
  if (!record) return;
  const facts = { ...(record.facts ?? {}) };
  if (fact) facts[plugin] = checkFact({ ...fact, at: new Date().toISOString() });
  else delete facts[plugin];
  await writeHostRecord(root, name, { ...record, facts });
}

// The facts of a record, each plugin's checked; anything malformed is left out.
export function hostFacts(facts: unknown): Record<string, HostFact> {
  const out: Record<string, HostFact> = {};
  if (!facts || typeof facts !== 'object') return out;
  for (const [plugin, value] of Object.entries(facts as Record<string, unknown>).slice(0, 16)) {
    if (!KIND_PATTERN.test(plugin)) continue;
    try {
      out[plugin] = checkFact(value as HostFact);
    } catch {
      // not one of ours
    }
  }
  return out;
}

function checkFact(fact: HostFact): HostFact {
  if (!fact || typeof fact !== 'object' || typeof fact.at !== 'string' || !Array.isArray(fact.lines) || !Array.isArray(fact.gauges)) throw new Error('not a fact');
  const lines = fact.lines.slice(0, MAX_LINES).map((line) => (String(line).length > MAX_LINE ? `${String(line).slice(0, MAX_LINE - 1)}…` : String(line)));
  const gauges = fact.gauges.slice(0, MAX_GAUGES).filter((g) => {
    if (!g || typeof g !== 'object' || !METRIC.test(g.name) || typeof g.help !== 'string' || typeof g.value !== 'number' || !Number.isFinite(g.value)) return false;
    const labels = Object.entries(g.labels ?? {});
    return labels.length <= 8 && labels.every(([key, v]) => LABEL.test(key) && key !== 'host' && typeof v === 'string' && v.length <= 200);
  }).map((g) => ({ name: g.name, help: g.help.slice(0, 300), labels: { ...g.labels }, value: g.value }));
  return { at: fact.at.slice(0, 64), lines, gauges };
}
