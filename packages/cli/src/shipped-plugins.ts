// The first-party plugins, shipped inside the commands' bundles: `"@ssh-r-sync/plugin-link-dest"`
// in a config or on --plugin then loads the bundled copy (the one built and tested with these
// commands, as the install's node_modules holds it) without importing anything at run time. Each
// is evaluated only when a config names it.
import { registerShippedPlugin } from '@ssh-r-sync/core/internal';

let registered = false;

// Registers the shipped plugins once.
export function registerShippedPlugins(): void {
  if (registered) return;
  registered = true;
  registerShippedPlugin('@ssh-r-sync/plugin-link-dest', () => import('@ssh-r-sync/plugin-link-dest'));
  registerShippedPlugin('@ssh-r-sync/plugin-btrfs', () => import('@ssh-r-sync/plugin-btrfs'));
  registerShippedPlugin('@ssh-r-sync/plugin-manifest', () => import('@ssh-r-sync/plugin-manifest'));
  registerShippedPlugin('@ssh-r-sync/plugin-rotate', () => import('@ssh-r-sync/plugin-rotate'));
  registerShippedPlugin('@ssh-r-sync/plugin-notify', () => import('@ssh-r-sync/plugin-notify'));
  registerShippedPlugin('@ssh-r-sync/plugin-prometheus', () => import('@ssh-r-sync/plugin-prometheus'));
  registerShippedPlugin('@ssh-r-sync/plugin-restic', () => import('@ssh-r-sync/plugin-restic'));
}
