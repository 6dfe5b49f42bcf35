// Restoring a stored snapshot: to a local directory, or over ssh with --to.
export { restoreSnapshot, type RestoreOptions, type RestoreSummary, type RestoreSshOptions } from './restore.js';
export { normalizeRestorePath, checkRestorePaths, MAX_PATH_BYTES } from './restore-paths.js';
export { checkLocalTarget, parseRemoteTarget, type LocalTarget, type RemoteTarget, type RestoreTarget } from './restore-target.js';
export { restoreModeOf, type RestoreMode } from './restore-mode.js';
