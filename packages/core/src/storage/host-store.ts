// Opens the store of a host as its record says, for the tools that read or prune stored backups
// without the receiver's config (status, prune, verify, restore, versions, diff, the forced
// command's restore): a mirror is core's own; any other kind is loaded from the module its record
// names (plugin-link-dest for records older than that field).
import { SshRSyncError, oneLine } from '../errors.js';
import { hostKind, readHostRecord, type HostKind } from './host-record.js';
import { loadPlugin } from '../plugins/load-plugins.js';
import { installDir } from '../plugins/resolve-plugin.js';
import { mirrorStoreProvider } from './mirror-store.js';
import { LINK_DEST_KIND, MIRROR_KIND, type HostLocation, type SnapshotStore, type StoreProvider } from './store.js';

const LINK_DEST_MODULE = '@ssh-r-sync/plugin-link-dest';

/** A host's store, and its kind as found ('new': nothing stored yet; its store is then a mirror's, empty). */
export interface OpenedStore {
  store: SnapshotStore;
  kind: HostKind | 'new';
}

// The store of the host at `location`.
export async function openHostStore(location: HostLocation): Promise<OpenedStore> {
  const kind = await hostKind(location.root, location.name, location.dir);
  if (kind === 'new' || kind === MIRROR_KIND) return { store: mirrorStoreProvider.open(location), kind };
  const record = await readHostRecord(location.root, location.name);
  const module = record?.store ?? (kind === LINK_DEST_KIND ? LINK_DEST_MODULE : undefined);
  if (!module) throw new SshRSyncError('ECONFIG', `the record of host "${location.name}" says its snapshots are of kind "${kind}" but not which plugin stores them: run one backup with that plugin loaded`);
  const provider = await loadProvider(module, kind);
  return { store: provider.open(location), kind };
}

// Providers known without loading anything, by module: the commands register the first-party
// stores they ship with (bundled: no import at run time, which a low open-file limit can make fail),
// and a pipeline registers the store of the plugin it uses. Global: plugins bring their own copy of core.
const REGISTRY = Symbol.for('ssh-r-sync.store-providers');
const registry = ((globalThis as Record<symbol, unknown>)[REGISTRY] ??= new Map<string, StoreProvider>()) as Map<string, StoreProvider>;

// Makes `provider` known to openHostStore for hosts whose record names its module.
export function registerStoreProvider(provider: StoreProvider): void {
  registry.set(provider.module, provider);
}

/** An npm package name, maybe scoped: what a record's store module may be (never a path). */
const PACKAGE_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

/** Providers loaded in this process, by module. */
const loaded = new Map<string, Promise<StoreProvider>>();

// The store provider of plugin `module`, which must store `kind`.
async function loadProvider(module: string, kind: HostKind): Promise<StoreProvider> {
  let pending = loaded.get(module) ?? (registry.has(module) ? Promise.resolve(registry.get(module)!) : undefined);
  if (!pending) {
    // The record lies in ROOT, which the backup account (the receiver) writes; the admin tools
    // and their timers often run as root. So a record's module is never a path to import: only a
    // package installed with these commands (root's npm install -g beside them) is loaded.
    if (!PACKAGE_NAME.test(module) || module.split('/').includes('..')) {
      throw new SshRSyncError(
        'ECONFIG',
        `a host record names the store of its "${kind}" snapshots ${JSON.stringify(module.slice(0, 120))}, which is not a package name: ` +
          `only a store shipped with ssh-r-sync or a package installed beside it (npm install -g) is loaded; if the record was not written by ssh-r-sync, look at ROOT/.ssh-r-sync/hosts`,
      );
    }
    pending = loadPlugin(module, installDir()).then((plugin) => {
      if (!plugin.store) throw new Error(`it has no snapshot store`);
      return plugin.store;
    });
    loaded.set(module, pending);
    pending.catch(() => loaded.delete(module));
  }
  try {
    const provider = await pending;
    if (provider.kind !== kind) throw new Error(`it stores "${provider.kind}" snapshots, not "${kind}"`);
    return provider;
  } catch (error) {
    throw new SshRSyncError('ECONFIG', `cannot open the ${kind} snapshots: plugin ${module}: ${oneLine(error)}; install it where ssh-r-sync is installed`, { cause: error });
  }
}
