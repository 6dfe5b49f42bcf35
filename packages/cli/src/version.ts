// The version the commands print for --version; test/cli-basics.test.ts keeps it equal to
// packages/cli/package.json's.
export const VERSION = '0.1.0';
