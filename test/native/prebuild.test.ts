// A committed prebuild must never be stale: every binary we can load must
// carry the digest of the native sources in this checkout.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { nativeDigest } = require(path.join(root, 'scripts', 'native-digest.js'));
const digest: string = nativeDigest(root);

function prebuilds(): string[] {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith('.node')).map((f) => path.join(dir, f));
}

describe('native binaries match the sources', () => {
  it('the loaded binding was built from these sources', async () => {
    const { native } = await import('../../lib/native');
    expect(native.sourceDigest).toBe(digest);
  });

  it('the committed linux-x64 prebuild exists and is current', () => {
    const files = prebuilds();
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const out = execFileSync(process.execPath, ['-p', `require(${JSON.stringify(f)}).sourceDigest`], { encoding: 'utf8' });
      expect(out.trim(), `${path.relative(root, f)} is stale: run npm run prebuild`).toBe(digest);
    }
  });

  it('PREBUILDS_ONLY=1 loads the prebuild through node-gyp-build', () => {
    const out = execFileSync(
      process.execPath,
      ['-p', `require('node-gyp-build')(${JSON.stringify(root)}).sourceDigest`],
      { encoding: 'utf8', cwd: root, env: { ...process.env, PREBUILDS_ONLY: '1' } },
    );
    expect(out.trim()).toBe(digest);
  });
});
