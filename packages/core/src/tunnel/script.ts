// Locates connect-prog, the entry script next to this file: dist/tunnel/*.js once compiled, or
// src/tunnel/*.ts under tsx (tests), which then needs tsx's loader in the child too.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type TunnelScript = 'connect-prog';

function tsxLoader(): string {
  try {
    return import.meta.resolve('tsx');
  } catch {
    return 'tsx';
  }
}

// The argv (node first) that runs a sibling entry script, compiled or under tsx.
export function nodeScriptArgv(name: TunnelScript): string[] {
  const compiled = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  if (existsSync(compiled)) return [process.execPath, compiled];
  const source = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  return [process.execPath, '--import', tsxLoader(), source];
}
