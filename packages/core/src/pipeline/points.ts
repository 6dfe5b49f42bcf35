// The hook points of the pipeline as data: names, aliases and contracts. `--hook-list`,
// the `-x` parser and the docs all read this table, so it is the one place to change.

export const POINT_NAMES = ['connect', 'handshake', 'rsync.pre', 'rsync', 'rsync.post', 'done'] as const;
export type PointName = (typeof POINT_NAMES)[number];

// camelCase keys of the typed hooks object, mapped once from the dotted names users see.
export const HOOK_KEYS = {
  connect: 'connect',
  handshake: 'handshake',
  'rsync.pre': 'rsyncPre',
  rsync: 'rsync',
  'rsync.post': 'rsyncPost',
  done: 'done',
} as const satisfies Record<PointName, string>;
export type HookKey = (typeof HOOK_KEYS)[PointName];

// Names used by the original scripts; a hook written for them runs unchanged.
export const POINT_ALIASES: Readonly<Record<string, PointName>> = {
  'script.start': 'connect',
  'script.handshake': 'handshake',
  'rsync.done': 'rsync.post',
  'script.done': 'done',
};

export interface PointContract {
  readonly name: PointName;
  readonly when: string;
  readonly argv: readonly string[] | null; // null: no exec scripts on this point
  readonly stdin: string;
  readonly stdout: string;
  readonly exit: string;
  readonly canSkip: boolean;
}

export const SKIP_EXIT_CODE = 75;

export const POINTS: readonly PointContract[] = [
  {
    name: 'connect',
    when: 'a client is connected (pull mode: before dialling out), before any handshake byte',
    argv: ['ROOT'],
    stdin: '/dev/null',
    stdout: 'logged',
    exit: '0 continues; 75 skips the run ("not now"); anything else fails it',
    canSkip: true,
  },
  {
    name: 'handshake',
    when: 'the handshake and tunnel check passed and the host is known',
    argv: ['ROOT', 'DIR', 'NAME'],
    stdin: '/dev/null',
    stdout: 'logged',
    exit: '0 continues; 75 skips the run; anything else fails it',
    canSkip: true,
  },
  {
    name: 'rsync.pre',
    when: 'right before rsync starts',
    argv: ['ROOT', 'DIR', 'NAME', 'PRIVILEGED(0/1)'],
    stdin: "rsync's current options, each \\0-terminated",
    stdout:
      '\\0-separated options appended to rsync\'s; a leading \\0 replaces the defaults; a trailing \\0 adds nothing; empty = unchanged; output without any \\0 is an error',
    exit: '0 continues; 75 skips the run; anything else fails it',
    canSkip: true,
  },
  {
    name: 'rsync',
    when: 'rsync runs; TS plugins may replace or wrap the runner',
    argv: null,
    stdin: '-',
    stdout: '-',
    exit: 'no exec scripts on this point',
    canSkip: false,
  },
  {
    name: 'rsync.post',
    when: 'rsync exited, whatever its code',
    argv: ['ROOT', 'DIR', 'NAME', 'EXIT_CODE'],
    stdin: "rsync's merged output",
    stdout: "empty, or one integer that replaces rsync's exit code (24 -> 0 is allowed); anything else is an error",
    exit: '0 continues; anything else fails the run',
    canSkip: false,
  },
  {
    name: 'done',
    when: 'always last, after the outcome is known, committed (on success) and reported: success, failure or skipped',
    argv: ['ROOT', 'DIR', 'NAME', 'STATUS'],
    stdin: '/dev/null',
    stdout: 'logged',
    exit: '0 is fine; anything else turns the run into a failure (the backup stays committed); every done tap runs, whatever the others did',
    canSkip: false,
  },
];

// Resolves a user-given point name or alias; undefined when unknown.
export function resolvePointName(name: string): PointName | undefined {
  if ((POINT_NAMES as readonly string[]).includes(name)) return name as PointName;
  return POINT_ALIASES[name];
}

export function pointContract(name: PointName): PointContract {
  const contract = POINTS.find((point) => point.name === name);
  if (!contract) throw new Error(`no contract for point ${name}`);
  return contract;
}
