#!/usr/bin/env node
// The command, bundled into one file by scripts/bundle.mjs and loaded with V8's code cache
// (start-up time matters: every backup starts a client and a receiver; see bench/).
'use strict';
require('./load-bundle.js').run('recv');
