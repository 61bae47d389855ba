#!/usr/bin/env node
'use strict';
// prebuildify drives node-gyp; this package builds with cmake-js. prebuildify
// calls `<shim> rebuild --target=… --arch=… …`; map that onto cmake-js and let
// prebuildify pick the result up from build/Release.
const { spawnSync } = require('child_process');
const path = require('path');

const args = process.argv.slice(2);
if (args[0] !== 'rebuild') {
  console.error(`node-gyp-shim: only "rebuild" is supported, got ${args.join(' ')}`);
  process.exit(2);
}
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, 'rebuild', '--config', 'Release'], {
  stdio: 'inherit',
  cwd: path.resolve(__dirname, '..'),
});
process.exit(r.status === null ? 1 : r.status);
