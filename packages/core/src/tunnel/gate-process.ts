// Runs one gate process for one accepted connection and turns what it reports into events.
// The gate gets the socket as its fds 0 and 1 and the key on fd 3 (protocol in gate-status.ts);
// it runs detached, in its own process group, so that it and its rsync are killed together.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { oneLine } from '../errors.js';
import { killGroup } from '../process-group.js';
import { proofTimedOut, startDeadline } from './deadline.js';
import type { TunnelEvent } from './events.js';
import { GATE_CONTROL_FD, GATE_STATUS_MAX, parseGateStatus, type GateStatus } from './gate-status.js';
import { LineSplitter } from './line-splitter.js';
import { nodeScriptArgv } from './script.js';

const LOG_LINE_MAX = 1000;
const KILL_GRACE_MS = 1000;

export interface GateOptions {
  connection: number;
  key: Buffer;
  rsyncArgv: string[];
  handshakeTimeoutMs: number;
  env: NodeJS.ProcessEnv | undefined;
  emit: (event: TunnelEvent) => void;
}

export interface RunningGate {
  /** Settles when the gate has exited (it reaps its rsync first; a killed gate takes its group along). */
  readonly done: Promise<void>;
  /** SIGTERM to the gate's process group, SIGKILL a second later. */
  stop(): void;
}

function spawnGate(socket: Socket, options: GateOptions): ChildProcess {
  const [node, ...script] = nodeScriptArgv('gate') as [string, ...string[]];
  const args = [...script, '--timeout-ms', String(options.handshakeTimeoutMs), '--', ...options.rsyncArgv];
  try {
    return spawn(node, args, { stdio: [socket, socket, 'pipe', 'pipe'], detached: true, env: options.env ?? process.env });
  } finally {
    // The gate holds its own copies of the connection now; ours would only keep it open.
    socket.destroy();
  }
}

// Hands an accepted (paused) connection to a new gate process.
export function startGate(socket: Socket, options: GateOptions): RunningGate {
  const { connection, emit } = options;
  let outcome: 'pending' | 'check' | 'rsync' | 'rejected' = 'pending';
  const reject = (reason: string): void => {
    if (outcome !== 'pending') return;
    outcome = 'rejected';
    emit({ type: 'rejected', connection, reason });
  };
  let child: ChildProcess;
  try {
    child = spawnGate(socket, options);
  } catch (error) {
    reject(`cannot start the tunnel gate: ${oneLine(error)}`);
    return { done: Promise.resolve(), stop: () => undefined };
  }
  const pid = child.pid;
  const deadline = startDeadline(options.handshakeTimeoutMs);
  const proofTimer = setTimeout(() => {
    reject(proofTimedOut(deadline).message);
    killGroup(pid, 'SIGKILL');
  }, options.handshakeTimeoutMs);
  let killTimer: NodeJS.Timeout | undefined;

  const onStatus = (status: GateStatus | undefined): void => {
    if (status === undefined || outcome !== 'pending') return;
    clearTimeout(proofTimer);
    if (status.kind === 'rejected') return reject(status.reason);
    outcome = status.command;
    emit({ type: 'verified', connection, command: status.command });
  };
  // fd 3 stays open until the gate is gone: its EOF is how the gate learns that we died.
  const control = child.stdio[GATE_CONTROL_FD] as Socket;
  const statusLines = new LineSplitter(GATE_STATUS_MAX);
  control.on('error', () => undefined);
  control.on('data', (chunk: Buffer) => statusLines.push(chunk).forEach((line) => onStatus(parseGateStatus(line))));
  control.write(options.key);

  const logLines = new LineSplitter(LOG_LINE_MAX);
  const log = (line: string): void => emit({ type: 'log', connection, line });
  child.stderr?.on('data', (chunk: Buffer) => logLines.push(chunk).forEach(log));

  let exited = false;
  // Anything left in the group (an rsync whose gate was killed) goes with the gate.
  child.on('exit', () => {
    exited = true;
    killGroup(pid, 'SIGKILL');
  });
  const done = new Promise<void>((resolve) => {
    const finish = (code: number | null, why: string): void => {
      clearTimeout(proofTimer);
      clearTimeout(killTimer);
      logLines.flush().forEach(log);
      control.destroy();
      if (outcome === 'rsync') emit({ type: 'served', connection, exitCode: code });
      else reject(why);
      resolve();
    };
    child.on('error', (error) => {
      exited = true;
      finish(null, `cannot start the tunnel gate: ${oneLine(error)}`);
    });
    child.on('close', (code, signal) => finish(code, `tunnel gate ended (${signal ?? `exit ${code}`}) before the proof`));
  });
  const stop = (): void => {
    if (exited || killTimer) return;
    killGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), KILL_GRACE_MS);
  };
  return { done, stop };
}
