// The metrics, as one table of families, and their rendering in Prometheus' text exposition
// format (https://prometheus.io/docs/instrumenting/exposition_formats/): HELP and TYPE lines,
// each family's samples together, label values escaped, no sample timestamps (node_exporter's
// textfile collector refuses them). The README's table is this table in words.

/** What is known of one host when the file is written. */
export interface HostMetrics {
  host: string;
  /** `snapshots`, `mirror` or `none` (nothing complete yet), as `ssh-r-sync-admin status` says. */
  kind: string;
  /** The store kind (`snapshots`, `btrfs`, `mirror`, …); null before anything was stored. */
  store: string | null;
  /** The last run that reached the host's directory; null: none recorded. */
  lastRun: {
    /** Null when only the host record knows the run (it keeps no start time). */
    startedAt: string | null;
    at: string;
    status: 'success' | 'failure' | 'skipped';
    /** The receiver's exit code: 0, 1, 2 or 75. */
    exitCode: number | null;
    /** Null: rsync did not run. */
    rsyncExitCode: number | null;
    files: number | null;
    bytes: number | null;
    durationMs: number | null;
  } | null;
  lastSuccess: string | null;
  complete: number;
  incomplete: number;
  /** When the newest complete backup started (what its age counts from); null: none. */
  newestComplete: string | null;
  lastVerify: { at: string; ok: boolean; problems: number } | null;
  lockHeld: boolean;
  stale: boolean;
  /** The host's max age (the status report's, or kept from the last one); null: none known. */
  maxAgeSeconds: number | null;
  /** Gauges other plugins recorded about the host (core's host facts: plugin-restic's off-site lag), by plugin. */
  facts?: Record<string, { gauges: { name: string; help: string; labels: Record<string, string>; value: number }[] }>;
}

type Labels = Record<string, string>;
type Sample = [Labels, number];

interface Family {
  name: string;
  help: string;
  samples(h: HostMetrics): Sample[];
}

export const PREFIX = 'ssh_r_sync_';
export const OUTCOMES = ['success', 'failure', 'skipped'] as const;
/** The family whose values the plugin reads back from its own file (the status timer's limits). */
export const MAX_AGE = `${PREFIX}max_age_seconds`;

const seconds = (iso: string | null | undefined): number => {
  const ms = iso ? Date.parse(iso) : Number.NaN;
  return Number.isFinite(ms) ? ms / 1000 : 0;
};
const one = (h: HostMetrics, value: number): Sample[] => [[{ host: h.host }, value]];
const flag = (value: boolean): number => (value ? 1 : 0);

/** Every family, in the order of the file. 0 stands for "never" in a timestamp. */
const FAMILY_LIST: Family[] = [
  { name: 'host_info', help: 'Always 1; kind (snapshots, mirror, none) and store (snapshots, btrfs, mirror, …) of the host.', samples: (h) => [[{ host: h.host, kind: h.kind, store: h.store ?? '' }, 1]] },
  { name: 'last_run_start_timestamp_seconds', help: 'When the last run started (Unix time); 0: no run recorded, or its start is unknown.', samples: (h) => one(h, seconds(h.lastRun?.startedAt)) },
  { name: 'last_run_end_timestamp_seconds', help: 'When the last run ended (Unix time); 0: no run recorded.', samples: (h) => one(h, seconds(h.lastRun?.at)) },
  { name: 'last_run_outcome', help: 'The last run ended as this outcome: 1 for it, 0 for the others (all 0: no run recorded).', samples: (h) => OUTCOMES.map((outcome) => [{ host: h.host, outcome }, flag(h.lastRun?.status === outcome)]) },
  { name: 'last_run_exit_code', help: "The receiver's exit code of the last run: 0 ok, 1 failed, 2 configuration, 75 skipped; -1: unknown.", samples: (h) => one(h, h.lastRun?.exitCode ?? -1) },
  { name: 'last_run_rsync_exit_code', help: "rsync's exit code in the last run; -1: rsync did not run.", samples: (h) => one(h, h.lastRun?.rsyncExitCode ?? -1) },
  { name: 'last_run_transferred_bytes', help: "Bytes of the regular files rsync transferred in the last run (rsync's --stats).", samples: (h) => one(h, h.lastRun?.bytes ?? 0) },
  { name: 'last_run_transferred_files', help: "Regular files rsync transferred in the last run (rsync's --stats).", samples: (h) => one(h, h.lastRun?.files ?? 0) },
  { name: 'last_run_duration_seconds', help: 'How long the last run took.', samples: (h) => one(h, (h.lastRun?.durationMs ?? 0) / 1000) },
  { name: 'last_success_timestamp_seconds', help: 'When a run last succeeded (Unix time); 0: never.', samples: (h) => one(h, seconds(h.lastSuccess)) },
  { name: 'snapshots', help: 'Snapshots of the host by state: complete (done mark present) or incomplete (failed, interrupted or running); a mirror counts as 1 complete.', samples: (h) => [[{ host: h.host, state: 'complete' }, h.complete], [{ host: h.host, state: 'incomplete' }, h.incomplete]] },
  { name: 'newest_complete_snapshot_timestamp_seconds', help: 'When the newest complete backup started (Unix time); its age is time() minus this; 0: none.', samples: (h) => one(h, seconds(h.newestComplete)) },
  { name: 'last_verify_timestamp_seconds', help: 'When ssh-r-sync-admin verify last checked the newest complete backup (Unix time); 0: never.', samples: (h) => one(h, seconds(h.lastVerify?.at)) },
  { name: 'last_verify_ok', help: 'The last verify of the newest complete backup passed: 1; it found problems, or never ran: 0.', samples: (h) => one(h, flag(h.lastVerify?.ok === true)) },
  { name: 'last_verify_problems', help: 'Problems the last verify of the newest complete backup found.', samples: (h) => one(h, h.lastVerify?.problems ?? 0) },
  { name: 'lock_held', help: "A live process (a run, prune or restore) held the host's lock when the file was written: 1, else 0.", samples: (h) => one(h, flag(h.lockHeld)) },
  { name: 'stale', help: 'When the file was written, the host had no complete backup, or its newest was older than its max age: 1, else 0.', samples: (h) => one(h, flag(h.stale)) },
  { name: 'max_age_seconds', help: 'The max age of the host (receiver config maxAge, hosts.NAME.maxAge, or --max-age of the status timer).', samples: (h) => (h.maxAgeSeconds === null ? [] : one(h, h.maxAgeSeconds)) },
];

/** Every family, with its full name. */
export const FAMILIES: Family[] = FAMILY_LIST.map((family) => ({ ...family, name: `${PREFIX}${family.name}` }));

// A label value as the text format wants it: backslash, double quote and line feed escaped.
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

// HELP text: backslash and line feed escaped.
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}

// The textfile for these hosts: every family with samples, HELP and TYPE first, hosts in order.
export function render(hosts: HostMetrics[]): string {
  const lines = ['# ssh-r-sync: written by @ssh-r-sync/plugin-prometheus after each run and by the status timer; do not edit.'];
  for (const family of [...FAMILIES, ...factFamilies(hosts)]) {
    const samples = hosts.flatMap((h) => family.samples(h));
    if (!samples.length) continue;
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} gauge`);
    for (const [labels, value] of samples) {
      const text = Object.entries(labels).map(([key, v]) => `${key}="${escapeLabelValue(v)}"`).join(',');
      lines.push(`${family.name}{${text}} ${formatValue(value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

// Families for the gauges other plugins recorded about hosts: ssh_r_sync_PLUGIN_NAME{host, …},
// in the order first seen; a name that a built-in family has is left out.
function factFamilies(hosts: HostMetrics[]): Family[] {
  const builtIn = new Set(FAMILIES.map((family) => family.name));
  const families = new Map<string, Family>();
  for (const h of hosts) {
    for (const [plugin, fact] of Object.entries(h.facts ?? {})) {
      for (const gauge of fact.gauges) {
        const name = `${PREFIX}${plugin.replace(/-/g, '_')}_${gauge.name}`;
        if (builtIn.has(name) || families.has(name)) continue;
        families.set(name, {
          name,
          help: `${gauge.help} (recorded by plugin ${plugin})`,
          samples: (host) => (host.facts?.[plugin]?.gauges ?? []).filter((g) => g.name === gauge.name).map((g) => [{ host: host.host, ...g.labels }, g.value] as Sample),
        });
      }
    }
  }
  return [...families.values()];
}

// The max ages in a file this plugin wrote: they come only with the status timer's report, and a
// run's rewrite keeps them. Host names never need escapes (NAME_PATTERN), so a plain match reads them.
export function readMaxAges(text: string): Map<string, number> {
  const found = new Map<string, number>();
  const pattern = new RegExp(`^${MAX_AGE}\\{host="([A-Za-z0-9._-]+)"\\} (\\S+)$`, 'gm');
  for (const [, host, value] of text.matchAll(pattern)) {
    const seconds = Number(value);
    if (host && Number.isFinite(seconds) && seconds >= 0) found.set(host, seconds);
  }
  return found;
}
