// CAST params layouts: objects written with the original 12-byte params
// (fixtures/cast-v0-objects.json) and with the compact params (one byte + LEB128
// residual, fixtures/cast-v1-objects.json, encoded by the code of that time) still
// inspect and decode byte-exactly; new objects keep the params in the header's
// error fields (P = 0), so a CAST with a residual costs what a delta against the
// stored cast costs (issue #18).
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { castTensorSync, decodeSync, encodeSync, inspectObject } from '../../lib/codec';
import { contentIdSync } from '../../lib/hash';
import type { Tensor } from '../../lib/tensor/tensor';

type Fixture = {
  base: string;
  objects: Array<{ name: string; codec: string; id: string; baseId: string; tensor: string; object: string }>;
};
const fixture = (name: string) => JSON.parse(readFileSync(path.join(__dirname, 'fixtures', name), 'utf8')) as Fixture;
const fx = fixture('cast-v0-objects.json');
const fx1 = fixture('cast-v1-objects.json');
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

  it('objects written with the compact params decode byte-exactly and report the same params', () => {
    expect(fx1.base).toBe(fx.base);
    expect(fx1.objects.length).toBe(4);
    for (const o of fx1.objects) {
      const bytes = Buffer.from(o.object, 'base64');
      const h = inspectObject(bytes);
      expect(h.codec, o.name).toBe('CAST');
      expect(h.id).toBe(o.id);
      expect(h.maxAbsError).toBe(0);
      const out = decodeSync(bytes, { tensor: base, id: o.baseId });
      expect(Buffer.from(out.data).equals(Buffer.from(o.tensor, 'base64')), o.name).toBe(true);
      // Re-encoded today: the same params, the same decoded bytes, params moved into the header.
      const t: Tensor = { dtype: h.dtype, shape: h.shape, data: new Uint8Array(Buffer.from(o.tensor, 'base64')) };
      const enc = encodeSync(t, { base: { tensor: base }, codec: 'CAST' });
      const hNew = inspectObject(enc.bytes);
      expect(hNew.params, o.name).toEqual(h.params);
      const leb = Math.max(1, Math.ceil(Math.log2(Number(h.params.residual) + 1) / 7));
      expect(enc.bytes.byteLength, o.name).toBe(bytes.byteLength - 1 - leb);
      expect(Buffer.from(decodeSync(enc.bytes, { tensor: base }).data).equals(Buffer.from(t.data))).toBe(true);
    }
  });

  it('new objects carry no params bytes: 12 bytes smaller than the original layout', () => {
    for (const o of fx.objects) {
      const old = Buffer.from(o.object, 'base64');
      const hOld = inspectObject(old);
      const t: Tensor = { dtype: hOld.dtype, shape: hOld.shape, data: new Uint8Array(Buffer.from(o.tensor, 'base64')) };
      const enc = encodeSync(t, { base: { tensor: base } });
      const h = inspectObject(enc.bytes);
      expect(h.params, o.name).toEqual(hOld.params);
      expect(h.maxAbsError).toBe(0);
      expect(h.relL2Error).toBe(0);
      expect(enc.bytes.byteLength, o.name).toBe(old.byteLength - 12);
      expect(Buffer.from(decodeSync(enc.bytes, { tensor: base }).data).equals(Buffer.from(t.data))).toBe(true);
    }
  });

  it('a cast then fine-tuned is exactly as large as a delta against the stored cast', () => {
    const f = new Float32Array(base.data.buffer.slice(0));
    for (let i = 0; i < f.length; i += 3) f[i] *= 1 + 1e-3 * Math.sin(i); // a third of the elements move
    const tuned = castTensorSync({ dtype: 'F32', shape: [64, 64], data: new Uint8Array(f.buffer) }, 'BF16');
    const cast = castTensorSync(base, 'BF16');
    const viaCast = encodeSync(tuned, { base: { tensor: base }, codec: 'CAST' });
    const delta = encodeSync(tuned, { base: { tensor: cast } });
    expect(inspectObject(viaCast.bytes).params).toMatchObject({ baseDtype: 'F32', rounding: 'RNE' });
    expect(Number(inspectObject(viaCast.bytes).params.residual)).toBeGreaterThan(128);
    expect(viaCast.bytes.byteLength).toBe(delta.bytes.byteLength);
    expect(Buffer.from(decodeSync(viaCast.bytes, { tensor: base }).data).equals(Buffer.from(tuned.data))).toBe(true);
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
