// plugin-manifest, loaded when verify runs: it brings a native addon (@napi-rs/xattr) that the
// bundled admin command cannot carry and that status or prune never need. The types are static.
import { importModule } from '@ssh-r-sync/core/dynamic-import';
import type * as Manifest from '@ssh-r-sync/plugin-manifest';

export type ManifestModule = typeof Manifest;

// The plugin-manifest package, from node_modules beside @ssh-r-sync/core.
export async function loadManifestModule(): Promise<ManifestModule> {
  return importModule<ManifestModule>('@ssh-r-sync/plugin-manifest');
}
