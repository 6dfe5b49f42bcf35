// @ssh-r-sync/plugin-btrfs: each host's backups as btrfs snapshots. ROOT/NAME is a subvolume,
// every run rsyncs in place into its working subvolume ROOT/NAME/.work (unchanged blocks stay
// shared), and the commit is a read-only snapshot ROOT/NAME/<UTC time>. Deleting one is
// `btrfs subvolume delete`: milliseconds, where a hard-link farm takes minutes. The plugin taps
// no hook: the pipeline drives its store (store.ts).
import type { PipelineHooks, Plugin } from '@ssh-r-sync/core';
import { btrfsStoreProvider } from './store.js';

export { BTRFS_KIND, MODULE, WORK_NAME, BtrfsStore, btrfsStoreProvider } from './store.js';
export { IN_PLACE_ARGS } from './rsync-options.js';
export { USER_RM_OPTION } from './refusals.js';

export const PLUGIN_NAME = 'btrfs';

// The plugin factory; it takes no options (`"@ssh-r-sync/plugin-btrfs"` in the config's plugins).
export default function btrfs(options: Record<string, unknown> = {}): Plugin {
  const unknown = Object.keys(options ?? {});
  if (unknown.length > 0) throw new TypeError(`${PLUGIN_NAME}: unknown option ${JSON.stringify(unknown[0])} (it takes none)`);
  return {
    name: PLUGIN_NAME,
    apply(_hooks: PipelineHooks) {},
    store: btrfsStoreProvider,
  };
}
