// CAST params layouts: objects written with the original 12-byte params
// (fixtures/cast-v0-objects.json, encoded by the code before the compact
// layout) still inspect and decode byte-exactly; new objects use the compact
// layout (one byte + LEB128 residual), 10 bytes smaller, and decode the same.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { castTensorSync, decodeSync, encodeSync, inspectObject } from '../../lib/codec';
import { contentIdSync } from '../../lib/hash';
import type { Tensor } from '../../lib/tensor/tensor';

const fx = JSON.parse(readFileSync(path.join(__dirname, 'fixtures', 'cast-v0-objects.json'), 'utf8')) as {
  base: string;
  objects: Array<{ name: string; codec: string; id: string; baseId: string; tensor: string; object: string }>;
};
const base: Tensor = { dtype: 'F32', shape: [64, 64], data: new Uint8Array(Buffer.from(fx.base, 'base64')) };

describe('CAST params layouts', () => {
  it('objects written with the 12-byte layout decode byte-exactly', () => {
    expect(contentIdSync(base)).toBe(fx.objects[0].baseId);
    for (const o of fx.objects) {
      const bytes = Buffer.from(o.object, 'base64');
      const h = inspectObject(bytes);
      expect(h.codec, o.name).toBe('CAST');
      expect(h.id).toBe(o.id);
      const out = decodeSync(bytes, { tensor: base, id: o.baseId });
      expect(Buffer.from(out.data).equals(Buffer.from(o.tensor, 'base64')), o.name).toBe(true);
    }
  });

  it('new objects use the compact layout, report the same params and decode the same bytes', () => {
    for (const o of fx.objects) {
      const old = Buffer.from(o.object, 'base64');
      const hOld = inspectObject(old);
      const t: Tensor = { dtype: hOld.dtype, shape: hOld.shape, data: new Uint8Array(Buffer.from(o.tensor, 'base64')) };
      const enc = encodeSync(t, { base: { tensor: base } });
      const h = inspectObject(enc.bytes);
      expect(h.params, o.name).toEqual(hOld.params);
      expect(enc.bytes.byteLength, o.name).toBe(old.byteLength - 10); // 12 bytes -> 2 (residual < 128)
      expect(Buffer.from(decodeSync(enc.bytes, { tensor: base }).data).equals(Buffer.from(t.data))).toBe(true);
    }
  });

  it('a residual of many elements is a longer LEB128, reported exactly', () => {
    const f = new Float32Array(base.data.buffer.slice(0));
    for (let i = 0; i < f.length; i += 2) f[i] += 1e-3; // half the elements move
    const moved: Tensor = { dtype: 'F32', shape: [64, 64], data: new Uint8Array(f.buffer) };
    const enc = encodeSync(castTensorSync(moved, 'BF16'), { base: { tensor: base }, codec: 'CAST' });
    const h = inspectObject(enc.bytes);
    expect(h.codec).toBe('CAST');
    expect(Number(h.params.residual)).toBeGreaterThan(128);
    expect(Number(h.params.residual)).toBeLessThanOrEqual(4096);
  });
});
