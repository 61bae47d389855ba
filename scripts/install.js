#!/usr/bin/env node
'use strict';
// npm "install" step. Use build/Release or a prebuild only if it loads and was
// built from exactly these native sources; otherwise compile with cmake-js.
// CORAL_BUILD_FROM_SOURCE=1 (or npm's --build-from-source) always compiles.
const { spawnSync } = require('child_process');
const path = require('path');
const { nativeDigest } = require('./native-digest');

const root = path.resolve(__dirname, '..');

function usable() {
  if (process.env.CORAL_BUILD_FROM_SOURCE || process.env.npm_config_build_from_source === 'true') return false;
  try {
    const binding = require('node-gyp-build')(root);
    if (binding.sourceDigest === nativeDigest(root)) return true;
    console.error('coral-native: native binary is stale against native/ sources; rebuilding');
  } catch (e) {
    console.error(`coral-native: no loadable native binary (${e.message.split('\n')[0]}); building from source`);
  }
  return false;
}

if (!usable()) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--config', 'Release'], { stdio: 'inherit', cwd: root });
  process.exit(r.status === null ? 1 : r.status);
}
