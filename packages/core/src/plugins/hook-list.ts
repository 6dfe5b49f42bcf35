// `--hook-list`: every point with its contracts, then the taps that are registered, in run order.
import { PART_OF_POINT, UNGUARDED, type PipelineHooks } from '../pipeline/hooks.js';
import { HOOK_KEYS, POINT_ALIASES, POINTS } from '../pipeline/points.js';
import { SCRIPT_TAP_ORIGIN } from '../exec/exec-plugin.js';

export interface ListedTap {
  point: string;
  kind: 'script' | 'plugin';
  name: string;
}

// The taps on each point in the order they will run.
export function listTaps(hooks: PipelineHooks): ListedTap[] {
  return POINTS.flatMap(({ name: point }) =>
    [...hooks[HOOK_KEYS[point]].taps, ...(point === PART_OF_POINT.beforeCommit ? hooks.beforeCommit.taps : []), ...(point === UNGUARDED.progress ? hooks.progress.taps : [])]
      .filter((tap) => tap.name !== 'ssh-r-sync-guard')
      .map((tap) => ({
        point,
        kind: (tap as { origin?: string }).origin === SCRIPT_TAP_ORIGIN ? ('script' as const) : ('plugin' as const),
        name: tap.name,
      })),
  );
}

/** The snapshot store a pipeline uses: the plugin that brings it and its kind. */
export interface ListedStore {
  plugin: string;
  kind: string;
}

// The human-readable hook list; `store` is the pipeline's snapshot store (null: a mirror).
export function formatHookList(hooks: PipelineHooks | null, store: ListedStore | null = null): string {
  const lines = ['Hook points, in run order. Attach scripts with -x/--hook POINT:PATH, plugins with --plugin or the config file.', ''];
  for (const point of POINTS) {
    const aliases = Object.entries(POINT_ALIASES)
      .filter(([, target]) => target === point.name)
      .map(([alias]) => alias);
    lines.push(`${point.name}${aliases.length ? `  (alias: ${aliases.join(', ')})` : ''}`);
    lines.push(`    when:    ${point.when}`);
    lines.push(`    argv:    ${point.argv ? point.argv.join(' ') : '- (TS plugins only)'}`);
    lines.push(`    stdin:   ${point.stdin}`);
    lines.push(`    stdout:  ${point.stdout}`);
    lines.push(`    exit:    ${point.exit}`);
    lines.push('');
  }
  lines.push(
    'Every script also gets SSH_R_SYNC_POINT, SSH_R_SYNC_ROLE, SSH_R_SYNC_ROOT, SSH_R_SYNC_DIR, SSH_R_SYNC_NAME and',
    'SSH_R_SYNC_MODE (plus SSH_R_SYNC_PRIVILEGED, SSH_R_SYNC_EXIT_CODE or SSH_R_SYNC_STATUS where it has them) in its',
    'environment, which never holds secrets. Scripts run without a shell, in their own process group; a second after one',
    'exits, whatever it left running that still holds its output is stopped. Taps on one point run in the order given.',
    '--hook-timeout SECONDS bounds every tap, scripts and plugins: on expiry its process group is killed and the run',
    'fails as a timeout. Exit 75 means "not now" only where the point says so.',
    '',
  );
  if (!hooks) return lines.join('\n');
  const taps = listTaps(hooks);
  lines.push(`Snapshot store: ${store ? `plugin ${store.plugin} (${store.kind}): it prepares each run's snapshot after the rsync.pre taps and commits it after the rsync.post taps` : 'none: ROOT/NAME is a plain mirror'}`);
  lines.push('Registered taps, in run order:');
  for (const point of POINTS) {
    const here = taps.filter((tap) => tap.point === point.name);
    const shown = here.length ? here.map((tap, i) => `${i + 1}. ${tap.kind} ${tap.name}`).join('   ') : '(none)';
    lines.push(`  ${point.name.padEnd(11)} ${shown}`);
  }
  return `${lines.join('\n')}\n`;
}
