#!/usr/bin/env node
'use strict';
// The native source digest: sha256 over every file that shapes the addon
// (CMakeLists.txt and native/**/*.{c,cc,h}), taken in sorted path order as
// "<path>\0<byte length>\0<bytes>". The build embeds it in the binary
// (`binding.sourceDigest`); tests and the install step recompute it here, so a
// prebuild built from other sources is detected instead of silently loaded.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const root = path.resolve(__dirname, '..');

function walk(dir, out) {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) walk(p, out);
    else if (/\.(c|cc|h)$/.test(ent.name)) out.push(p);
  }
  return out;
}

function nativeDigest(base = root) {
  const files = walk(path.join(base, 'native'), [path.join(base, 'CMakeLists.txt')])
    .map((p) => path.relative(base, p).split(path.sep).join('/'))
    .sort();
  const h = crypto.createHash('sha256');
  for (const rel of files) {
    const bytes = fs.readFileSync(path.join(base, rel));
    h.update(`${rel}\0${bytes.length}\0`);
    h.update(bytes);
  }
  return h.digest('hex');
}

module.exports = { nativeDigest };

if (require.main === module) {
  const i = process.argv.indexOf('--header');
  const digest = nativeDigest();
  if (i < 0) {
    process.stdout.write(digest + '\n');
  } else {
    const out = process.argv[i + 1];
    const text = `#pragma once\n#define CORAL_SOURCE_DIGEST "${digest}"\n`;
    fs.mkdirSync(path.dirname(out), { recursive: true });
    let old = '';
    try {
      old = fs.readFileSync(out, 'utf8');
    } catch {}
    if (old !== text) fs.writeFileSync(out, text);
  }
}
