// What the commands (packages/cli) need beyond the plugin API: the pipeline and its driver,
// config and plugin loading, transports, the client, locks, the run log, restore and serve.
// Not for plugins: it changes with the commands.
export * from './index.js';
export * from './pipeline/pipeline.js';
export { StageDriver, type StageDriverOptions } from './pipeline/stage-driver.js';
export * from './transport/transport.js';
export * from './transport/local-transport.js';
export { parseHookSpec, scriptsPlugin, tapScript, applyRsyncPreOutput, parseExitCodeOutput, hookEnvironment, type HookSpec } from './exec/exec-plugin.js';
export { loadConfig, loadClientConfig, clientConfigSchema, CLIENT_PLACE_FILES, type ClientConfig, configSchema, importTypeScript, configDirs, configCandidates, PLACE_FILES, SEARCH_PLACES, CONFIG_DIR_ENV, type Config, type ConfigPlace, type LoadedConfig, type PluginEntry } from './plugins/config.js';
export { withRunLog, appendRunLog, readRunLog, runLogEntry, runLogPath, MAX_RUN_LOG_BYTES, type RunLogEntry, type RunLogOptions } from './report/run-log.js';
export { sendToSyslog, refusalSummary, SYSLOG_TAG, type SyslogSetting } from './report/syslog.js';
export { loadPlugin, registerShippedPlugin } from './plugins/load-plugins.js';
export { resolvePackage, pluginPlaces } from './plugins/resolve-plugin.js';
export { formatHookList, listTaps, type ListedTap, type ListedStore } from './plugins/hook-list.js';
export { assemblePipeline, type AssembleOptions, type Assembled } from './pipeline/assemble.js';
export { parseNice, applyNice, type NiceSpec } from './exec/nice.js';
export { receiverTransport, rsyncSecret, RSYNC_MODULE, RSYNC_USER, type ReceiverTransportOptions } from './transport/reverse/receiver-transport.js';
export { receiverName, fingerprint } from './transport/reverse/receiver-name.js';
export { runClient, type ClientOptions, type ClientResult } from './client/run-client.js';
export { loadClientPlugins, type ClientPlugins } from './client/client-plugins.js';
export { parseDestination, type Destination } from './client/destination.js';
export { clientName, sanitizeName } from './client/client-name.js';
export { lockHost } from './storage/host-lock.js';
export { swappable } from './storage/swappable.js';
export { createSessionDir, type SessionDir } from './session/session-dir.js';
export * from './session/tunnel/index.js';
export { claimStdout } from './session/protocol/stdout-guard.js';
export { escapeText } from './session/protocol/text.js';
export { mirrorStoreProvider, MIRROR_PREVIOUS } from './storage/mirror-store.js';
export { pullTransport, pullSshArgv, pullSource, PULL_SSH_OPTIONS, type PullTransportOptions } from './transport/pull/pull-transport.js';
export { commitRun } from './pipeline/commit.js';
export * from './restore/index.js';
export * from './serve/index.js';
export { hostKind, claimHostKind, recordLastRun } from './storage/host-record.js';
export { setPreparedSnapshot } from './storage/current.js';
