// The receiver's side of a reverse-tunnel session: greet the client over the ssh channel,
// check its claimed name against ours, prove the tunnel, then let rsync pull through it.
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { Outcome, RunContext, Skip } from '../../pipeline/context.js';
import { skip } from '../../pipeline/context.js';
import { SshRSyncError, oneLine } from '../../errors.js';
import { CONFIG_EXIT_VERSION, PROGRESS_VERSION, PROTOCOL_NAME, PROTOCOL_VERSION, SESSION_VERSIONS, openChannel, type MessageChannel } from '../../session/protocol/index.js';
import type { RsyncProgress } from '../../rsync/progress.js';
import { createSessionDir, type SessionDir } from '../../session/session-dir.js';
import type { Endpoint, Peer, Transport } from '../transport.js';
import { openTunnel, tunnelRsyncArgs, type TunnelConnection } from '../../session/tunnel/index.js';
import { receiverName, type NameSources } from './receiver-name.js';

export const RSYNC_USER = 'ssh-r-sync';
export const RSYNC_MODULE = 'ssh-r-sync';

// The rsync daemon's secret, derived from the session key on both sides (256 bits).
export function rsyncSecret(key: Buffer): string {
  return createHmac('sha256', key).update('ssh-r-sync rsyncd secret').digest('hex');
}

export interface ReceiverTransportOptions extends NameSources {
  input: Readable;
  output: Writable;
  /** The one tunnel port this key may use (its permitlisten); otherwise the client's word, then proven. */
  tunnelPort?: number | undefined;
  handshakeTimeoutMs: number;
  /** How long the client's own pre-work (its hooks) may take before it says start. */
  startTimeoutMs: number;
  /** No data from the client for this long ends the run (rsync's --timeout and the tunnel's idle watch); 0 = never. */
  ioTimeoutSeconds?: number;
  /** The client went away, gave up or stopped sending (--io-timeout) after `start`: the run should stop. */
  onPeerGone?: (why: string) => void;
}

// A transport that serves one client session on the given streams.
export function receiverTransport(options: ReceiverTransportOptions): Transport & { readonly channel: MessageChannel } {
  let finishing = false;
  // Between our reads the client has nothing to say: its end closing means it is gone, at any
  // stage (a connect or handshake hook may run for hours): the run stops and the lock is freed.
  const channel = openChannel(options.input, options.output, {
    peer: 'client',
    onIdleEnd: (error) => {
      if (!finishing) options.onPeerGone?.(`the client went away during the run: ${oneLine(error)}`);
    },
  });
  const timeoutMs = options.handshakeTimeoutMs;
  let key: Buffer | undefined;
  let tunnel: TunnelConnection | undefined;
  let dir: SessionDir | undefined;
  // The conversation version the client chose; 1 until it has (a result before the session).
  let version = 1;
  // The client asked for rsync's progress (conversation version 3).
  let wantsProgress = false;

  return {
    kind: 'reverse',
    channel,
    async handshake(ctx: RunContext): Promise<Peer> {
      await channel.send({ v: PROTOCOL_VERSION, type: 'hello', protocol: PROTOCOL_NAME, versions: [...SESSION_VERSIONS] }, { timeoutMs });
      const session = await channel.receive('session', { timeoutMs, waitingFor: 'the session message' });
      if (!SESSION_VERSIONS.includes(session.version)) {
        throw new SshRSyncError('EPROTOCOL', `client chose protocol version ${session.version}; this receiver speaks ${SESSION_VERSIONS.join(', ')}`);
      }
      version = session.version;
      const name = receiverName(options);
      if (session.name !== name) {
        throw new SshRSyncError('ENAME', `client claims to be ${JSON.stringify(session.name.slice(0, 80))}, but this key belongs to "${name}"`);
      }
      if (options.tunnelPort && session.tunnelPort !== options.tunnelPort) {
        // The set-up's mistake (the forced command and the client disagree), not the network's.
        throw new SshRSyncError('ECONFIG', `client forwarded port ${session.tunnelPort}, but this key's tunnel port is ${options.tunnelPort} (--tunnel-port in its forced command): run the client with --tunnel-port ${options.tunnelPort}, as the key's permitlisten allows`);
      }
      if (session.tunnelPort < 1024) throw new SshRSyncError('ETUNNEL', `refused tunnel port ${session.tunnelPort}: below 1024`);
      key = Buffer.from(session.key, 'hex');
      // The tunnel check: a connection proven both ways now, kept for rsync to pull through.
      // rsync's --timeout alone misses a client that stops sending (its keep-alives fill buffers
      // instead): the connection's idle watch stops the run after the same time.
      const io = options.ioTimeoutSeconds ?? 600;
      const stalled = `the client sent no data for ${io} s (--io-timeout): stopping the run`;
      const onIdle = () => {
        ctx.logger.warn(stalled);
        options.onPeerGone?.(stalled);
      };
      const idle = io > 0 ? { ms: io * 1000, onIdle } : undefined;
      tunnel = await openTunnel({ port: session.tunnelPort, key, timeoutMs, idle });
      return { name, oneFileSystem: session.options.oneFileSystem, fakeSuper: session.options.fakeSuper };
    },
    async start(ctx: RunContext): Promise<Skip | undefined> {
      await channel.send({ v: PROTOCOL_VERSION, type: 'ready', name: ctx.name, mode: ctx.mode }, { timeoutMs });
      const answer = await channel.receive(['start', 'skip'], { timeoutMs: options.startTimeoutMs, waitingFor: 'start' });
      if (answer.type === 'skip') return skip(`the client said not now: ${answer.reason}`);
      wantsProgress = version >= PROGRESS_VERSION && answer.progress === true;
      return undefined;
    },
    async endpoint(): Promise<Endpoint> {
      if (!key || !tunnel) throw new SshRSyncError('EINTERNAL', 'endpoint before handshake');
      dir = createSessionDir('ssh-r-sync-recv');
      const passwordFile = dir.file('rsync.secret');
      writeFileSync(passwordFile, `${rsyncSecret(key)}\n`, { mode: 0o600, flag: 'wx' });
      // Daemon protocol over --rsh: rsync runs a small relay (a shell and two cats) that talks to
      // the client's daemon through the connection proven in the handshake, rsync's fd 3.
      return {
        source: `${RSYNC_USER}@tunnel::${RSYNC_MODULE}/`,
        transportArgs: [
          ...tunnelRsyncArgs(),
          `--password-file=${passwordFile}`,
          ...(options.ioTimeoutSeconds === 0 ? [] : [`--timeout=${options.ioTimeoutSeconds ?? 600}`]),
        ],
        env: {},
        compress: true,
        connection: tunnel,
        ...(wantsProgress ? { progress: progressSender(channel, timeoutMs) } : {}),
      };
    },
    async report(outcome: Outcome, ctx: RunContext): Promise<void> {
      finishing = true;
      tunnel?.release();
      dir?.remove();
      await channel.send(
        {
          v: PROTOCOL_VERSION,
          type: 'result',
          status: outcome.status,
          committed: outcome.committed === true,
          // A configuration error is 2 for a client that knows it; an older one takes 1 (a failure).
          exitCode: outcome.exitCode === 2 && version < CONFIG_EXIT_VERSION ? 1 : outcome.exitCode,
          rsyncExitCode: outcome.rsync ? Math.min(255, Math.max(0, outcome.rsync.exitCode)) : null,
          message: outcome.message?.slice(0, 4096) ?? null,
          files: outcome.rsync?.files ?? null,
          bytes: outcome.rsync?.bytes ?? null,
          durationMs: outcome.durationMs,
          snapshot: ctx.snapshot,
        },
        { timeoutMs },
      );
    },
    async finish(outcome: Outcome): Promise<void> {
      tunnel?.release();
      dir?.remove();
      try {
        await channel.send({ v: PROTOCOL_VERSION, type: 'bye', status: outcome.status, message: outcome.message?.slice(0, 4096) ?? null }, { timeoutMs });
      } finally {
        channel.close();
      }
    },
  };
}

// Sends progress events to the client, one at a time: an event that comes while the last is
// still on its way is dropped (the next one says more). A send that fails is left to the
// channel: the run notices a gone client by itself.
function progressSender(channel: MessageChannel, timeoutMs: number): (event: RsyncProgress) => void {
  let busy = false;
  return (event) => {
    if (busy) return;
    busy = true;
    const { bytes, percent, bytesPerSecond, files, toCheck, scanDone, elapsedMs } = event;
    channel
      .send({ v: PROTOCOL_VERSION, type: 'progress', bytes, percent, bytesPerSecond, files, toCheck, scanDone, elapsedMs }, { timeoutMs })
      .catch(() => {})
      .finally(() => (busy = false));
  };
}
