#!/usr/bin/env node
// The command, bundled into one file by scripts/bundle.mjs (start-up time matters: see bench/).
import { main } from '../dist/bundle/client.js';

main();
