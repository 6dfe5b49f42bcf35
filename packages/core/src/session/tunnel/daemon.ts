// Runs `rsync --daemon` in inetd mode directly on a proven connection. The socket becomes the
// daemon's fds 0 and 1: node's child_process stops reading a stdio handle it passes on, and
// libuv makes fds 0-2 blocking in the child, so no byte of rsync's stream is read by us. The
// daemon runs detached (its own process group) and, where setpriv can, with a parent-death
// signal, so that it dies with us even if we are SIGKILLed.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { oneLine } from '../../errors.js';
import { killGroup } from '../../exec/process-group.js';
import type { TunnelEvent } from './events.js';
import { LineSplitter } from '../../exec/line-splitter.js';

export const SETPRIV = '/usr/bin/setpriv';
const LOG_LINE_MAX = 1000;
const KILL_GRACE_MS = 1000;

let pdeathsigPrefix: Promise<string[]> | undefined;

// The argv prefix that sends the daemon SIGTERM when we die (setpriv ≥ 2.33), else []; cached.
export function parentDeathPrefix(): Promise<string[]> {
  pdeathsigPrefix ??= new Promise((resolve) => {
    execFile(SETPRIV, ['--help'], { timeout: 5000 }, (error, stdout) => {
      resolve(!error && String(stdout).includes('--pdeathsig') ? [SETPRIV, '--pdeathsig', 'SIGTERM', '--'] : []);
    });
  });
  return pdeathsigPrefix;
}

export interface DaemonOptions {
  connection: number;
  /** The full argv, parentDeathPrefix() included. */
  argv: string[];
  env: NodeJS.ProcessEnv | undefined;
  emit: (event: TunnelEvent) => void;
}

export interface RunningDaemon {
  /** Settles when the daemon has exited and its stderr is drained. */
  readonly done: Promise<void>;
  /** SIGTERM to the daemon's process group, SIGKILL a second later. */
  stop(): void;
}

function spawnOn(socket: Socket, argv: string[], env: NodeJS.ProcessEnv | undefined): ChildProcess {
  const [file, ...args] = argv as [string, ...string[]];
  socket.pause();
  try {
    return spawn(file, args, { stdio: [socket, socket, 'pipe'], detached: true, env: env ?? process.env });
  } finally {
    socket.destroy(); // closes only our copy of the fd; the daemon holds its own
  }
}

// Hands a proven connection to a new daemon; call it in the tick in which the proof ended.
export function startDaemon(socket: Socket, options: DaemonOptions): RunningDaemon {
  const { connection, emit } = options;
  const lines = new LineSplitter(LOG_LINE_MAX);
  const log = (line: string): void => emit({ type: 'log', connection, line });
  const cannotStart = (error: unknown): void => log(`cannot start ${options.argv.join(' ')}: ${oneLine(error)}`);
  let child: ChildProcess;
  try {
    child = spawnOn(socket, options.argv, options.env);
  } catch (error) {
    const done = Promise.resolve().then(() => {
      cannotStart(error); // reported after the listener's 'verified', as when spawn fails later
      emit({ type: 'served', connection, exitCode: null });
    });
    return { done, stop: () => undefined };
  }
  const pid = child.pid;
  child.stderr?.on('data', (chunk: Buffer) => lines.push(chunk).forEach(log));
  let exited = false;
  let killTimer: NodeJS.Timeout | undefined;
  // Anything the daemon left in its group goes with it.
  child.on('exit', () => {
    exited = true;
    killGroup(pid, 'SIGKILL');
  });
  const done = new Promise<void>((resolve) => {
    let finished = false;
    const finish = (exitCode: number | null): void => {
      if (finished) return;
      finished = true;
      exited = true;
      clearTimeout(killTimer);
      lines.flush().forEach(log);
      emit({ type: 'served', connection, exitCode });
      resolve();
    };
    child.on('error', (error) => {
      cannotStart(error);
      finish(null);
    });
    child.on('close', (code) => finish(pid === undefined ? null : code));
  });
  const stop = (): void => {
    if (exited || killTimer) return;
    killGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), KILL_GRACE_MS);
  };
  return { done, stop };
}
