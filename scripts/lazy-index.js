#!/usr/bin/env node
'use strict';
// Rewrites dist/index.js (the CommonJS entry tsc emits from lib/index.ts) so that each module it
// re-exports from is loaded on first use of one of its exports instead of when coral-native is
// required: `coral --version` or `coral status` then load only what they touch (the S3 client, the
// server, the hub client, the training integrations and the git extension stay unloaded). The names,
// values and types exported are exactly tsc's: every `var x_1 = require("./m")` becomes a proxy
// that requires ./m on its first property read, and `exports.ns = __importStar(require("./m"))`
// (`export * as ns`) a getter. `export *` (__exportStar) stays eager: its names are only known by
// loading the module. Run after tsc, before scripts/esm-wrapper.js (whose facade reads every export,
// so the ES module entry still loads everything at import).
const fs = require('fs');
const path = require('path');

const file = path.resolve(__dirname, '..', 'dist', 'index.js');
const src = fs.readFileSync(file, 'utf8');
const MARK = '/* lazy re-exports: scripts/lazy-index.js */';
if (src.includes(MARK)) process.exit(0);
let lazy = 0;
const out = src.split('\n').map((line) => {
  let m = /^(var|const) (\w+) = require\("(\.[^"]+)"\);$/.exec(line);
  if (m) {
    lazy++;
    return `${m[1]} ${m[2]} = __coralLazy(function () { return require("${m[3]}"); });`;
  }
  m = /^exports\.(\w+) = __importStar\(require\("(\.[^"]+)"\)\);$/.exec(line);
  if (m) {
    lazy++;
    const v = `__coralLazy(function () { return __importStar(require("${m[2]}")); })`;
    return `Object.defineProperty(exports, "${m[1]}", { enumerable: true, configurable: true, get: ${v}.__get });`;
  }
  return line;
});
if (lazy === 0) {
  console.error('lazy-index: no re-export found in dist/index.js (has tsc changed its output?)');
  process.exit(1);
}
out.push(
  MARK,
  'function __coralLazy(load) {',
  '    var mod;',
  '    var get = function () { return mod || (mod = load()); };',
  '    return new Proxy({}, { get: function (_t, k) { return k === "__get" ? get : get()[k]; } });',
  '}',
  '',
);
fs.writeFileSync(file, out.join('\n'));
