#!/usr/bin/env node
import { main } from '../dist/admin.js';

main();
