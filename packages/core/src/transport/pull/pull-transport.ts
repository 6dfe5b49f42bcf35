// Pull mode (seed 004): the receiver dials out with plain ssh and rsync pulls from a client whose
// key for this server is locked down with `restrict,command="/usr/bin/rrsync -ro DIR"`. No
// protocol channel and no tunnel: the client's sshd and rrsync decide what may be read.
import { SshRSyncError } from '../../errors.js';
import { DEFAULT_SSH_OPTIONS } from '../../client/ssh.js';
import { parseDestination, type Destination } from '../../client/destination.js';
import type { RunContext } from '../../pipeline/context.js';
import type { Endpoint, Peer, Transport } from '../transport.js';
import type { IdleWatch } from '../../session/tunnel/idle-watch.js';
import { watchPullStall } from './stall-watch.js';

export interface PullTransportOptions {
  /** `[user@]host[:port]` of the client. */
  destination: string;
  /** ssh port (--ssh-port); must agree with a port in the destination. */
  port?: number | undefined;
  /** ssh private key (ssh -i). */
  identityFile?: string | undefined;
  /** Extra `-o` values, before (and so winning over) the defaults. */
  sshOptions: string[];
  /** false drops the default ssh options (--no-ssh-opts). */
  sshDefaults: boolean;
  /** The receiver's --name: the host is who this side says it is. */
  name: string;
  oneFileSystem?: boolean | undefined;
  /** No data from the client for this long ends the run (rsync's --timeout and the receiver's stall watch); 0 = never. */
  ioTimeoutSeconds?: number | undefined;
  /** The client stopped sending (--io-timeout) during rsync: the run should stop. */
  onStalled?: ((why: string) => void) | undefined;
  /** ssh program (default: ssh from PATH). */
  sshProgram?: string | undefined;
}

/** The client's ssh defaults, minus ExitOnForwardFailure: a pull forwards nothing. */
export const PULL_SSH_OPTIONS = DEFAULT_SSH_OPTIONS.filter((option) => !option.startsWith('ExitOnForwardFailure='));

// rsync's own word splitting for -e/--rsh: spaces separate, quotes keep spaces (no backslashes).
export function rshWord(word: string): string {
  if (word !== '' && !/[\s'"]/.test(word)) return word;
  if (!word.includes("'")) return `'${word}'`;
  if (!word.includes('"')) return `"${word}"`;
  throw new SshRSyncError('EUSAGE', `cannot pass ${JSON.stringify(word)} to rsync -e: it holds both kinds of quotes`);
}

/** ssh's argv (program first, without the destination: rsync appends host and command). */
export function pullSshArgv(options: PullTransportOptions, destination: Destination): string[] {
  const args = [options.sshProgram ?? 'ssh', '-T', '-x', '-a'];
  for (const option of options.sshOptions) {
    if (option.startsWith('-')) throw new SshRSyncError('EUSAGE', `invalid ssh option ${JSON.stringify(option)}: give it as KEY=VALUE`);
    args.push('-o', option);
  }
  if (options.sshDefaults) for (const option of PULL_SSH_OPTIONS) args.push('-o', option);
  // Only this key: an agent's key could log in as someone with a shell instead of rrsync.
  if (options.identityFile) args.push('-o', 'IdentitiesOnly=yes', '-i', options.identityFile);
  if (destination.port) args.push('-p', String(destination.port));
  return args;
}

/** rsync's source for the destination: `[user@]host:/`, IPv6 literals in brackets. */
export function pullSource(destination: Destination): string {
  const at = destination.target.lastIndexOf('@');
  const user = at >= 0 ? destination.target.slice(0, at + 1) : '';
  const host = destination.target.slice(at + 1);
  // rrsync anchors every path at its DIR: "/" is DIR itself.
  return `${user}${host.includes(':') ? `[${host}]` : host}:/`;
}

// A transport that pulls through ssh from an rrsync-restricted key.
export function pullTransport(options: PullTransportOptions): Transport {
  let destination: Destination | undefined;
  let watch: IdleWatch | undefined;
  return {
    kind: 'pull',
    async handshake(): Promise<Peer> {
      destination = parseDestination(options.destination, options.port);
      return { name: options.name, oneFileSystem: options.oneFileSystem ?? false, fakeSuper: false };
    },
    async start() {
      return undefined;
    },
    async endpoint(ctx: RunContext): Promise<Endpoint> {
      destination ??= parseDestination(options.destination, options.port);
      const rsh = pullSshArgv(options, destination).map(rshWord).join(' ');
      const io = options.ioTimeoutSeconds ?? 600;
      const source = pullSource(destination);
      // rsync's --timeout alone misses a client whose rsync stops (its keep-alives fill ssh's
      // buffers instead): the stall watch on rsync's receiver stops the run after the same time.
      if (io > 0 && options.onStalled && !watch) {
        const stalled = `the client sent no data for ${io} s (--io-timeout): stopping the run`;
        watch = watchPullStall(source, io * 1000, () => {
          ctx.logger.warn(stalled);
          options.onStalled?.(stalled);
        });
      }
      return { source, transportArgs: [`--rsh=${rsh}`, ...(io > 0 ? [`--timeout=${io}`] : [])], env: {}, compress: true };
    },
    async report() {
      watch?.stop();
    },
    async finish() {
      watch?.stop();
    },
  };
}
