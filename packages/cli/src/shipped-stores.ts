// The snapshot stores shipped with the commands, made known to core's openHostStore so that the
// admin tools and the forced command's restore read them from the bundle, without importing a
// plugin at run time. A store of another package is still loaded from its host record's module.
import { registerStoreProvider } from '@ssh-r-sync/core/internal';
import { MAX_BASIS_DIRS, linkDestStore } from '@ssh-r-sync/plugin-link-dest';
import { btrfsStoreProvider } from '@ssh-r-sync/plugin-btrfs';

let registered = false;

// Registers the shipped stores once.
export function registerShippedStores(): void {
  if (registered) return;
  registered = true;
  registerStoreProvider(linkDestStore(MAX_BASIS_DIRS - 1));
  registerStoreProvider(btrfsStoreProvider);
}
