#!/usr/bin/env node
'use strict';
// The `coral` command: a thin shim over the compiled CLI in dist/.
const argv = process.argv.slice(2);
// `coral --version` needs nothing but package.json (the CLI answers the same when called in-process).
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === 'version')) {
  process.stdout.write(`coral ${require('../package.json').version}\n`);
  return;
}
// A command's JS heap stays near 8 MB while gigabytes of tensors pass through native buffers. With V8's
// default growth factor the old generation's limit then sits closer to the heap than the young
// generation's size, and V8 starts a full marking every few tensors: 25 of them in a 512 MiB fine-tune
// `add`, a tenth of its CPU. A larger factor for short commands lets garbage build up a few times the
// small live heap instead (tens of MB at most). The servers (`serve`, `ui`) run for days and keep
// V8's default. The flag is read each time V8 recomputes its limits, so setting it here takes effect.
// Each command also keeps the compiled code of dist/ for the next one (lib/cli/compile-cache.ts: where, and
// why it is safe); the servers start once, and without the flag above (V8 rejects code cached under others).
if (argv[0] !== 'serve' && argv[0] !== 'ui') {
  require('node:v8').setFlagsFromString('--heap-growing-percent=400');
  require('../dist/cli/compile-cache.js').enableCompileCache({ name: argv[0] });
}
// The filter process git starts for every add, checkout and diff: load the git extension alone, not the
// whole CLI (about 0.1 s of CPU per git command). Errors are reported as the CLI would.
if (argv.length === 2 && argv[0] === 'git' && argv[1] === 'filter-process') {
  require('../dist/git/process.js')
    .runFilterProcess(process.cwd())
    .catch((e) => {
      const { errorLine, exitCodeFor } = require('../dist/cli/output.js');
      process.stderr.write(errorLine(e));
      process.exitCode = exitCodeFor(e);
    });
  return;
}
const { main } = require('../dist/cli/main.js');

// `coral log | head`: a closed pipe ends output quietly, as with git.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e && e.code === 'EPIPE') process.exit(process.exitCode || 0);
    throw e;
  });
}

main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`coral: ${e && e.message ? e.message : e} (CORAL_INTERNAL)\n`);
    process.exitCode = 1;
  },
);
