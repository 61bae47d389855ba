#!/usr/bin/env node
'use strict';
// The `coral` command: a thin shim over the compiled CLI in dist/.
const { main } = require('../dist/cli/main.js');

// `coral log | head`: a closed pipe ends output quietly, as with git.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e && e.code === 'EPIPE') process.exit(process.exitCode || 0);
    throw e;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`coral: ${e && e.message ? e.message : e} (CORAL_INTERNAL)\n`);
    process.exitCode = 1;
  },
);
