// The receiver's dispatch on SSH_ORIGINAL_COMMAND: no command is the backup (as ever); the
// listing and a read-only restore of the host's own snapshots are served here; anything else is
// refused with one line. The host's name is the key's (--name or the names map), never the request's.
import { loadConfig, parseRequest, receiverName, serveRestore, snapshotListing, type Logger, type Mode } from '@ssh-r-sync/core/internal';
import { onSignals } from './common.js';
import { registerShippedStores } from './shipped-stores.js';

export interface ServeCliOptions {
  name?: string | undefined;
  config?: string | undefined;
  rsync?: string | undefined;
  mode?: Mode | undefined;
  ioTimeout?: number | undefined;
  maxRunTime?: number | undefined;
}

// Serves the request and resolves to the exit code, or to null when it is the backup.
export async function serveRequest(command: string | undefined, root: string, options: ServeCliOptions, logger: Logger): Promise<number | null> {
  registerShippedStores();
  const request = parseRequest(command);
  if (request.kind === 'backup') return null;
  const { config } = await loadConfig({ file: options.config, cwd: process.cwd() });
  const name = receiverName({ name: options.name, names: config.names, authFile: process.env.SSH_USER_AUTH });
  if (request.kind === 'snapshots') {
    process.stdout.write(`${JSON.stringify(await snapshotListing(root, name))}\n`);
    return 0;
  }
  const controller = new AbortController();
  const stopSignals = onSignals(
    (signal) => controller.abort(new Error(`stopped by ${signal}`)),
    (signal) => controller.abort(new Error(`killed by ${signal}`)),
  );
  try {
    return await serveRestore({
      root,
      name,
      request,
      rsyncProgram: options.rsync ?? config.rsync ?? 'rsync',
      ioTimeoutSeconds: options.ioTimeout ?? 600,
      maxRunTimeSeconds: options.maxRunTime ?? 86400,
      defaultMode: options.mode ?? config.mode ?? (process.getuid?.() === 0 ? 'privileged' : 'fake-super'),
      logger,
      signal: controller.signal,
    });
  } finally {
    stopSignals();
  }
}
