// The public API of @ssh-r-sync/core: what plugins (first-party and third-party) build on —
// the hook points and their context, errors and logging, the snapshot store interface and the
// snapshot layout, work after the session, rsync's runner, scripts and process groups.
// What only the commands need is in internal.ts (`@ssh-r-sync/core/internal`).
export * from './errors.js';
export * from './pipeline/points.js';
export * from './pipeline/context.js';
export * from './pipeline/hooks.js';
export * from './logger.js';
export * from './plugins/plugin.js';
export * from './storage/host-dir.js';
export { currentTap, HookError, type TapScope, type TapRecord } from './pipeline/tap-guard.js';
export { runScript, describeExit, type ScriptRun, type ScriptResult } from './exec/exec-hook.js';
export { defaultRsyncArgs, runRsync, parseStats } from './rsync/rsync.js';
export { parseProgressLine, type RsyncProgress } from './rsync/progress.js';
export { killGroup, dieWithUs } from './exec/process-group.js';
export { parseDuration, formatAge, DURATION_EXAMPLES } from './duration.js';
export { findProgram } from './exec/find-program.js';
export * from './storage/snapshots.js';
export * from './storage/store.js';
export { preparedSnapshot, runStore, currentSnapshot } from './storage/current.js';
export { runRetention, type Retention } from './storage/retention.js';
export { openHostStore, registerStoreProvider, type OpenedStore } from './storage/host-store.js';
export { deleteTree, defaultJobs, type DeleteOptions } from './storage/delete-tree.js';
export { scheduleAfterSession, type AfterSessionTask } from './pipeline/after-session.js';
export { writeFully, fsyncDir, flushFilesystem } from './storage/durable.js';
export { storedSnapshots, openStoredSnapshot, storedHostDir, type StoredSnapshot } from './storage/stored-snapshots.js';
export { mirrorInPlaceMark } from './storage/mirror-store.js';
export { readVerifyRecord, writeVerifyRecord, verifyRecordPath, FIRST_PROBLEMS, type VerifyRecord } from './storage/verify-record.js';
export { setHolds, readHolds, type HoldRecord } from './storage/holds.js';
export { readHostRecord, hostRecordPath, describeKind, type HostRecord, type HostKind, type AfterSessionRecord, type LastRunRecord } from './storage/host-record.js';
export { hostStatus, runsLogFailures, type HostStatus, type HostStatusOptions } from './report/host-status.js';
export { readRunLog, type RunLogEntry } from './report/run-log.js';
export { readSmallFile } from './storage/small-file.js';
export { withFileLock, isLockBusy, type FileLockOptions } from './storage/kernel-lock.js';
export { withHostLock, type LockOptions } from './storage/host-lock.js';
export { recordHostFacts, hostFacts, type HostFact, type HostGauge } from './storage/host-facts.js';
