#!/usr/bin/env node
import { main } from '../dist/recv.js';

main();
