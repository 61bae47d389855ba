#!/usr/bin/env node
'use strict';
// The `coral` command: a thin shim over the compiled CLI in dist/.
const { main } = require('../dist/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`coral: ${e && e.message ? e.message : e} (CORAL_INTERNAL)\n`);
    process.exitCode = 1;
  },
);
