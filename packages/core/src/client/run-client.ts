// The client's session: a read-only daemon behind a tunnel listener, one ssh connection, the
// handshake, then waiting for the receiver's result. Everything started here is stopped here.
import { randomBytes } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { SshRSyncError, UsageError, isSshRSyncError, oneLine } from '../errors.js';
import type { Logger } from '../logger.js';
import { killGroup } from '../exec/process-group.js';
import { PROGRESS_VERSION, PROTOCOL_NAME, PROTOCOL_VERSION, SESSION_VERSIONS, escapeText, openChannel, receiveHello, type Message } from '../session/protocol/index.js';
import type { RsyncProgress } from '../rsync/progress.js';
import { RSYNC_MODULE, RSYNC_USER, rsyncSecret } from '../transport/reverse/receiver-transport.js';
import { createSessionDir } from '../session/session-dir.js';
import { startTunnelListener, type TunnelListener } from '../session/tunnel/index.js';
import { parentDeathPrefix } from '../session/tunnel/daemon.js';
import { clientName, type NameOptions } from './client-name.js';
import { parseDestination } from './destination.js';
import { writeDaemonConfig } from './rsyncd-conf.js';
import { startSsh, type SshProcess } from './ssh.js';
import { checkClientSetup } from './preflight.js';
import { sshFailureError } from './ssh-advice.js';
import { clientStages, type ClientStages } from './client-stages.js';

export interface ClientOptions extends NameOptions {
  destination: string;
  port?: number | undefined;
  path: string;
  filterFile?: string | undefined;
  dirMergeName?: string | undefined;
  oneFileSystem: boolean;
  fakeSuper: boolean;
  /** Each protocol step that does not wait for the receiver's hooks. */
  handshakeTimeoutMs: number;
  /** Waits that include the receiver's hooks and the transfer; 0 = no limit. */
  waitTimeoutMs: number;
  identityFile?: string | undefined;
  sshOptions: string[];
  sshDefaults: boolean;
  sshProgram?: string | undefined;
  /** Port to forward on the server (its permitlisten); 0 lets sshd choose. */
  tunnelPort: number;
  rsyncProgram?: string | undefined;
  /** Client-side scripts, `POINT:PATH`, and their time limit (0 = none). */
  hooks?: readonly string[];
  /** Called with rsync's progress, relayed by the receiver a few times a second (the CLI's progress line). */
  onProgress?: (event: RsyncProgress) => void;
  /** Client-side plugins (loadClientPlugins), applied before the scripts of `hooks`. */
  plugins?: readonly import('../plugins/plugin.js').Plugin[];
  hookTimeoutMs?: number;
  debug: boolean;
  logger: Logger;
  /** The first SIGINT/SIGTERM: stops the session; `done` scripts still run (a lock taken in connect is released). */
  signal: AbortSignal;
  /** The second signal: kills `done` scripts too. */
  killSignal?: AbortSignal;
}

export interface ClientResult {
  status: 'success' | 'failure' | 'skipped';
  exitCode: number;
  name: string;
  message: string | null;
  rsyncExitCode: number | null;
  files: number | null;
  bytes: number | null;
  durationMs: number;
  snapshot: string | null;
  /** The receiver committed the backup (complete on disk), even if the run failed afterwards. */
  committed: boolean;
}

// Runs one backup session and returns what the receiver reported (or why there is nothing);
// the client's `done` scripts run last, whatever happened.
export async function runClient(options: ClientOptions): Promise<ClientResult> {
  const started = performance.now();
  const name = clientName(options);
  const destination = parseDestination(options.destination, options.port);
  checkClientSetup(options);
  const path = await realpath(options.path).catch(() => {
    throw new UsageError(`${options.path} does not exist`);
  });
  if (!(await stat(path)).isDirectory()) throw new UsageError(`${options.path} is not a directory`);
  const stages = clientStages({
    hooks: options.hooks ?? [],
    plugins: options.plugins ?? [],
    timeoutMs: options.hookTimeoutMs ?? 0,
    path,
    mode: process.getuid?.() === 0 ? 'privileged' : 'plain',
    logger: options.logger,
    signal: options.signal,
    killSignal: options.killSignal,
  });
  stages.ctx.name = name;
  let result = await session(options, stages, { started, name, path, destination });
  try {
    const exitCode = result.exitCode === 0 || result.exitCode === 75 || result.exitCode === 2 ? result.exitCode : 1;
    await stages.done({ status: result.status, exitCode, message: result.message, error: null, rsync: null, durationMs: result.durationMs });
  } catch (error) {
    result = { ...result, status: 'failure', exitCode: 1, message: oneLine(error) };
  }
  return result;
}

interface SessionFacts {
  started: number;
  name: string;
  path: string;
  destination: ReturnType<typeof parseDestination>;
}

async function session(options: ClientOptions, stages: ClientStages, facts: SessionFacts): Promise<ClientResult> {
  const { started, name, path, destination } = facts;
  const key = randomBytes(32);
  const dir = createSessionDir('ssh-r-sync');
  const log = options.logger;
  let listener: TunnelListener | undefined;
  let ssh: SshProcess | undefined;
  const onAbort = () => killGroup(ssh?.pid, 'SIGTERM');
  options.signal.addEventListener('abort', onAbort, { once: true });
  const base = { name, rsyncExitCode: null, files: null, bytes: null, snapshot: null, committed: false };
  let sessionOver = false;
  // The receiver's error line is held back by ssh.ts; shown here if no error of ours carried it.
  let serverErrorShown = false;
  // Rsync sessions our daemon served to their end: a "success" that pulled nothing is not one.
  const transfers = counter();
  try {
    const skipped = await stages.connect();
    if (skipped) return { ...base, status: 'skipped', exitCode: 75, message: skipped.reason, durationMs: Math.round(performance.now() - started) };
    const config = writeDaemonConfig({
      dir,
      path,
      secret: rsyncSecret(key),
      user: RSYNC_USER,
      module: RSYNC_MODULE,
      privileged: process.getuid?.() === 0,
      filterFile: options.filterFile,
      dirMergeName: options.dirMergeName,
      oneFileSystem: options.oneFileSystem,
      debug: options.debug,
    });
    listener = await startTunnelListener({
      key,
      rsyncArgv: [options.rsyncProgram ?? 'rsync', '--daemon', `--config=${config}`],
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      onEvent: (event) => {
        log.debug(`tunnel: ${JSON.stringify(event)}`);
        if (event.type === 'served' && event.exitCode !== null) transfers.add();
      },
    });
    options.signal.throwIfAborted();
    ssh = startSsh({
      program: options.sshProgram,
      destination,
      localPort: listener.port,
      remotePort: options.tunnelPort,
      identityFile: options.identityFile,
      extraOptions: options.sshOptions,
      defaults: options.sshDefaults,
      logger: log,
    });
    // The listener needs setpriv's answer before a connection's proof begins: probe it (a process,
    // ~10 ms) now that ssh is on its way, not before.
    void parentDeathPrefix();
    // Read between waits too: node discards what a child that exited left unread in its pipe, so
    // the receiver's goodbye, sent while our rsync.post hook runs and followed by ssh's exit, would
    // be lost. The idle watch keeps such lines for the next receive.
    const channel = openChannel(ssh.stdout, ssh.stdin, {
      peer: 'receiver',
      onIdleEnd: (error) => log.debug(`between messages: ${oneLine(error)}`),
    });
    const exited = new Promise<number | null>((resolve) => ssh!.once('exit', (code) => resolve(code)));
    const wait = options.waitTimeoutMs;
    const step = options.handshakeTimeoutMs;
    const explain = async (error: unknown): Promise<never> => {
      if (options.signal.aborted) throw options.signal.reason;
      // A closed channel usually means ssh itself failed: say so, with ssh's own words or the
      // signal that killed it (then the channel's error is only its echo, whatever it says).
      const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('running'), 300))]);
      if (code !== 'running' && ssh!.signalCode) throw new SshRSyncError('ETUNNEL', `ssh was killed by ${ssh!.signalCode}`, { cause: error });
      if (code !== 'running' && code !== 0 && isSshRSyncError(error) && error.code === 'EPROTOCOL' && /closed the connection/.test(error.message)) {
        const { target, port } = destination;
        serverErrorShown = true;
        const failure = { code: Number(code), lines: ssh!.recentLines(), serverError: ssh!.serverError(), identityFile: options.identityFile };
        throw sshFailureError({ ...failure, target, port, tunnelPort: options.tunnelPort }, error);
      }
      throw error;
    };
    try {
      // The receiver's first word: hello, or a result when it refused before greeting (its
      // connect hook failed, or skipped the run).
      const first = await receiveHello(channel, wait);
      const [sshNow, listenerNow] = [ssh, listener];
      let saidStart = false;
      const converse = async (hello: Message<'hello'>): Promise<Message<'result'>> => {
        // The newest conversation version both speak.
        const version = Math.max(0, ...hello.versions.filter((offered) => SESSION_VERSIONS.includes(offered)));
        if (!version) {
          throw new SshRSyncError('EPROTOCOL', `receiver speaks protocol versions ${hello.versions.join(', ')}; this client speaks ${SESSION_VERSIONS.join(', ')}`);
        }
        const tunnelPort = await within(sshNow.remotePort, step, 'the forwarded port from ssh');
        log.debug(`forwarded 127.0.0.1:${tunnelPort} on the server to 127.0.0.1:${listenerNow.port}`);
        await channel.send(
          {
            v: PROTOCOL_VERSION,
            type: 'session',
            protocol: PROTOCOL_NAME,
            version,
            name,
            tunnelPort,
            key: key.toString('hex'),
            options: { oneFileSystem: options.oneFileSystem, fakeSuper: options.fakeSuper },
          },
          { timeoutMs: step },
        );
        const ready = await channel.receive(['ready', 'result'], { timeoutMs: wait, waitingFor: 'the handshake result' });
        if (ready.type === 'ready') {
          log.debug(`receiver accepted ${escapeText(ready.name)} (${ready.mode})`);
          let ownSkip;
          try {
            ownSkip = await stages.beforeServing(ready.name);
          } catch (error) {
            await channel.send({ v: PROTOCOL_VERSION, type: 'error', message: `client: ${oneLine(error)}`.slice(0, 4096) }, { timeoutMs: step }).catch(() => {});
            throw error;
          }
          if (ownSkip) await channel.send({ v: PROTOCOL_VERSION, type: 'skip', reason: ownSkip.reason.slice(0, 1024) }, { timeoutMs: step });
          // rsync's progress, when someone here follows it (the progress line, a plugin) and the receiver can send it.
          const follow = version >= PROGRESS_VERSION && (options.onProgress !== undefined || stages.followsProgress);
          if (!ownSkip) await channel.send({ v: PROTOCOL_VERSION, type: 'start', ...(follow ? { progress: true } : {}) }, { timeoutMs: step });
          saidStart = !ownSkip;
          const onProgress = follow
            ? (message: Message<'progress'>) => {
                const { v: _v, type: _type, ...event } = message;
                stages.progress(event);
                options.onProgress?.(event);
              }
            : undefined;
          const result = await channel.receive('result', { timeoutMs: wait, waitingFor: 'the result', ...(onProgress ? { onProgress } : {}) });
          await stages.afterResult(result);
          return result;
        }
        return ready;
      };
      const result = first.type === 'result' ? first : await converse(first);
      let byeError = '';
      const bye = await channel.receive('bye', { timeoutMs: wait, waitingFor: "the receiver's goodbye" }).catch((error: unknown) => {
        byeError = oneLine(error);
        log.warn(`no goodbye from the receiver: ${byeError}`);
        return null;
      });
      sessionOver = bye !== null;
      // The daemon's exit can be noticed a moment after the result that followed it arrives.
      const served = result.status === 'success' ? await transfers.atLeastOne(step) : transfers.count() > 0;
      return { ...base, ...judge(result, { started: saidStart, served }, bye, byeError), durationMs: Math.round(performance.now() - started) };
    } catch (error) {
      return await explain(error);
    } finally {
      channel.close();
    }
  } catch (error) {
    const message = options.signal.aborted ? oneLine(options.signal.reason) : oneLine(error);
    const config = !options.signal.aborted && isSshRSyncError(error) && (error.code === 'EUSAGE' || error.code === 'ECONFIG');
    // Ours are thrown (exit 2 before any hook); the server's configuration error fails the run with exit 2.
    if (config && !serverErrorShown) throw error;
    return { ...base, status: 'failure', exitCode: config ? 2 : 1, message, durationMs: Math.round(performance.now() - started) };
  } finally {
    options.signal.removeEventListener('abort', onAbort);
    await stopSsh(ssh, sessionOver);
    if (ssh?.serverError() && !serverErrorShown) log.info(`server: ssh-r-sync-recv: error: ${ssh.serverError()}`);
    await listener?.close();
    dir.remove();
  }
}

// The exit code of each status: the receiver's result names one, and the two must agree.
const EXIT_CODES = { success: 0, skipped: 75, failure: 1 } as const;

// What the client reports: success only for a committed backup, after our start, whose receiver
// said goodbye. The exit code follows the status, never the receiver's number alone.
function judge(
  result: Message<'result'>,
  session: { started: boolean; served: boolean },
  bye: Message<'bye'> | null,
  byeError: string,
): Omit<ClientResult, 'name' | 'durationMs'> {
  const { started } = session;
  const committed = started && result.committed;
  const facts = { rsyncExitCode: result.rsyncExitCode, files: result.files, bytes: result.bytes, snapshot: result.snapshot, committed };
  const failed = (message: string) => ({ ...facts, status: 'failure' as const, exitCode: 1, message });
  if (result.status === 'success' && !started) return failed('the receiver reported success before the backup started: treat it as failed');
  if (result.status === 'success' && !result.committed) return failed('the receiver reported success without committing the backup: treat it as failed');
  if (result.status === 'success' && result.exitCode !== 0) return failed(`the receiver reported success with exit code ${result.exitCode}: treat it as failed`);
  if (result.status === 'success' && !session.served) return failed("the receiver reported a committed backup, but this client's daemon served it nothing: treat it as failed");
  const what = result.snapshot ? `snapshot ${result.snapshot}` : 'the backup';
  if (committed && bye === null) {
    return failed(`${what} is committed on the server, but the receiver ended before its goodbye (${byeError}): its done hooks may not have run`);
  }
  if (bye?.status === 'failure' && result.status !== 'failure') {
    return failed(committed ? `${what} is committed, but after it: ${bye.message ?? 'a done hook failed'}` : (bye.message ?? 'a done hook failed'));
  }
  // A failure the receiver found to be a configuration error (its config refusing what we asked) is exit 2.
  const exitCode = result.status === 'failure' && result.exitCode === 2 ? 2 : EXIT_CODES[result.status];
  return { ...facts, status: result.status, exitCode, message: result.message };
}

// Counts events; atLeastOne waits (bounded) for the first.
function counter() {
  let n = 0;
  const waiters: (() => void)[] = [];
  return {
    add() {
      n += 1;
      for (const wake of waiters.splice(0)) wake();
    },
    count: () => n,
    async atLeastOne(ms: number): Promise<boolean> {
      if (n > 0) return true;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
      return n > 0;
    },
  };
}

// Lets ssh end by itself once its stdin is closed; then TERM, then KILL. After the receiver's
// goodbye there is nothing left to hear: ssh gets a moment, not seconds (the receiver may go on
// pruning after the session, which must not keep the client waiting).
async function stopSsh(ssh: SshProcess | undefined, sessionOver: boolean): Promise<void> {
  if (!ssh || ssh.exitCode !== null || ssh.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => ssh.once('exit', () => resolve()));
  const after = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  ssh.stdin.end();
  if (await Promise.race([gone.then(() => true), after(sessionOver ? 300 : 2000).then(() => false)])) return;
  killGroup(ssh.pid, 'SIGTERM');
  if (await Promise.race([gone.then(() => true), after(1000).then(() => false)])) return;
  killGroup(ssh.pid, 'SIGKILL');
  await gone;
}

// Awaits `promise` for at most `ms`.
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SshRSyncError('ETIMEOUT', `timed out after ${ms / 1000} s waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
