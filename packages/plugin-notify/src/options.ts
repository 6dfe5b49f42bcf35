// The plugin's options, checked once when the config is loaded: where notifications go (top level,
// overridden per host), and how long and how often a delivery may try.
import { SshRSyncError } from '@ssh-r-sync/core';

/** Where one host's notifications go; `null` turns off what the top level set. */
export interface NotifyTargets {
  /** A healthchecks.io ping URL (`https://hc-ping.com/UUID`, or a self-hosted one); `{host}` is the host's name. */
  healthchecks?: string | null;
  /** A URL that gets each event as JSON (POST, application/json); `{host}` is the host's name. */
  webhook?: string | null;
  /** A program and its arguments (no shell) that gets each event as JSON on stdin. */
  command?: string[] | null;
}

export interface NotifyOptions extends NotifyTargets {
  /** Per host name: what differs from the top level. */
  hosts?: Record<string, NotifyTargets>;
  /** Seconds one HTTP attempt (or the command) may take (default 10). */
  timeout?: number;
  /** Seconds one event's delivery may take, retries included (default 30). */
  totalTimeout?: number;
  /** Further attempts after a network error, a timeout, a 5xx or a 429 (default 3). */
  retries?: number;
  /** Bytes of the run's log tail sent with a ping (default 10240, at most 100000: healthchecks.io keeps 100 kB). */
  logBytes?: number;
}

/** The options, checked, with defaults applied. */
export interface ParsedOptions {
  top: ResolvedTargets;
  hosts: Map<string, NotifyTargets>;
  timeoutMs: number;
  totalTimeoutMs: number;
  retries: number;
  logBytes: number;
}

/** One host's targets, `{host}` still unreplaced. */
export interface ResolvedTargets {
  healthchecks: string | null;
  webhook: string | null;
  command: string[] | null;
}

const TARGET_KEYS = ['healthchecks', 'webhook', 'command'] as const;
const KNOWN = new Set<string>([...TARGET_KEYS, 'hosts', 'timeout', 'totalTimeout', 'retries', 'logBytes']);
const MAX_LOG_BYTES = 100_000;

// Checks the options; a bad one throws a configuration error that never repeats a URL (it may hold a secret).
export function parseOptions(options: NotifyOptions): ParsedOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw config('the options must be an object');
  for (const key of Object.keys(options)) if (!KNOWN.has(key)) throw config(`unknown option ${JSON.stringify(key)} (known: ${[...KNOWN].join(', ')})`);
  const top = targetsOf(options, 'the top level');
  const hosts = new Map<string, NotifyTargets>();
  if (options.hosts !== undefined) {
    if (typeof options.hosts !== 'object' || options.hosts === null || Array.isArray(options.hosts)) throw config('hosts must map host names to { healthchecks, webhook, command }');
    for (const [name, entry] of Object.entries(options.hosts)) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw config(`hosts.${name} must be an object`);
      for (const key of Object.keys(entry)) if (!(TARGET_KEYS as readonly string[]).includes(key)) throw config(`hosts.${name}: unknown option ${JSON.stringify(key)} (known: ${TARGET_KEYS.join(', ')})`);
      hosts.set(name, targetsOf(entry, `hosts.${name}`, true));
    }
  }
  return {
    top: { healthchecks: top.healthchecks ?? null, webhook: top.webhook ?? null, command: top.command ?? null },
    hosts,
    timeoutMs: seconds(options.timeout, 'timeout', 10) * 1000,
    totalTimeoutMs: seconds(options.totalTimeout, 'totalTimeout', 30) * 1000,
    retries: whole(options.retries, 'retries', 3, 0, 10),
    logBytes: whole(options.logBytes, 'logBytes', 10240, 0, MAX_LOG_BYTES),
  };
}

// What host `name` uses: its own entries where it has them, else the top level's; `{host}` replaced.
export function targetsFor(parsed: ParsedOptions, name: string): ResolvedTargets {
  const own = parsed.hosts.get(name) ?? {};
  const pick = <K extends keyof ResolvedTargets>(key: K): ResolvedTargets[K] => (own[key] !== undefined ? (own[key] as ResolvedTargets[K]) : parsed.top[key]);
  const url = (value: string | null) => (value === null ? null : value.replaceAll('{host}', encodeURIComponent(name)));
  return { healthchecks: url(pick('healthchecks')), webhook: url(pick('webhook')), command: pick('command') };
}

// True when a host has somewhere to send to.
export function hasTargets(targets: ResolvedTargets): boolean {
  return targets.healthchecks !== null || targets.webhook !== null || targets.command !== null;
}

function targetsOf(entry: NotifyTargets, where: string, nullable = false): NotifyTargets {
  const out: NotifyTargets = {};
  for (const key of ['healthchecks', 'webhook'] as const) {
    const value = entry[key];
    if (value === undefined) continue;
    if (value === null && nullable) out[key] = null;
    else out[key] = httpUrl(value, `${where}: ${key}`);
  }
  const command = entry.command;
  if (command === null && nullable) out.command = null;
  else if (command !== undefined) {
    if (!Array.isArray(command) || command.length === 0 || !command.every((arg) => typeof arg === 'string') || command[0] === '') {
      throw config(`${where}: command must be a non-empty array of strings, the program first (no shell)`);
    }
    out.command = [...command];
  }
  return out;
}

// An http(s) URL; checked with `{host}` stood in by a name, and never echoed back.
function httpUrl(value: unknown, what: string): string {
  if (typeof value !== 'string') throw config(`${what} must be a URL string`);
  let url: URL;
  try {
    url = new URL(value.replaceAll('{host}', 'host'));
  } catch {
    throw config(`${what} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw config(`${what} must be an http:// or https:// URL`);
  return value;
}

function seconds(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw config(`${what} must be a number of seconds > 0, got ${JSON.stringify(value)}`);
  return value;
}

function whole(value: unknown, what: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) throw config(`${what} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return value as number;
}

function config(message: string): SshRSyncError {
  return new SshRSyncError('ECONFIG', message);
}
