#!/usr/bin/env node
import { main } from '../dist/client.js';

main();
