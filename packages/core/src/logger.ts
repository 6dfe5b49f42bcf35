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

// Creates a logger that colours only on a TTY and honours NO_COLOR.
export function createLogger(options: LoggerOptions): Logger {
  const stream = options.stream ?? process.stderr;
  const useColour = Boolean(stream.isTTY) && !('NO_COLOR' in process.env);
  const chalk = new Chalk({ level: useColour ? 1 : 0 });
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
