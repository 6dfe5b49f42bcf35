// A small stderr logger: stdout belongs to the protocol channel or to `--json`.
import { Chalk } from 'chalk';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** A logger whose lines carry an extra scope, e.g. a plugin's name. */
  scope(name: string): Logger;
}

export interface LoggerOptions {
  prefix: string;
  debug?: boolean;
  quiet?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

// Whether to colour STREAM, as chalk and no-color.org define it: FORCE_COLOR decides when set
// ('0' or 'false' off; '', 'true', '1'-'3' on, at that level), else a non-empty NO_COLOR turns
// colour off, else a terminal gets colour and a pipe does not.
export function colourLevel(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): 0 | 1 | 2 | 3 {
  const force = env.FORCE_COLOR;
  if (force !== undefined) {
    if (force === 'false' || force === '0') return 0;
    if (force === '' || force === 'true') return 1;
    const level = Number.parseInt(force, 10);
    return Number.isNaN(level) ? 1 : (Math.max(0, Math.min(level, 3)) as 0 | 1 | 2 | 3);
  }
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0;
  return stream.isTTY ? 1 : 0;
}

// Creates a logger that colours as colourLevel says (a TTY, NO_COLOR, FORCE_COLOR).
export function createLogger(options: LoggerOptions): Logger {
  const stream = options.stream ?? process.stderr;
  const chalk = new Chalk({ level: colourLevel(stream) });
  const min: LogLevel = options.debug ? 'debug' : options.quiet ? 'warn' : 'info';
  const paint: Record<LogLevel, (text: string) => string> = {
    debug: chalk.dim,
    info: (text) => text,
    warn: chalk.yellow,
    error: chalk.red,
  };
  const make = (scope: string): Logger => {
    const write = (level: LogLevel) => (message: string) => {
      if (ORDER[level] < ORDER[min]) return;
      const tag = level === 'info' || level === 'debug' ? '' : `${level}: `;
      for (const line of message.split('\n')) {
        stream.write(`${options.prefix}${scope}: ${paint[level](tag + line)}\n`);
      }
    };
    return {
      debug: write('debug'),
      info: write('info'),
      warn: write('warn'),
      error: write('error'),
      scope: (name) => make(`${scope}[${name}]`),
    };
  };
  return make('');
}

// A logger that drops everything; for library callers that want silence.
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  scope: () => silentLogger,
};
