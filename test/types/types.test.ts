// The published types work for both module systems, and so do the entry points.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');

describe('package entry points', () => {
  it('type-checks an ESM and a CommonJS consumer against dist/ types', () => {
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'test/types/tsconfig.json'], {
      cwd: root,
      stdio: 'pipe',
    });
  });

  it('require() works from plain node', () => {
    const out = execFileSync(
      process.execPath,
      ['-e', "const c = require('coral-native'); console.log(typeof c.contentId, c.DTYPES.BF16.size)"],
      { cwd: root, encoding: 'utf8' },
    );
    expect(out.trim()).toBe('function 2');
  });

  it('import works from plain node with named exports', () => {
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { contentIdSync, tensor } from 'coral-native'; import c from 'coral-native'; " +
          "console.log(contentIdSync(tensor('U8', [1], new Uint8Array([1]))) === c.contentIdSync(c.tensor('U8', [1], new Uint8Array([1]))))",
      ],
      { cwd: root, encoding: 'utf8' },
    );
    expect(out.trim()).toBe('true');
  });
});
