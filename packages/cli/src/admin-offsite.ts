// `ssh-r-sync-admin offsite sync|status|check|forget ROOT [NAME...]`: the off-site copies of
// @ssh-r-sync/plugin-restic by hand — the same catch-up a backup runs afterwards (under the
// plugin's off-site lock; a mirror's view made under the host's lock), what each repository has and how far it lags, `restic check` with a data sample, and
// retention off-site. The repositories come from the receiver's config (the plugin's options);
// the cli does not import the plugin: it loads it as the receiver does and uses its `offsite` API.
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { SshRSyncError, UsageError, createLogger, hostStatus, isLockBusy, loadConfig, loadPlugin, oneLine, storedSnapshots, type Logger, type Plugin, type Retention } from '@ssh-r-sync/core/internal';
import { ADMIN_PREFIX, backupRoot, becomeOwnerOf, columns, hostNames, subCommand, swappable, type ExitCodeHolder } from './admin-shared.js';
import { onSignals, seconds } from './common.js';
import { JSON_SCHEMA } from './format.js';

/** The part of plugin-restic's `offsite` API that the commands use (structural: no import). */
export interface OffsiteApi {
  options: { repositories: { name: string; keep: unknown }[]; timeoutMs: number };
  sync(root: string, name: string, options?: { signal?: AbortSignal; logger?: Logger; only?: string; retention?: Retention; hostLocked?: boolean; lockWait?: number }): Promise<{ name: string; copied: string[]; pending: string[]; removed: number; error: string | null }[]>;
  forget(root: string, name: string, repository: string, options?: { dryRun?: boolean; signal?: AbortSignal; logger?: Logger; retention?: Retention }): Promise<{ removed: number; dryRun: boolean }>;
  check(repository: string, samplePercent: number, signal?: AbortSignal): Promise<string>;
  copies(repository: string, name: string, signal?: AbortSignal): Promise<{ id: string; resticId: string; time: string; mode: string | null }[]>;
  restore(repository: string, name: string, id: string, target: string, signal?: AbortSignal, exclude?: readonly string[]): Promise<{ id: string; resticId: string; time: string; mode: string | null }>;
  state(root: string, name: string): Promise<{ repositories: Record<string, { repository: string; newest: { id: string; startedAt: string } | null; pending: string[]; lastSuccess: string | null; lastFailure: { at: string; error: string } | null; partial?: string[] }> }>;
}

interface OffsiteOptions {
  config?: string;
  repository?: string;
  lockWait?: number;
  json?: boolean;
  sample?: number;
  dryRun?: boolean;
  debug?: boolean;
}

// The plugin-restic of the receiver's config, loaded as the receiver loads it, with the host's
// rotation policy when the config loads plugin-rotate (for a repository's keep: "rotate").
export async function loadOffsite(configFile: string | undefined): Promise<OffsiteApi & { retention?: Retention }> {
  const loaded = await loadConfig({ file: configFile });
  let api: OffsiteApi | undefined;
  let retention: Retention | undefined;
  for (const entry of loaded.config.plugins ?? []) {
    const name = Array.isArray(entry) ? entry[0] : entry;
    if (typeof name !== 'string' || !/plugin-(restic|rotate)/.test(name)) continue;
    const plugin = (await loadPlugin(entry, loaded.baseDir)) as Plugin & { offsite?: OffsiteApi };
    if (plugin.offsite) api ??= plugin.offsite;
    if (plugin.retention) retention = plugin.retention;
  }
  if (api) return { ...api, retention };
  throw new SshRSyncError('ECONFIG', `${loaded.filepath ?? 'no receiver config was found'}${loaded.filepath ? ' loads no @ssh-r-sync/plugin-restic' : ''}: give the receiver's config with --config (its plugins name the repositories)`);
}

function percentage(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0 && n <= 100)) throw new InvalidArgumentError('give a percentage, 0 < PCT <= 100 (e.g. 5)');
  return n;
}

function repositoryNames(api: OffsiteApi, only: string | undefined): string[] {
  const names = api.options.repositories.map((r) => r.name);
  if (only && !names.includes(only)) throw new UsageError(`--repository ${only}: the config has ${names.join(', ')}`);
  return only ? [only] : names;
}

// The `offsite` sub-command and its own sub-commands.
export function offsiteCommand(result: ExitCodeHolder): Command {
  const offsite = subCommand(new Command('offsite'))
    .usage('<sync|status|check|forget> [options] BACKUP_ROOT [NAME...]')
    .summary('off-site copies in restic repositories (plugin-restic): catch up, show the lag, check, forget')
    .description("The off-site copies that @ssh-r-sync/plugin-restic makes after each backup, by hand. The repositories are the plugin's, read from the receiver's config (--config, default: its fixed places). Run as root over a BACKUP_ROOT that another account owns (a non-root receiver's), sync and forget run as that account. See docs/offsite.md.");
  const common = (command: Command) =>
    subCommand(command)
      .argument('<BACKUP_ROOT>', 'directory that holds one sub-directory per host')
      .argument('[NAME...]', 'only these hosts (default: every host under BACKUP_ROOT)')
      .option('--config <FILE>', "the receiver's config, whose @ssh-r-sync/plugin-restic names the repositories")
      .option('--repository <NAME>', 'only this repository (by its name in the config)')
      .option('--debug', 'show every restic call');
  offsite.addCommand(
    common(new Command('sync'))
      .summary('copy what each repository lacks, oldest first (what a backup does afterwards); exit 1 if a copy failed, 75 if a host was only busy (its copy already at work)')
      .option('--lock-wait <SECONDS>', 'for a host kept as a mirror (its view is made under the host\'s lock, then copied without it): wait this long for its running backup; 0 = skip it at once (default). Snapshots are copied beside running backups', seconds)
      .action(async (root: string, names: string[], options: OffsiteOptions) => void (result.code = await sync(root, names, options))),
  );
  offsite.addCommand(
    common(new Command('status'))
      .summary("per host and repository: the newest copy, the lag behind the newest local snapshot, what is still to copy, the last failure; exit 1 if any lags")
      .option('--json', 'print one JSON object: { root, hosts: [{ name, repositories: [{ name, newest, lagSeconds, pending, lastSuccess, lastFailure }] }] }')
      .action(async (root: string, names: string[], options: OffsiteOptions) => void (result.code = await status(root, names, options))),
  );
  offsite.addCommand(
    subCommand(new Command('check'))
      .summary('restic check of each repository, rereading --sample PCT of its data (what verify --offsite runs)')
      .option('--config <FILE>', "the receiver's config")
      .option('--repository <NAME>', 'only this repository')
      .option('--sample <PCT>', 'reread this share of the data (restic --read-data-subset PCT%); default: structure only', percentage)
      .action(async (options: OffsiteOptions) => void (result.code = await offsiteCheck(options))),
  );
  offsite.addCommand(
    common(new Command('forget'))
      .summary("restic forget --prune of each host's copies with the repository's keep option (keep \"rotate\": plugin-rotate's policy from the same config)")
      .option('--dry-run', 'say how many copies would go, remove nothing')
      .action(async (root: string, names: string[], options: OffsiteOptions) => void (result.code = await forget(root, names, options))),
  );
  return offsite;
}

// Runs `work` with a signal that SIGINT/SIGTERM abort (restic's process groups die with it).
async function withSignals<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const stop = onSignals(
    (signal) => controller.abort(new SshRSyncError('EINTERNAL', `stopped by ${signal}`)),
    () => process.exit(130),
  );
  try {
    return await work(controller.signal);
  } finally {
    stop();
  }
}

// A signal that `signal` aborts, or `timeoutMs` (0: never) with an ETIMEOUT that names the option.
function boundedBy(signal: AbortSignal, timeoutMs: number): { signal: AbortSignal; done(): void } {
  const controller = new AbortController();
  const stop = () => controller.abort(signal.reason);
  signal.addEventListener('abort', stop, { once: true });
  const seconds = timeoutMs / 1000;
  const timer = timeoutMs > 0 ? setTimeout(() => controller.abort(new SshRSyncError('ETIMEOUT', `no end within ${seconds} s (plugin-restic's timeout option)`)), timeoutMs) : undefined;
  return { signal: controller.signal, done: () => (clearTimeout(timer), signal.removeEventListener('abort', stop)) };
}

async function sync(rootArgument: string, names: string[], options: OffsiteOptions): Promise<number> {
  const root = await backupRoot(rootArgument);
  const logger = createLogger({ prefix: ADMIN_PREFIX, debug: Boolean(options.debug) });
  becomeOwnerOf(root, logger);
  const api = await loadOffsite(options.config);
  repositoryNames(api, options.repository);
  let failed = 0;
  let busy = 0;
  await withSignals(async (signal) => {
    for (const name of await hostNames(root, names)) {
      const scoped = logger.scope(name);
      // Bounded as the copy after a backup is (the plugin's timeout): a repository that hangs
      // would keep the -offsite unit, and the host's off-site lock, for good.
      const bounded = boundedBy(signal, api.options.timeoutMs);
      try {
        // Snapshots are copied beside the host's backups (the plugin's own lock); a mirror from a
        // view made under the host's lock, which the plugin takes (waiting --lock-wait).
        for (const r of await api.sync(root, name, { signal: bounded.signal, logger: scoped, only: options.repository, retention: api.retention, lockWait: options.lockWait ?? 0 })) {
          if (r.error) failed += 1;
          process.stdout.write(`${name}: ${r.name}: ${r.copied.length} copied${r.removed ? `, ${r.removed} forgotten` : ''}, ${r.pending.length} still to copy${r.error ? ` (failed: ${r.error})` : ''}\n`);
        }
      } catch (error) {
        if (signal.aborted) throw error;
        if (isLockBusy(error)) busy += 1;
        else failed += 1;
        process.stdout.write(`${name}: ${isLockBusy(error) ? 'skipped' : 'not synced'}: ${oneLine(error)}\n`);
      } finally {
        bounded.done();
      }
    }
  });
  // Busy only (a copy of the host at work already, a mirror's backup running): 75, a skip.
  return failed ? 1 : busy ? 75 : 0;
}

interface RepoStatus {
  name: string;
  repository: string | null;
  newest: string | null;
  lagSeconds: number | null;
  pending: number;
  lastSuccess: string | null;
  lastFailure: { at: string; error: string } | null;
}

// One host's off-site status, per repository, from the plugin's record and the host's newest snapshot.
export async function hostOffsiteStatus(api: OffsiteApi, root: string, name: string, only?: string): Promise<RepoStatus[]> {
  const state = await api.state(root, name);
  const host = await hostStatus(root, name, {});
  const newestLocal = host.newestComplete?.startedAt ?? null;
  // What was committed since the last copy looked (a pull that deferred its copy) is to copy too.
  const local = (await storedSnapshots(root, name)).filter((s) => !s.future);
  return repositoryNames(api, only).map((repo) => {
    const r = state.repositories[repo];
    const newest = r?.newest ?? null;
    const newer = local.filter((s) => !newest || s.done.startedAt > newest.startedAt).length;
    return {
      name: repo,
      repository: r?.repository ?? null,
      newest: newest?.id ?? null,
      lagSeconds: newestLocal && newest ? Math.max(0, Math.round((Date.parse(newestLocal) - Date.parse(newest.startedAt)) / 1000)) : null,
      pending: Math.max(r?.pending.length ?? 0, newer),
      lastSuccess: r?.lastSuccess ?? null,
      lastFailure: r?.lastFailure ?? null,
    };
  });
}

async function status(rootArgument: string, names: string[], options: OffsiteOptions): Promise<number> {
  const root = await backupRoot(rootArgument);
  const api = await loadOffsite(options.config);
  const hosts: { name: string; repositories: RepoStatus[] }[] = [];
  for (const name of await hostNames(root, names)) hosts.push({ name, repositories: await hostOffsiteStatus(api, root, name, options.repository) });
  const ok = hosts.every((h) => h.repositories.every((r) => r.newest !== null && r.pending === 0 && !r.lastFailure));
  if (options.json) process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, root, ok, hosts })}\n`);
  else {
    const rows = [['HOST', 'REPOSITORY', 'NEWEST COPY', 'LAG', 'TO COPY', 'LAST FAILURE']];
    for (const h of hosts) for (const r of h.repositories) rows.push([h.name, r.name, r.newest ?? '-', r.lagSeconds === null ? '-' : `${r.lagSeconds}s`, String(r.pending), r.lastFailure ? `${r.lastFailure.at} ${r.lastFailure.error}` : '-']);
    process.stdout.write(columns(rows));
  }
  return ok ? 0 : 1;
}

// `restic check` of each repository (verify --offsite); exit 1 when one fails.
export async function offsiteCheck(options: OffsiteOptions): Promise<number> {
  const api = await loadOffsite(options.config);
  let failed = 0;
  await withSignals(async (signal) => {
    for (const repo of repositoryNames(api, options.repository)) {
      try {
        const said = await api.check(repo, options.sample ?? 0, signal);
        process.stdout.write(`${repo}: ok${options.sample ? ` (read ${options.sample}% of the data)` : ' (structure)'}: ${said}\n`);
      } catch (error) {
        if (signal.aborted) throw error;
        failed += 1;
        process.stdout.write(`${repo}: check failed: ${oneLine(error)}\n`);
      }
    }
  });
  return failed ? 1 : 0;
}

async function forget(rootArgument: string, names: string[], options: OffsiteOptions): Promise<number> {
  const root = await backupRoot(rootArgument);
  const logger = createLogger({ prefix: ADMIN_PREFIX, debug: Boolean(options.debug) });
  becomeOwnerOf(root, logger);
  const api = await loadOffsite(options.config);
  const repos = repositoryNames(api, options.repository).filter((r) => api.options.repositories.find((x) => x.name === r)?.keep);
  if (!repos.length) throw new UsageError('no repository of the config has a keep option: nothing to forget by');
  let failed = 0;
  await withSignals(async (signal) => {
    for (const name of await hostNames(root, names)) {
      for (const repo of repos) {
        try {
          const { removed, dryRun } = await api.forget(root, name, repo, { dryRun: options.dryRun, signal, logger: logger.scope(name), retention: api.retention });
          process.stdout.write(`${name}: ${repo}: ${dryRun ? 'would forget' : 'forgot'} ${removed}${dryRun && !options.dryRun ? " (plugin-rotate's dryRun: nothing is forgotten)" : ''}\n`);
        } catch (error) {
          if (signal.aborted) throw error;
          failed += 1;
          process.stdout.write(`${name}: ${repo}: forget failed: ${oneLine(error)}\n`);
        }
      }
    }
  });
  return failed ? 1 : 0;
}

/** A copy restored from a repository into a private staging backup root, to be restored from as a local snapshot. */
export interface StagedCopy {
  /** A backup root holding only host NAME with the one snapshot `id`. */
  root: string;
  id: string;
  mode: string | null;
  /** Removes the staging root. */
  cleanup(): Promise<void>;
}

// Restores copy `spec` ('latest' or a snapshot id) of host `name` from repository `repository`
// into ROOT/.ssh-r-sync/offsite-restore/ssh-r-sync-offsite-NAME-XXXX/ (private, on the backup disk: restic writes
// what it stored, stand-ins and xattrs of a fake-super store included), laid out as a store with
// a done mark, so that the local restore (its targets, checks and fake-super reading) does the rest.
// `stageIn`: the folder to stage in (--stage). By default the backup disk, except for root over a
// backup root that another account owns: root's files there (the staged tree, its done mark)
// could be redirected by that account (a symlink swapped in), so root stages in the system's
// temporary folder instead.
export async function stageOffsiteCopy(root: string, name: string, repository: string, spec: string, configFile: string | undefined, signal?: AbortSignal, stageIn?: string): Promise<StagedCopy> {
  const api = await loadOffsite(configFile);
  repositoryNames(api, repository);
  const foreign = process.getuid?.() === 0 && (statSync(root).uid !== 0 || swappable(root) !== null);
  const base = stageIn ?? (foreign ? tmpdir() : join(root, '.ssh-r-sync', 'offsite-restore'));
  const given = stageIn === undefined ? (foreign ? `the temporary folder ${base} ($TMPDIR)` : null) : `--stage ${base}`;
  if (given === null) await mkdir(base, { recursive: true, mode: 0o700 });
  else if (!statSync(base, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${given} is not a directory`);
  // A stage another account could swap (in its root, its home: a --stage, a $TMPDIR kept by sudo)
  // brings back what staging outside the backup root avoids.
  const weak = given !== null && process.getuid?.() === 0 ? swappable(base) : null;
  if (weak) throw new UsageError(`${given}: ${weak}, so another account could redirect root's writes there; give a --stage DIR only root can change`);
  const stage = await mkdtemp(join(base, `ssh-r-sync-offsite-${name}-`));
  const cleanup = () => rm(stage, { recursive: true, force: true });
  try {
    // A partial copy (restic exit 3) the plugin could not forget yet is never restored from.
    const partial = (await api.state(root, name)).repositories[repository]?.partial ?? [];
    const copies = (await api.copies(repository, name, signal)).filter((c) => !partial.some((p) => c.resticId.startsWith(p)));
    const copy = spec === 'latest' ? copies.at(-1) : copies.findLast((c) => c.id === spec);
    if (!copy) {
      const ids = copies.map((c) => c.id);
      throw new UsageError(`${repository} has no copy of ${name}${spec === 'latest' ? '' : ` ${spec}`} (${ids.length ? `copies: ${ids.slice(-5).join(', ')}${ids.length > 5 ? ', …' : ''}` : 'it has none'}): \`ssh-r-sync-admin offsite status\` shows them`);
    }
    const hostDirectory = join(stage, name);
    await mkdir(join(hostDirectory, copy.id), { recursive: true, mode: 0o700 });
    await api.restore(repository, name, copy.resticId, join(hostDirectory, copy.id), signal, partial);
    await mkdir(join(hostDirectory, `${copy.id}.meta`), { mode: 0o700 });
    const mode = copy.mode === 'fake-super' || copy.mode === 'privileged' || copy.mode === 'plain' ? copy.mode : undefined;
    const mark = { version: 1, host: name, snapshot: copy.id, completedAt: copy.time, startedAt: copy.time, rsyncExitCode: 0, originalExitCode: 0, files: null, bytes: null, durationMs: 0, ...(mode ? { mode } : {}), hooks: [], extra: { offsite: { repository, resticId: copy.resticId } } };
    await writeFile(join(hostDirectory, `${copy.id}.meta`, 'done.json'), JSON.stringify(mark), { mode: 0o600 });
    await mkdir(join(stage, '.ssh-r-sync', 'hosts'), { recursive: true, mode: 0o700 });
    await writeFile(join(stage, '.ssh-r-sync', 'hosts', `${name}.json`), JSON.stringify({ version: 1, kind: 'snapshots', store: '@ssh-r-sync/plugin-link-dest', since: new Date().toISOString() }), { mode: 0o600 });
    return { root: stage, id: copy.id, mode: copy.mode, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
