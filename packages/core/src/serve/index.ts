// The forced command's other two requests (the host's snapshot list, a read-only restore) and the client's side of them.
export { parseRequest, MAX_REQUEST_BYTES, MAX_SPECS, SNAPSHOTS_REQUEST, type ServeRequest } from './request.js';
export { encodeSpec, decodeSpec, checkSnapshotToken, SPEC_PREFIX, type RestoreSpec } from './spec.js';
export { snapshotListing, verifyState, type SnapshotListing, type ListedSnapshot, type VerifyState } from './snapshot-list.js';
export { serveRestore, type ServeRestoreOptions } from './serve-restore.js';
// The client's ends of both.
export { runRestore, describeRestoreFailure, RESTORE_RSYNC_ARGS, type RestoreOptions as ClientRestoreOptions, type RestoreResult as ClientRestoreResult } from '../client/restore.js';
export { remoteSnapshots, parseListing, type SnapshotsOptions } from '../client/remote-snapshots.js';
export { remoteSshOptions, rshCommand, rsyncHost, type RemoteSshOptions } from '../client/remote-ssh.js';
