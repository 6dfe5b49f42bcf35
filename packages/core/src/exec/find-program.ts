// Whether a program can be started, looked up as spawn would (a path as given, a bare name on
// PATH), so that a missing rsync is named at start and not as a broken transfer later.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

// The path that would run for `program`, or null when none is an executable file.
export function findProgram(program: string, path = process.env.PATH ?? ''): string | null {
  const candidates = program.includes('/') ? [program] : path.split(delimiter).filter((dir) => dir !== '').map((dir) => join(dir, program));
  return candidates.find(isExecutableFile) ?? null;
}

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}
