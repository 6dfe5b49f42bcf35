// Entry script of the gate process, one per tunnel connection, started by the listener:
//   node gate.js --timeout-ms N -- rsync --daemon --config=FILE
// fds 0 and 1: the accepted TCP connection. fd 2: log lines for the listener. fd 3: the control
// channel (see gate-status.ts) on which the key K arrives; K is never in argv or environment.
//
// The gate runs the client half of the proof with exact synchronous reads, so not one byte meant
// for rsync is consumed; then on "rsync" it spawns `rsync --daemon` in inetd mode on the same
// fds (the connection is never released, so no port can be stolen) and stays its parent. Lifetime rules, so that no daemon outlives the client:
//   - before the proof is done, the gate is bounded by its own deadline (fd 0 is made
//     non-blocking for that), by the listener, which kills its process group on timeout, and
//     while it waits for the peer it polls fd 3 and exits at once on EOF (listener died);
//   - after the hand-over it keeps polling fd 3 (every 200 ms); EOF means the listener died
//     (even by SIGKILL): the gate sends SIGTERM to rsync, SIGKILL a second later, and exits
//     when rsync is gone;
//   - SIGTERM, SIGINT or SIGHUP do the same, so rsync is reaped by the gate, not orphaned.
// Exit status: 0 after a check, rsync's status after serving, 2 when the proof failed, 1 on a
// usage error, 127 when rsync cannot be started.
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import { constants } from 'node:os';
import { oneLine } from '../errors.js';
import { makeNonBlocking, peerClosedSync, readExactSync, writeAllSync } from './blocking-io.js';
import { proveAsClient } from './client-proof.js';
import { startDeadline } from './deadline.js';
import { GATE_CONTROL_FD, formatGateStatus, type GateStatus } from './gate-status.js';
import { KEY_BYTES, type TunnelCommand } from './proof.js';

const EXIT_USAGE = 1;
const EXIT_ORPHANED = 1;
const EXIT_REJECTED = 2;
const EXIT_NO_RSYNC = 127;
const KILL_GRACE_MS = 1000;
const LISTENER_POLL_MS = 200;

function fail(message: string, exitCode: number): never {
  try {
    writeSync(2, `ssh-r-sync gate: ${message}\n`);
  } catch {
    // the listener is gone; the exit status is all that is left
  }
  process.exit(exitCode);
}

function parseArgv(argv: string[]): { timeoutMs: number; rsyncArgv: string[] } {
  const timeoutMs = Number(argv[1]);
  if (argv[0] !== '--timeout-ms' || !Number.isInteger(timeoutMs) || timeoutMs <= 0 || argv[2] !== '--' || argv.length < 4) {
    fail('usage: gate --timeout-ms N -- rsync --daemon --config=FILE', EXIT_USAGE);
  }
  return { timeoutMs, rsyncArgv: argv.slice(3) };
}

// A status the listener cannot receive means it is gone: stop here.
function report(status: GateStatus): void {
  try {
    writeAllSync(GATE_CONTROL_FD, Buffer.from(formatGateStatus(status)), startDeadline(KILL_GRACE_MS));
  } catch {
    process.exit(status.kind === 'rejected' ? EXIT_REJECTED : EXIT_USAGE);
  }
}

function runProof(timeoutMs: number): TunnelCommand {
  const deadline = startDeadline(timeoutMs);
  if (!makeNonBlocking(GATE_CONTROL_FD)) fail('fd 3 must be the control socket from the listener', EXIT_USAGE);
  const listenerGone = (): void => {
    if (peerClosedSync(GATE_CONTROL_FD)) fail('the listener is gone', EXIT_ORPHANED);
  };
  let key: Buffer;
  try {
    key = readExactSync(GATE_CONTROL_FD, KEY_BYTES, deadline);
  } catch {
    fail('the listener did not send the tunnel key', EXIT_USAGE);
  }
  try {
    makeNonBlocking(0);
    makeNonBlocking(1);
    const channel = {
      read: (size: number) => readExactSync(0, size, deadline, listenerGone),
      write: (data: Buffer) => writeAllSync(1, data, deadline),
    };
    return proveAsClient(channel, key);
  } catch (error) {
    report({ kind: 'rejected', reason: oneLine(error) });
    process.exit(EXIT_REJECTED);
  } finally {
    key.fill(0);
  }
}

function serve(rsyncArgv: string[]): void {
  const [file, ...args] = rsyncArgv as [string, ...string[]];
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    rsync.kill('SIGTERM');
    setTimeout(() => rsync.kill('SIGKILL'), KILL_GRACE_MS).unref();
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, stop);
  // 'inherit' shares fds 0-2 with rsync; libuv also switches them back to blocking mode for it.
  const rsync = spawn(file, args, { stdio: ['inherit', 'inherit', 'inherit'] });
  rsync.on('error', (error) => fail(`cannot start ${file}: ${oneLine(error)}`, EXIT_NO_RSYNC));
  rsync.on('exit', (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  setInterval(() => {
    if (peerClosedSync(GATE_CONTROL_FD)) stop();
  }, LISTENER_POLL_MS);
}

const { timeoutMs, rsyncArgv } = parseArgv(process.argv.slice(2));
const command = runProof(timeoutMs);
report({ kind: 'verified', command });
if (command === 'check') process.exit(0);
serve(rsyncArgv);
