// `coral add --lossy`: lossy objects record their error, the tree marks the file, show/diff/log/checkout
// say so, checkout writes the decoded tensors into the original layout (and verifies *that* sha256).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repository, parseLossySpec, readSafetensors, InvalidArgumentError } from '../../lib/index';
import { coral, ok, sha256, tmpdir, weights, writeSafetensors, tempDirs, f32 } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });

describe('coral add --lossy', () => {
  it('parses and validates lossy requests up front', () => {
    expect(parseLossySpec('QUANT_INT8:block=256')).toEqual({ codec: 'QUANT_INT8', options: { block: 256 } });
    expect(parseLossySpec('LOW_RANK:rank=4')).toEqual({ codec: 'LOW_RANK', options: { rank: 4 } });
    for (const bad of ['ZSTD', 'QUANT_INT8:block=3', 'QUANT_INT8:bogus=1', 'LOW_RANK:rank=x', 'QUANT_INT8:block'])
      expect(() => parseLossySpec(bad), bad).toThrow(InvalidArgumentError);
  });

  it('stores, marks and checks out a lossy file; lossless stays the default', async () => {
    const d = tmpdir('coral-lossy-');
    dirs.push(d);
    ok(d, ['init']);
    const w = weights(64 * 64, 7);
    writeSafetensors(path.join(d, 'm.safetensors'), {
      w: { dtype: 'F32', shape: [64, 64], data: f32(w) },
      b: { dtype: 'F32', shape: [8], data: f32(weights(8, 3)) },
    });
    const original = sha256(path.join(d, 'm.safetensors'));
    ok(d, ['add', 'm.safetensors']);
    ok(d, ['commit', '-m', 'exact']);
    // Same file, stored lossy in a second commit.
    fs.appendFileSync(path.join(d, 'touch'), 'x');
    const before = fs.statSync(path.join(d, 'm.safetensors'));
    fs.utimesSync(path.join(d, 'm.safetensors'), before.atime, new Date(before.mtimeMs + 5000));
    const add = coral(d, ['add', '--lossy', 'QUANT_INT8:block=64', 'm.safetensors']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/lossy m\.safetensors: QUANT_INT8, not byte-exact \(1 tensors; max abs error/);
    ok(d, ['commit', '-m', 'lossy']);

    const repo = await Repository.open(d);
    try {
      const e = (await repo.treeOf('HEAD')).files['m.safetensors'];
      expect(e.lossy?.codec).toBe('QUANT_INT8');
      expect(e.lossy!.segments).toBe(1); // the 8-element bias stays exact
      expect(e.lossy!.maxAbsError).toBeGreaterThan(0);
      expect(e.lossy!.maxAbsError).toBeLessThan(0.001);
      expect(e.lossy!.relL2Error).toBeGreaterThan(0);
      expect(e.lossy!.sourceSha256).toBe(original);
      expect(e.sha256).not.toBe(original);
      const exact = (await repo.treeOf('HEAD~1')).files['m.safetensors'];
      expect(exact.lossy).toBeUndefined();
      expect(exact.sha256).toBe(original);
    } finally {
      await repo.close();
    }

    const show = ok(d, ['show', 'HEAD:m.safetensors']);
    expect(show).toMatch(/lossy m\.safetensors: QUANT_INT8/);
    const diff = ok(d, ['diff', 'HEAD~1', 'HEAD']);
    expect(diff).toMatch(/M m\.safetensors/);
    expect(diff).toMatch(/lossy m\.safetensors: QUANT_INT8/);
    const log = ok(d, ['log', '--oneline']);
    expect(log.split('\n')[0]).toMatch(/lossy \[lossy\]/);
    expect(log.split('\n')[1]).not.toMatch(/\[lossy\]/);
    expect(ok(d, ['log', '-1'])).toMatch(/lossy m\.safetensors: QUANT_INT8, not byte-exact/);

    // Checkout of the lossy file: decoded tensors in the original layout, not byte-exact, no checksum failure.
    fs.rmSync(path.join(d, 'm.safetensors'));
    const co = coral(d, ['checkout', 'HEAD', '--', 'm.safetensors']);
    expect(co.code, co.stderr).toBe(0);
    expect(co.stdout).toMatch(/lossy m\.safetensors: QUANT_INT8, not byte-exact/);
    const back = await readSafetensors(path.join(d, 'm.safetensors'));
    expect(sha256(path.join(d, 'm.safetensors'))).not.toBe(original);
    const got = new Float32Array(new Uint8Array(back.tensors.get('w')!.data).buffer);
    let maxErr = 0;
    for (let i = 0; i < w.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - w[i]));
    expect(maxErr).toBeGreaterThan(0);
    expect(maxErr).toBeLessThan(0.001);
    expect(Buffer.from(back.tensors.get('b')!.data)).toEqual(Buffer.from(f32(weights(8, 3))));
    // The exact version still checks out byte-for-byte.
    const co2 = coral(d, ['checkout', 'HEAD~1', '--', 'm.safetensors']);
    expect(co2.code, co2.stderr).toBe(0);
    expect(co2.stdout).not.toMatch(/lossy/);
    expect(sha256(path.join(d, 'm.safetensors'))).toBe(original);
    expect(ok(d, ['fsck'])).toBeDefined();
  });
});
