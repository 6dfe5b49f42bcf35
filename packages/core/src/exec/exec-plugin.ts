// The adapter that makes an executable script a tap like any other: one small function per
// point turns the point's arguments into argv, stdin and environment, and the script's exit
// code and stdout back into what the hook's class expects.
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import type { RsyncCommand, RsyncResult, RunContext, Skip } from '../pipeline/context.js';
import { skip } from '../pipeline/context.js';
import { SshRSyncError, UsageError } from '../errors.js';
import { describeExit, runScript, type ScriptResult } from './exec-hook.js';
import type { PipelineHooks } from '../pipeline/hooks.js';
import type { Plugin } from '../plugins/plugin.js';
import { POINT_ALIASES, POINT_NAMES, SKIP_EXIT_CODE, pointContract, resolvePointName, type PointName } from '../pipeline/points.js';
import { currentTap } from '../pipeline/tap-guard.js';

/** One `-x POINT:PATH`: a script attached to a point. */
export interface HookSpec {
  point: PointName;
  /** Resolved path, or a bare name looked up in PATH when the hook runs. */
  path: string;
}

export const SCRIPT_TAP_ORIGIN = 'script';
const MAX_ARGS_OUTPUT = 1024 * 1024;
const MAX_CODE_OUTPUT = 64 * 1024;
const MAX_LOGGED_OUTPUT = 1024 * 1024;

// Parses `POINT:PATH`; `base` resolves relative paths (the cwd, or a config file's folder).
export function parseHookSpec(text: string, base = process.cwd()): HookSpec {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) {
    throw new UsageError(`invalid hook "${text}": expected POINT:PATH, e.g. rsync.pre:/etc/ssh-r-sync/pre.sh`);
  }
  const name = text.slice(0, colon);
  const point = resolvePointName(name);
  if (!point) {
    const aliases = Object.keys(POINT_ALIASES).join(', ');
    throw new UsageError(`unknown hook point "${name}": valid points are ${POINT_NAMES.join(', ')} (aliases: ${aliases})`);
  }
  if (point === 'rsync') throw new UsageError('the rsync point takes no scripts: use rsync.pre / rsync.post, or a TS plugin');
  return { point, path: resolveScriptPath(text.slice(colon + 1), base) };
}

// A path with a slash is resolved (with ~ expanded); a bare name stays for a PATH lookup.
export function resolveScriptPath(path: string, base: string): string {
  if (!path.includes('/')) return path;
  const expanded = path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path;
  return resolve(base, expanded);
}

// A plugin that taps each script onto its point, in the order given.
export function scriptsPlugin(specs: readonly HookSpec[]): Plugin {
  return {
    name: 'scripts',
    apply(hooks) {
      for (const spec of specs) tapScript(hooks, spec);
    },
  };
}

// Taps one script onto the hook of its point.
export function tapScript(hooks: PipelineHooks, spec: HookSpec): void {
  const options = { name: spec.path, origin: SCRIPT_TAP_ORIGIN } as { name: string };
  const { path } = spec;
  switch (spec.point) {
    case 'connect':
      hooks.connect.tapPromise(options, async (ctx) => gate('connect', path, await logged('connect', spec, ctx, [ctx.root])));
      return;
    case 'handshake':
      hooks.handshake.tapPromise(options, async (ctx) =>
        gate('handshake', path, await logged('handshake', spec, ctx, [ctx.root, ctx.dir, ctx.name])),
      );
      return;
    case 'rsync.pre':
      hooks.rsyncPre.tapPromise(options, (command, ctx) => rsyncPre(spec, command, ctx));
      return;
    case 'rsync.post':
      hooks.rsyncPost.tapPromise(options, (result, ctx) => rsyncPost(spec, result, ctx));
      return;
    case 'done':
      hooks.done.tapPromise(options, async (outcome, ctx) => {
        gate('done', path, await logged('done', spec, ctx, [ctx.root, ctx.dir, ctx.name, outcome.status], { STATUS: outcome.status }));
      });
      return;
    case 'rsync':
      throw new UsageError('the rsync point takes no scripts');
  }
}

async function rsyncPre(spec: HookSpec, command: RsyncCommand, ctx: RunContext): Promise<Skip | undefined> {
  const privileged = ctx.mode === 'privileged' ? '1' : '0';
  const input = command.args.map((arg) => `${arg}\0`).join('');
  const result = await execute('rsync.pre', spec, ctx, [ctx.root, ctx.dir, ctx.name, privileged], {
    input,
    maxOutputBytes: MAX_ARGS_OUTPUT,
    env: { PRIVILEGED: privileged },
  });
  const skipped = gate('rsync.pre', spec.path, result);
  if (skipped) return skipped;
  command.args = applyRsyncPreOutput(command.args, result.stdout);
  return undefined;
}

async function rsyncPost(spec: HookSpec, rsync: RsyncResult, ctx: RunContext): Promise<RsyncResult> {
  const code = String(rsync.exitCode);
  const result = await execute('rsync.post', spec, ctx, [ctx.root, ctx.dir, ctx.name, code], {
    input: rsync.output,
    maxOutputBytes: MAX_CODE_OUTPUT,
    env: { EXIT_CODE: code },
  });
  gate('rsync.post', spec.path, result);
  const replaced = parseExitCodeOutput(result.stdout);
  return replaced === undefined ? rsync : { ...rsync, exitCode: replaced };
}

// rsync.pre's stdout contract: \0-separated options appended; a leading \0 replaces them all.
export function applyRsyncPreOutput(args: readonly string[], stdout: Buffer): string[] {
  if (stdout.toString('latin1').trim() === '') return [...args];
  if (!stdout.includes(0)) {
    throw new SshRSyncError('EHOOK', `stdout must be \\0-terminated rsync options, got ${quote(stdout)}`);
  }
  const parts = stdout
    .toString('utf8')
    .replace(/^[ \r\n\t]+|[ \r\n\t]+$/g, '')
    .split('\0');
  if (parts.at(-1) === '') parts.pop();
  const replace = parts[0] === '';
  if (replace) parts.shift();
  if (parts.includes('')) throw new SshRSyncError('EHOOK', `stdout has an empty option (two \\0 in a row): ${quote(stdout)}`);
  return replace ? parts : [...args, ...parts];
}

// rsync.post's stdout contract: nothing, or one integer that replaces rsync's exit code.
export function parseExitCodeOutput(stdout: Buffer): number | undefined {
  const text = stdout.toString('utf8').trim();
  if (text === '') return undefined;
  if (!/^\d{1,3}$/.test(text) || Number(text) > 255) {
    throw new SshRSyncError('EHOOK', `stdout must be an integer exit code (0-255), got ${quote(stdout)}`);
  }
  return Number(text);
}

// Exit 0 continues; 75 skips where the point allows it; anything else fails the tap.
function gate(point: PointName, path: string, result: ScriptResult): Skip | undefined {
  if (result.exitCode === 0) return undefined;
  if (result.exitCode === SKIP_EXIT_CODE && pointContract(point).canSkip) {
    return skip(`${point} hook "${path}" exited with ${SKIP_EXIT_CODE} (not now)`);
  }
  throw new SshRSyncError('EHOOK', describeExit(result));
}

async function logged(point: PointName, spec: HookSpec, ctx: RunContext, args: string[], env: Record<string, string> = {}) {
  const result = await execute(point, spec, ctx, args, { maxOutputBytes: MAX_LOGGED_OUTPUT, env });
  const text = result.stdout.toString('utf8').trimEnd();
  if (text) ctx.logger.scope(`${point} ${spec.path}`).info(text);
  return result;
}

interface ExecuteOptions {
  input?: string;
  maxOutputBytes: number;
  env?: Record<string, string>;
}

function execute(point: PointName, spec: HookSpec, ctx: RunContext, args: string[], options: ExecuteOptions): Promise<ScriptResult> {
  return runScript({
    path: spec.path,
    args,
    env: hookEnvironment(point, ctx, options.env ?? {}),
    ...(options.input === undefined ? {} : { input: options.input }),
    signal: currentTap()?.signal ?? ctx.signal,
    maxOutputBytes: options.maxOutputBytes,
    logger: ctx.logger.scope(`${point} ${spec.path}`),
  });
}

// Names of variables that may hold secrets; hooks never see them.
const SECRET_VARIABLE = /^(RSYNC_PASSWORD|SSH_R_SYNC_.*|.*(SECRET|PASSWORD|PASSPHRASE|TOKEN).*)$/i;

// The hook's environment: the receiver's own minus secrets, plus SSH_R_SYNC_* context.
export function hookEnvironment(point: PointName, ctx: RunContext, extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !SECRET_VARIABLE.test(key)) env[key] = value;
  }
  const context: Record<string, string> = {
    POINT: point,
    ROLE: ctx.role,
    ROOT: ctx.root,
    DIR: ctx.dir,
    NAME: ctx.name,
    MODE: ctx.mode,
    ...extra,
  };
  for (const [key, value] of Object.entries(context)) env[`SSH_R_SYNC_${key}`] = value;
  return env;
}

function quote(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
  return shown;
}

