import { describe, expect, it } from 'vitest';
import {
  castTensorSync,
  decode,
  decodeSync,
  encode,
  encodeSync,
  estimate,
  inspectObject,
  LOSSLESS_CODECS,
  type CodecName,
} from '../../lib/codec';
import {
  BaseMismatchError,
  ChecksumMismatchError,
  CorruptObjectError,
  InvalidArgumentError,
  UnsupportedError,
} from '../../lib/errors';
import { contentIdSync } from '../../lib/hash';
import { native } from '../../lib/native';
import { DTYPE_NAMES, DTYPES, type DType } from '../../lib/tensor/dtype';
import { gaussian, randomBytes, rng, sample, t, values } from './helpers';

const FLOATS: DType[] = ['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2'];
const SHAPES = [[], [0], [0, 3], [1], [7], [13], [1001], [3, 333]];

function standaloneCodecs(): CodecName[] {
  return ['RAW', 'ZSTD', 'PLANES'];
}
function deltaCodecs(d: DType): CodecName[] {
  const c: CodecName[] = ['DELTA_XOR', 'DELTA_ORDERED', 'SPARSE_UPDATE'];
  if (FLOATS.includes(d)) c.push('DELTA_EXPMANT');
  return c;
}

function expectSameBytes(a: Uint8Array, b: Uint8Array): void {
  expect(a.byteLength).toBe(b.byteLength);
  expect(
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ),
  ).toBe(0);
}

describe('lossless codecs: bit-exact round trips', () => {
  for (const dtype of DTYPE_NAMES) {
    it(`${dtype}: every standalone and delta codec, special values, 0-d, empty, odd lengths`, () => {
      for (const shape of SHAPES) {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = sample(dtype, n, 11 + n);
        const x = t(dtype, shape, data);
        for (const codec of [...standaloneCodecs(), 'auto'] as const) {
          const obj = encodeSync(x, { codec });
          const back = decodeSync(obj.bytes);
          expectSameBytes(back.data, data);
          expect(back.dtype).toBe(dtype);
          expect(back.shape).toEqual(shape);
          expect(obj.lossy).toBe(false);
        }
        // base: a perturbed copy with its own special values, so specials sit in both
        const bdata = sample(dtype, n, 99 + n);
        const r = rng(n + 5);
        for (let i = 0; i < n; i++)
          if (r() < 0.5)
            bdata.set(data.subarray(i * DTYPES[dtype].size, (i + 1) * DTYPES[dtype].size), i * DTYPES[dtype].size);
        const base = { tensor: t(dtype, shape, bdata) };
        for (const codec of [...deltaCodecs(dtype), 'auto'] as const) {
          const obj = encodeSync(x, { codec, base });
          const back = decodeSync(obj.bytes, base);
          expectSameBytes(back.data, data);
        }
      }
    });
  }

  it('every float special value survives every codec as base and as target', () => {
    for (const dtype of FLOATS) {
      const size = DTYPES[dtype].size;
      const sp = sample(dtype, 40, 3).subarray(0, 13 * size);
      const n = sp.byteLength / size;
      // target = specials, base = specials rotated by one (every pair of specials meets)
      const rot = new Uint8Array(sp.byteLength);
      rot.set(sp.subarray(size), 0);
      rot.set(sp.subarray(0, size), sp.byteLength - size);
      for (const [a, b] of [
        [sp, rot],
        [rot, sp],
        [sp, sp],
      ]) {
        const x = t(dtype, [n], a);
        const base = { tensor: t(dtype, [n], b) };
        for (const codec of deltaCodecs(dtype))
          expectSameBytes(decodeSync(encodeSync(x, { codec, base }).bytes, base).data, a);
        for (const codec of standaloneCodecs()) expectSameBytes(decodeSync(encodeSync(x, { codec }).bytes).data, a);
      }
    }
  });

  it('honours byteOffset views (zero-copy input) and decodes into a caller buffer', async () => {
    const big = sample('F32', 1000, 4);
    const view = new Uint8Array(big.buffer, 4, 996 * 4);
    const obj = await encode(t('F32', [996], view), { codec: 'PLANES' });
    const out = new Uint8Array(996 * 4);
    const back = await decode(obj.bytes, null, { out });
    expect(back.data).toBe(out);
    expectSameBytes(out, view);
  });
});

describe('large tensors and threads', () => {
  const n = (1 << 24) + 3;
  const g = gaussian(1 << 16, 0.02, 7);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = g[i & 0xffff] * (1 + (i >>> 16) * 1e-3);
  const data = new Uint8Array(a.buffer);
  const x = t('F32', [n], data);

  it('> 2^24 elements: bytes and ratio identical with 1 and N threads; decode identical', async () => {
    const objs = [];
    for (const threads of [1, 2, 3]) objs.push(await encode(x, { codec: 'PLANES', threads }));
    expectSameBytes(objs[0].bytes, objs[1].bytes);
    expectSameBytes(objs[0].bytes, objs[2].bytes);
    for (const threads of [1, 2, 4]) expectSameBytes((await decode(objs[0].bytes, null, { threads })).data, data);
    expect(objs[0].id).toBe(contentIdSync(x));
  });

  it('sparse update with changes past 2^24 round-trips and beats plain XOR', async () => {
    const b = new Float32Array(a);
    const changed = [0, 5, (1 << 24) - 1, 1 << 24, (1 << 24) + 1, n - 1];
    for (const i of changed) b[i] = b[i] * 1.5 + 1;
    const y = t('F32', [n], new Uint8Array(b.buffer));
    const base = { tensor: x, id: contentIdSync(x) };
    const s1 = await encode(y, { codec: 'SPARSE_UPDATE', base, threads: 1 });
    const s2 = await encode(y, { codec: 'SPARSE_UPDATE', base, threads: 2 });
    expectSameBytes(s1.bytes, s2.bytes);
    expect(s1.bytes.length).toBeLessThan(20000);
    expectSameBytes((await decode(s1.bytes, base)).data, y.data);
    const auto = await encode(y, { base });
    expect(auto.codec).toBe('SPARSE_UPDATE');
  });
});

describe('index streams past 2^32', () => {
  it('encodes and decodes u64 positions exactly', () => {
    const idx = new BigUint64Array([
      0n,
      1n,
      2n ** 24n,
      2n ** 32n - 1n,
      2n ** 32n,
      2n ** 32n + 7n,
      2n ** 40n,
      2n ** 53n + 1n,
    ]);
    const bytes = native.codecEncodeIndexStream(idx, 0n);
    const back = native.codecDecodeIndexStream(bytes, idx.length, 0n, 2n ** 60n);
    expect([...back]).toEqual([...idx]);
    // relative to a chunk start past 2^32
    const start = 3n * 2n ** 32n;
    const idx2 = new BigUint64Array([start, start + 2n ** 20n, start + 2n ** 22n - 1n]);
    const b2 = native.codecEncodeIndexStream(idx2, start);
    expect([...native.codecDecodeIndexStream(b2, 3, start, start + 2n ** 22n)]).toEqual([...idx2]);
    // out of range and truncated streams are corrupt
    expect(() => native.codecDecodeIndexStream(b2, 3, start, start + 2n ** 22n - 1n)).toThrow(
      expect.objectContaining({ code: 'CORAL_CORRUPT_OBJECT' }),
    );
    expect(() => native.codecDecodeIndexStream(bytes.subarray(0, bytes.length - 1), idx.length, 0n, 2n ** 60n)).toThrow(
      expect.objectContaining({ code: 'CORAL_CORRUPT_OBJECT' }),
    );
  });
});

describe('corrupt input is rejected with typed errors', () => {
  const data = sample('F32', 5000, 21);
  const x = t('F32', [50, 100], data);
  const bdata = sample('F32', 5000, 22);
  const base = { tensor: t('F32', [50, 100], bdata) };
  const finiteBase = { tensor: t('F32', [50, 100], new Uint8Array(gaussian(5000, 0.02, 6).buffer)) };

  for (const codec of [...LOSSLESS_CODECS, 'QUANT_INT8', 'PER_AXIS_SCALED', 'LOW_RANK', 'SPARSE_TOPK'] as CodecName[]) {
    it(`${codec}: flipped bytes, truncation and wrong base never yield wrong data`, () => {
      const lossy =
        codec === 'QUANT_INT8' || codec === 'PER_AXIS_SCALED' || codec === 'LOW_RANK' || codec === 'SPARSE_TOPK';
      const opts = {
        codec,
        base: lossy
          ? finiteBase
          : codec === 'CAST'
            ? { tensor: castTensorSync(x, 'F64') }
            : codec === 'ROWS'
              ? { tensor: t('F32', [40, 100], x.data.subarray(0, 40 * 100 * 4)) }
              : codec.startsWith('DELTA') || codec === 'SPARSE_UPDATE'
                ? base
                : undefined,
        lossy: codec === 'SPARSE_TOPK' ? { fraction: 0.1 } : codec === 'LOW_RANK' ? { rank: 4 } : undefined,
      };
      const xx = lossy ? t('F32', [50, 100], new Uint8Array(gaussian(5000, 0.02, 5).buffer)) : x;
      const obj = encodeSync(xx, opts);
      const good = decodeSync(obj.bytes, opts.base);
      const r = rng(codec.length);
      const positions = new Set<number>();
      for (let i = 0; i < Math.min(obj.bytes.length, 120); i++) positions.add(i);
      for (let k = 0; k < 200; k++) positions.add((r() * obj.bytes.length) | 0);
      for (const pos of positions) {
        const bad = Buffer.from(obj.bytes);
        bad[pos] ^= 1 << ((r() * 8) | 0);
        let out: Uint8Array;
        try {
          out = decodeSync(bad, opts.base).data;
        } catch (e) {
          // byte 4 is the format version: a higher one reads as "newer format", not corruption
          const allowed: string[] = [CorruptObjectError.code, ChecksumMismatchError.code, BaseMismatchError.code];
          if (pos === 4) allowed.push(UnsupportedError.code);
          expect(allowed).toContain((e as { code: string }).code);
          continue;
        }
        // a flip that still decodes must decode to the very same tensor (e.g. bits zstd ignores)
        expectSameBytes(out, good.data);
      }
      for (const len of [0, 3, 10, 40, 70, obj.bytes.length >> 1, obj.bytes.length - 1]) {
        expect(() => decodeSync(obj.bytes.subarray(0, len), opts.base)).toThrow(CorruptObjectError);
      }
      expect(() => decodeSync(Buffer.concat([obj.bytes, Buffer.from([0])]), opts.base)).toThrow(CorruptObjectError);
      if (opts.base) {
        const wrong = { tensor: t('F32', [50, 100], sample('F32', 5000, 23)) };
        expect(() => decodeSync(obj.bytes, wrong)).toThrow(BaseMismatchError);
        expect(() => decodeSync(obj.bytes)).toThrow(BaseMismatchError);
        expect(() => decodeSync(obj.bytes, { tensor: opts.base!.tensor, id: contentIdSync(wrong.tensor) })).toThrow(
          BaseMismatchError,
        );
      }
    });
  }

  it('async decode rejects with the same typed errors', async () => {
    const obj = encodeSync(x, { codec: 'PLANES' });
    const bad = Buffer.from(obj.bytes);
    bad[bad.length - 5] ^= 0xff;
    await expect(decode(bad)).rejects.toBeInstanceOf(Error);
    await expect(decode(bad.subarray(0, 30))).rejects.toBeInstanceOf(CorruptObjectError);
  });
});

describe('automatic choice', () => {
  it('is never more than a few header bytes larger than raw on random noise', () => {
    for (const dtype of ['F32', 'BF16', 'U8', 'I64'] as DType[]) {
      const n = 100000;
      const data = randomBytes(n * DTYPES[dtype].size, 3);
      const obj = encodeSync(t(dtype, [n], data), {});
      expect(obj.bytes.length).toBeLessThanOrEqual(data.length + 100);
      const base = { tensor: t(dtype, [n], randomBytes(n * DTYPES[dtype].size, 4)) };
      expect(encodeSync(t(dtype, [n], data), { base }).bytes.length).toBeLessThanOrEqual(data.length + 100);
    }
  });

  it('picks a plane codec for trained-like floats and a delta for a fine-tune', () => {
    const a = gaussian(300000, 0.02, 1);
    const x = t('F32', [300000], new Uint8Array(a.buffer));
    expect(['PLANES']).toContain(encodeSync(x).codec);
    const u = gaussian(300000, 1, 2);
    const f = a.map((v, i) => v + u[i] * 0.02 * 3e-3);
    const y = t('F32', [300000], new Uint8Array(f.buffer));
    const obj = encodeSync(y, { base: { tensor: x } });
    expect(obj.codec.startsWith('DELTA')).toBe(true);
    const est = estimate(y, { base: { tensor: x } });
    expect(est[0].codec).toBe(obj.codec);
  });

  it('lands within 3% of the best lossless codec on structured tensors, not just noise', () => {
    const n = 1 << 19;
    const w = gaussian(n, 0.02, 11);
    const pruned = w.map((v) => (Math.abs(v) < 0.02 ? 0 : v));
    const rows = new Float32Array(n);
    for (let i = 0; i < n; i++) rows[i] = w[i % 2048]; // a tiled row pattern
    const ids = new BigInt64Array(n);
    for (let i = 0; i < n; i++) ids[i] = BigInt(i % 4096); // position ids
    const mask = new Uint8Array(n);
    for (let i = 0; i < n; i++) mask[i] = (i >> 10) % 3 === 0 ? 1 : 0;
    const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const cases: Array<[string, ReturnType<typeof t>]> = [
      ['trained', t('F32', [n], bytes(w))],
      ['pruned', t('F32', [n], bytes(pruned))],
      ['tiled rows', t('F32', [n], bytes(rows))],
      ['position ids', t('I64', [n], bytes(ids))],
      ['mask', t('U8', [n], mask)],
    ];
    for (const [name, x] of cases) {
      const auto = encodeSync(x).bytes.length;
      const best = Math.min(...(['ZSTD', 'PLANES'] as const).map((codec) => encodeSync(x, { codec }).bytes.length));
      expect(auto, name).toBeLessThanOrEqual(Math.ceil(best * 1.03));
    }
  });
});

describe('lossy codecs record their measured error', () => {
  const rows = 64,
    cols = 96,
    n = rows * cols;
  const w = gaussian(n, 0.02, 31);
  const upd = gaussian(n, 0.02 * 5e-3, 32);
  const baseT = t('F32', [rows, cols], new Uint8Array(w.buffer));
  const tgtA = w.map((v, i) => v + upd[i]);
  const target = t('F32', [rows, cols], new Uint8Array(tgtA.buffer));
  const base = { tensor: baseT };

  function measured(dec: Float64Array, ref: Float64Array) {
    let m = 0,
      e = 0,
      q = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = Math.abs(dec[i] - ref[i]);
      m = Math.max(m, d);
      e += d * d;
      q += ref[i] * ref[i];
    }
    return { maxAbs: m, rel: Math.sqrt(e / q), l2: Math.sqrt(e) };
  }

  for (const codec of ['QUANT_INT8', 'QUANT_INT16'] as const) {
    it(`${codec}: full range, round to nearest, error as recorded`, async () => {
      // a delta with one huge outlier: no clipping means the outlier is exact-ish too
      const t2 = Float32Array.from(tgtA);
      t2[17] += 3;
      const y = t('F32', [rows, cols], new Uint8Array(t2.buffer));
      const obj = await encode(y, { codec, base, lossy: { block: 256 } });
      expect(obj.lossy).toBe(true);
      const dec = values(await decode(obj.bytes, base));
      const ref = values(y);
      const m = measured(dec, ref);
      expect(obj.maxAbsError).toBeCloseTo(m.maxAbs, 12);
      expect(obj.relL2Error).toBeCloseTo(m.rel, 9);
      expect(Math.abs(dec[17] - ref[17])).toBeLessThan(3 / (codec === 'QUANT_INT8' ? 127 : 32767));
      const h = inspectObject(obj.bytes);
      expect(h.maxAbsError).toBe(obj.maxAbsError);
      expect(h.relL2Error).toBe(obj.relL2Error);
      expect(h.params.block).toBe(256);
      // step/2 bound per block, plus float32 rounding of the result
      expect(m.maxAbs).toBeLessThan(3 / (codec === 'QUANT_INT8' ? 127 : 32767) / 2 + 1e-6);
    });
  }

  it('SPARSE_TOPK keeps the k largest deltas exactly', () => {
    const obj = encodeSync(target, { codec: 'SPARSE_TOPK', base, lossy: { topk: 100 } });
    const dec = values(decodeSync(obj.bytes, base));
    const ref = values(target),
      b = values(baseT);
    let exact = 0;
    for (let i = 0; i < n; i++)
      if (dec[i] === ref[i]) exact++;
      else expect(dec[i]).toBe(b[i]);
    expect(exact).toBeGreaterThanOrEqual(100);
    expect(inspectObject(obj.bytes).params.kept).toBe(100);
    expect(obj.maxAbsError).toBeCloseTo(measured(dec, ref).maxAbs, 12);
    // threshold mode
    const o2 = encodeSync(target, { codec: 'SPARSE_TOPK', base, lossy: { threshold: 1e-4 } });
    expect(o2.maxAbsError).toBeLessThan(1e-4);
  });

  for (const axis of ['row', 'col'] as const) {
    it(`PER_AXIS_SCALED (${axis}) is clearly better than dropping the delta`, () => {
      // rows/cols with very different update scales, as in a real fine-tune
      const r = rng(9);
      const rs = Array.from({ length: rows }, () => 0.2 + 3 * r());
      const cs = Array.from({ length: cols }, () => 0.2 + 3 * r());
      const tg = w.map((v, i) => v + upd[i] * (axis === 'row' ? rs[(i / cols) | 0] : cs[i % cols]));
      const y = t('F32', [rows, cols], new Uint8Array(tg.buffer));
      const obj = encodeSync(y, { codec: 'PER_AXIS_SCALED', base, lossy: { axis } });
      const dec = values(decodeSync(obj.bytes, base));
      const ref = values(y);
      const m = measured(dec, ref);
      const dropped = measured(values(baseT), ref);
      expect(m.l2).toBeLessThan(0.8 * dropped.l2);
      expect(obj.relL2Error).toBeCloseTo(m.rel, 9);
      expect(obj.bytes.length).toBeLessThan(n / 8 + 1000);
    });
  }

  it('LOW_RANK recovers a low-rank delta and picks rank by energy', () => {
    const U = gaussian(rows * 3, 1, 41),
      V = gaussian(3 * cols, 1e-3, 42);
    const tg = new Float32Array(n);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) {
        let s = 0;
        for (let k = 0; k < 3; k++) s += U[i * 3 + k] * V[k * cols + j] * (k + 1);
        tg[i * cols + j] = w[i * cols + j] + s;
      }
    const y = t('F32', [rows, cols], new Uint8Array(tg.buffer));
    const obj = encodeSync(y, { codec: 'LOW_RANK', base, lossy: { energy: 0.999999 } });
    expect(inspectObject(obj.bytes).params.rank).toBe(3);
    const dec = values(decodeSync(obj.bytes, base));
    const m = measured(dec, values(y));
    expect(obj.maxAbsError).toBeCloseTo(m.maxAbs, 12);
    expect(m.maxAbs).toBeLessThan(1e-6);
    const r1 = encodeSync(y, { codec: 'LOW_RANK', base, lossy: { rank: 1 } });
    expect(inspectObject(r1.bytes).params.rank).toBe(1);
    expect(r1.relL2Error!).toBeGreaterThan(obj.relL2Error!);
  });

  it('lossy codecs work on BF16 and F16 and without a base', () => {
    const bf = new Uint16Array(n);
    const dv = new DataView(new ArrayBuffer(4));
    for (let i = 0; i < n; i++) {
      dv.setFloat32(0, w[i], true);
      bf[i] = dv.getUint32(0, true) >>> 16;
    }
    const x = t('BF16', [rows, cols], new Uint8Array(bf.buffer));
    for (const codec of ['QUANT_INT8', 'PER_AXIS_SCALED', 'LOW_RANK'] as const) {
      const obj = encodeSync(x, { codec });
      const dec = values(decodeSync(obj.bytes));
      expect(obj.maxAbsError).toBeCloseTo(measured(dec, values(x)).maxAbs, 12);
    }
  });

  it('rejects non-finite values for quantisers but keeps them exactly in SPARSE_TOPK', () => {
    const a = Float32Array.from(tgtA);
    a[3] = NaN;
    a[4] = -Infinity;
    const y = t('F32', [rows, cols], new Uint8Array(a.buffer));
    expect(() => encodeSync(y, { codec: 'QUANT_INT8', base })).toThrow(InvalidArgumentError);
    const obj = encodeSync(y, { codec: 'SPARSE_TOPK', base, lossy: { topk: 10 } });
    const back = decodeSync(obj.bytes, base);
    expectSameBytes(back.data.subarray(12, 20), y.data.subarray(12, 20));
  });
});

describe('API contract', () => {
  const x = t('F32', [10], sample('F32', 10, 1));
  it('rejects misspelled and invalid options with InvalidArgumentError', () => {
    expect(() => encodeSync(x, { levle: 3 } as never)).toThrow(InvalidArgumentError);
    expect(() => encodeSync(x, { codec: 'ZSTDD' as never })).toThrow(/Expected one of RAW/);
    expect(() => encodeSync(x, { level: 99 })).toThrow(InvalidArgumentError);
    expect(() => encodeSync(x, { codec: 'PLANES', lossy: { block: 64 } })).toThrow(InvalidArgumentError);
    expect(() => encodeSync(x, { codec: 'QUANT_INT8', lossy: { blok: 64 } as never })).toThrow(InvalidArgumentError);
    expect(() => encodeSync(x, { codec: 'SPARSE_TOPK' })).toThrow(InvalidArgumentError);
    expect(() => encodeSync(x, { codec: 'DELTA_XOR' })).toThrow(InvalidArgumentError);
    expect(() => encodeSync(x, { base: { tensor: t('F32', [5, 2], sample('F32', 10, 1)) } })).toThrow(
      InvalidArgumentError,
    );
    expect(() => encodeSync(x, { base: { tensor: x, id: '0'.repeat(32) } })).toThrow(InvalidArgumentError);
    expect(() => decodeSync(encodeSync(x).bytes, null, { threds: 2 } as never)).toThrow(InvalidArgumentError);
  });

  it('accepts the predecessor codec names as bit-exact aliases', () => {
    const base = { tensor: t('F32', [10], sample('F32', 10, 2)) };
    expect(encodeSync(x, { codec: 'FLOAT32_RAW' }).codec).toBe('RAW');
    expect(encodeSync(x, { codec: 'COMPRESSED' }).codec).toBe('ZSTD');
    expect(encodeSync(x, { codec: 'EXPONENT_MANTISSA' }).codec).toBe('PLANES');
    expect(encodeSync(x, { codec: 'EXPONENT_MANTISSA', base }).codec).toBe('DELTA_EXPMANT');
    const o = encodeSync(x, { codec: 'XOR_FLOAT32', base });
    expect(o.codec).toBe('DELTA_XOR');
    expectSameBytes(decodeSync(o.bytes, base).data, x.data);
    const bf = t('BF16', [10], sample('BF16', 10, 3));
    expectSameBytes(
      decodeSync(encodeSync(bf, { codec: 'XOR_BFLOAT16', base: { tensor: bf } }).bytes, { tensor: bf }).data,
      bf.data,
    );
    expect(() => encodeSync(bf, { codec: 'XOR_FLOAT32', base: { tensor: bf } })).toThrow(InvalidArgumentError);
    expect(() => encodeSync(bf, { codec: 'FLOAT32_RAW' })).toThrow(InvalidArgumentError);
  });

  it('inspectObject reports the header', () => {
    const base = { tensor: t('F32', [10], sample('F32', 10, 2)) };
    const o = encodeSync(x, { codec: 'DELTA_ORDERED', base, level: 5 });
    const h = inspectObject(o.bytes);
    expect(h).toMatchObject({
      version: 1,
      codec: 'DELTA_ORDERED',
      dtype: 'F32',
      shape: [10],
      lossy: false,
      level: 5,
      chunkElems: 1 << 18,
      id: contentIdSync(x),
      baseId: contentIdSync(base.tensor),
      maxAbsError: 0,
      relL2Error: 0,
      nbytes: 40,
    });
    expect(h.headerSize + h.payloadSize).toBe(o.bytes.length);
    expect(inspectObject(encodeSync(x, { codec: 'PLANES' }).bytes).baseId).toBeNull();
  });

  it('sync and async encode produce the same bytes', async () => {
    const big = t('F32', [600000], new Uint8Array(gaussian(600000, 0.02, 8).buffer));
    const a = await encode(big, { codec: 'PLANES' });
    const b = encodeSync(big, { codec: 'PLANES' });
    expectSameBytes(a.bytes, b.bytes);
    expect(a.bytes.length).toBeLessThan(big.data.length / 1.1);
  });
});
