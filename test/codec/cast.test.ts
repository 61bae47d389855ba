// The CAST and ROWS codecs: bit-exact casts of hostile values for every pair
// (checked against an independent value-domain oracle), round trips through
// encode/decode with zero and non-zero residuals, AVX2 vs portable kernels,
// row-resized bases, and malformed input.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  baseRelation,
  castTensor,
  castTensorSync,
  decode,
  encode,
  inspectObject,
  type EncodeOptions,
} from '../../lib/codec';
import { BaseMismatchError, CorruptObjectError, InvalidArgumentError } from '../../lib/errors';
import { contentId } from '../../lib/hash';
import type { DType } from '../../lib/tensor/dtype';
import type { Tensor } from '../../lib/tensor/tensor';
import { sameBytes } from './helpers';

type FDType = 'F64' | 'F32' | 'F16' | 'BF16';
const FMT: Record<FDType, { e: number; m: number; w: number }> = {
  F64: { e: 11, m: 52, w: 8 },
  F32: { e: 8, m: 23, w: 4 },
  F16: { e: 5, m: 10, w: 2 },
  BF16: { e: 8, m: 7, w: 2 },
};
const FLOATS: FDType[] = ['F64', 'F32', 'F16', 'BF16'];

// ---- seeded data ---------------------------------------------------------------------------
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Element bits as bigint (little-endian). */
function bitsAt(d: FDType, b: Uint8Array, i: number): bigint {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const w = FMT[d].w;
  if (w === 8) return v.getBigUint64(i * 8, true);
  if (w === 4) return BigInt(v.getUint32(i * 4, true));
  return BigInt(v.getUint16(i * 2, true));
}
function fromBits(d: FDType, bits: bigint[]): Tensor {
  const w = FMT[d].w;
  const out = new Uint8Array(bits.length * w);
  const v = new DataView(out.buffer);
  bits.forEach((x, i) => {
    if (w === 8) v.setBigUint64(i * 8, x, true);
    else if (w === 4) v.setUint32(i * 4, Number(x), true);
    else v.setUint16(i * 2, Number(x), true);
  });
  return { dtype: d, shape: [bits.length], data: out };
}

/** Hostile values of each source dtype, plus seeded random bit patterns and weight-like values. */
function hostile(d: FDType, seed: number): bigint[] {
  const { e, m, w } = FMT[d];
  const S = 1n << BigInt(e + m);
  const EXP = ((1n << BigInt(e)) - 1n) << BigInt(m);
  const Q = 1n << BigInt(m - 1);
  const FRAC = (1n << BigInt(m)) - 1n;
  const base = [
    0n,
    1n,
    FRAC,
    FRAC + 1n,
    EXP - 1n,
    EXP,
    EXP | Q,
    EXP | 1n,
    EXP | (Q >> 1n) | 1n,
    EXP | FRAC,
    EXP | Q | 5n,
    (1n << BigInt(m)) * 3n + 1n,
  ];
  const vals: bigint[] = [];
  for (const b of base) vals.push(b, b | S);
  // Values that round to Inf (or saturate) in the narrower types, and halfway ties.
  const view = new DataView(new ArrayBuffer(8));
  const asBits = (x: number): bigint => {
    if (d === 'F64') {
      view.setFloat64(0, x, true);
      return view.getBigUint64(0, true);
    }
    if (d === 'F32') {
      view.setFloat32(0, x, true);
      return BigInt(view.getUint32(0, true));
    }
    return -1n;
  };
  if (d === 'F64' || d === 'F32') {
    for (const x of [
      65504,
      65519.99,
      65520,
      65536,
      3.3895313892515355e38,
      3.4028234663852886e38,
      1e300,
      2 ** -24,
      2 ** -25,
      3 * 2 ** -26,
      2 ** -133,
      2 ** -134,
      2 ** -149,
      2 ** -150,
      1 + 2 ** -8,
      1 + 3 * 2 ** -8,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      1 + 2 ** -24,
      1 + 3 * 2 ** -24,
      0.1,
      -0.3,
      1 / 3,
    ]) {
      const b = asBits(x);
      if (b >= 0n) vals.push(b, b | S);
    }
    // F32 bit patterns just below BF16 overflow (0x7f7f8000 ties up to Inf).
    if (d === 'F32') vals.push(0x7f7f8000n, 0x7f7f7fffn, 0x7f7fffffn, 0xff7f8000n, 0x00008000n, 0x00018000n);
  }
  const r = xorshift(seed);
  for (let i = 0; i < 3000; i++) {
    let x = BigInt(r());
    if (w === 8) x = (x << 32n) | BigInt(r());
    if (w === 2) x &= 0xffffn;
    vals.push(x);
  }
  // Weight-like values (normals around 0.02).
  for (let i = 0; i < 3000; i++) {
    const u = (r() + 1) / 4294967297;
    const g = Math.sqrt(-2 * Math.log(u)) * Math.cos((2 * Math.PI * r()) / 4294967296) * 0.02;
    if (d === 'F64' || d === 'F32') vals.push(asBits(g));
    else vals.push(BigInt(r() & 0x3fff) | (r() & 1 ? 0x8000n : 0n));
  }
  return vals;
}

// ---- an independent oracle: exact values in doubles, IEEE rounding by quanta ---------------
function valueOf(d: FDType, bits: bigint): number {
  const { e, m } = FMT[d];
  const sign = (bits >> BigInt(e + m)) & 1n ? -1 : 1;
  const ef = Number((bits >> BigInt(m)) & ((1n << BigInt(e)) - 1n));
  const frac = Number(bits & ((1n << BigInt(m)) - 1n));
  const bias = 2 ** (e - 1) - 1;
  if (ef === 0) return sign * frac * 2 ** (1 - bias - m);
  return sign * (frac + 2 ** m) * 2 ** (ef - bias - m);
}

function oracle(from: FDType, bits: bigint, to: FDType, mode: 'RNE' | 'RTZ'): bigint {
  const s = FMT[from];
  const d = FMT[to];
  const sign = (bits >> BigInt(s.e + s.m)) & 1n;
  const dsign = sign << BigInt(d.e + d.m);
  const sExp = (1n << BigInt(s.e)) - 1n;
  const ef = (bits >> BigInt(s.m)) & sExp;
  const frac = bits & ((1n << BigInt(s.m)) - 1n);
  const dExpAll = ((1n << BigInt(d.e)) - 1n) << BigInt(d.m);
  if (ef === sExp) {
    if (frac === 0n) return dsign | dExpAll;
    if (d.m >= s.m) return dsign | dExpAll | (frac << BigInt(d.m - s.m));
    return dsign | dExpAll | (1n << BigInt(d.m - 1)) | (frac >> BigInt(s.m - d.m));
  }
  const a = Math.abs(valueOf(from, bits));
  if (a === 0) return dsign;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const bias = 2 ** (d.e - 1) - 1;
  const emin = 1 - bias;
  const eq = Math.max(e, emin);
  const q = a / 2 ** (eq - d.m); // exact: a power-of-two scaling
  const fl = Math.floor(q);
  const rem = q - fl;
  const r = mode === 'RTZ' ? fl : rem > 0.5 || (rem === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  const field = BigInt(eq - emin) * (1n << BigInt(d.m)) + BigInt(r);
  const maxFinite = dExpAll - 1n;
  if (field > maxFinite) return dsign | (mode === 'RNE' ? dExpAll : maxFinite);
  return dsign | field;
}

const PAIRS: Array<[FDType, FDType]> = [];
for (const a of FLOATS) for (const b of FLOATS) if (a !== b) PAIRS.push([a, b]);
const widening = (a: FDType, b: FDType) => FMT[b].e >= FMT[a].e && FMT[b].m >= FMT[a].m;

function sourceBits(d: FDType): bigint[] {
  if (d === 'F16' || d === 'BF16') return Array.from({ length: 65536 }, (_, i) => BigInt(i)); // exhaustive
  return hostile(d, d === 'F64' ? 7 : 11);
}

describe('castTensorSync: every pair, both roundings, hostile values', () => {
  for (const [from, to] of PAIRS) {
    it(`${from} -> ${to} matches the oracle bit for bit`, () => {
      const src = sourceBits(from);
      const t = fromBits(from, src);
      for (const mode of ['RNE', 'RTZ'] as const) {
        const got = castTensorSync(t, to, mode);
        const want = fromBits(
          to,
          src.map((b) => oracle(from, b, to, mode)),
        );
        if (!sameBytes(got.data, want.data)) {
          const bad = src.findIndex((_, i) => bitsAt(to, got.data, i) !== bitsAt(to, want.data, i));
          throw new Error(
            `${from}->${to} ${mode}: element ${bad} (0x${src[bad].toString(16)}) gave 0x${bitsAt(to, got.data, bad).toString(16)}, want 0x${bitsAt(to, want.data, bad).toString(16)}`,
          );
        }
      }
    });
  }

  it('widening is exact: a round trip through the wider type restores every bit pattern but signalling NaNs', () => {
    for (const [from, to] of PAIRS.filter(([a, b]) => widening(a, b))) {
      const src = sourceBits(from);
      const t = fromBits(from, src);
      const wide = castTensorSync(t, to);
      const back = castTensorSync(wide, from);
      const { e, m } = FMT[from];
      const expAll = ((1n << BigInt(e)) - 1n) << BigInt(m);
      const quiet = 1n << BigInt(m - 1);
      // Widening keeps a signalling NaN signalling; narrowing it back quiets it (as hardware does).
      const want = src.map((b) =>
        (b & expAll) === expAll && (b & ((1n << BigInt(m)) - 1n)) !== 0n && !(b & quiet) ? b | quiet : b,
      );
      expect(sameBytes(back.data, fromBits(from, want).data), `${from} -> ${to} -> ${from}`).toBe(true);
    }
  });

  it('the AVX2 kernels write the same bytes as the portable ones (CORAL_NO_AVX2=1)', () => {
    const jobs: Array<{ from: FDType; to: FDType; rounding: 'RNE' | 'RTZ'; data: string }> = [];
    const mine: Buffer[] = [];
    for (const [from, to] of PAIRS)
      for (const rounding of ['RNE', 'RTZ'] as const) {
        const t = fromBits(from, sourceBits(from));
        jobs.push({ from, to, rounding, data: Buffer.from(t.data).toString('base64') });
        mine.push(Buffer.from(castTensorSync(t, to, rounding).data));
      }
    const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'cast-child.ts')], {
      input: JSON.stringify(jobs),
      cwd: path.resolve(__dirname, '..', '..'),
      env: { ...process.env, CORAL_NO_AVX2: '1' },
      encoding: 'utf8',
      maxBuffer: 1 << 30,
    });
    const theirs = (JSON.parse(out) as string[]).map((s) => Buffer.from(s, 'base64'));
    theirs.forEach((b, i) =>
      expect(Buffer.compare(b, mine[i]), `${jobs[i].from}->${jobs[i].to} ${jobs[i].rounding}`).toBe(0),
    );
  });

  it('castTensor runs off the event loop for large tensors and gives the same bytes', async () => {
    const r = xorshift(12);
    const n = 3 << 20; // 12 MiB of F32: above ASYNC_THRESHOLD_BYTES
    const t: Tensor = { dtype: 'F32', shape: [n], data: new Uint8Array(new Uint32Array(n).map(() => r()).buffer) };
    for (const to of ['BF16', 'F16', 'F64'] as const) {
      const a = await castTensor(t, to, 'RTZ');
      expect(sameBytes(a.data, castTensorSync(t, to, 'RTZ').data), to).toBe(true);
    }
    await expect(castTensor(t, 'F32')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('rejects unsupported dtypes and roundings', () => {
    const t = fromBits('F32', [0n]);
    expect(() => castTensorSync(t, 'I32')).toThrow(InvalidArgumentError);
    expect(() => castTensorSync(t, 'F32')).toThrow(InvalidArgumentError);
    expect(() => castTensorSync(t, 'BF16', 'UP' as 'RNE')).toThrow(InvalidArgumentError);
  });
});

async function roundTrip(t: Tensor, base: Tensor, opts: EncodeOptions = {}) {
  const obj = await encode(t, { ...opts, base: { tensor: base } });
  const back = await decode(obj.bytes, { tensor: base });
  expect(sameBytes(back.data, t.data)).toBe(true);
  expect(obj.id).toBe(await contentId(t));
  return { obj, header: inspectObject(obj.bytes) };
}

describe('CAST codec', () => {
  for (const [from, to] of PAIRS) {
    it(`${from} -> ${to}: a cast is stored as CAST with no residual and decodes bit-exactly`, async () => {
      const src = hostile(from, 3);
      const base = { ...fromBits(from, src), shape: [src.length / 2, 2] };
      for (const mode of widening(from, to) ? (['RNE'] as const) : (['RNE', 'RTZ'] as const)) {
        const t = castTensorSync(base, to, mode);
        const { obj, header } = await roundTrip(t, base);
        expect(obj.codec).toBe('CAST');
        expect(header.baseId).toBe(await contentId(base));
        expect(header.params).toMatchObject({ baseDtype: from, rounding: mode, residual: 0 });
        expect(obj.bytes.byteLength).toBeLessThan(t.data.byteLength / 8);
      }
    });
  }

  it('a canonical-NaN encoder (torch) and a few edited elements become an exact residual', async () => {
    const src = hostile('F32', 5);
    const base = fromBits('F32', src);
    const t = castTensorSync(base, 'BF16');
    const v = new DataView(t.data.buffer, t.data.byteOffset);
    let nans = 0;
    for (let i = 0; i < src.length; i++) {
      const h = v.getUint16(i * 2, true);
      if ((h & 0x7f80) === 0x7f80 && h & 0x7f) {
        v.setUint16(i * 2, 0x7fc0, true); // c10::BFloat16: every NaN becomes +qNaN 0x7fc0
        if (h !== 0x7fc0) nans++;
      }
    }
    for (const i of [10, 500, 4000]) v.setUint16(i * 2, v.getUint16(i * 2, true) ^ 0x0101, true);
    const { obj, header } = await roundTrip(t, base);
    expect(obj.codec).toBe('CAST');
    expect(header.params.residual).toBe(nans + 3);
  });

  it('a cast then a fine-tune still gains: smaller than standalone, same as a delta against the cast', async () => {
    const r = xorshift(9);
    const n = 1 << 16;
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = (r() / 2 ** 32 - 0.5) * 0.1;
    const base: Tensor = { dtype: 'F32', shape: [256, 256], data: new Uint8Array(f.buffer) };
    const cast = castTensorSync(base, 'BF16');
    const tuned = new Uint8Array(cast.data);
    const v = new DataView(tuned.buffer);
    for (let i = 0; i < n; i += 3) v.setUint16(i * 2, v.getUint16(i * 2, true) + ((r() & 3) - 1), true);
    const t: Tensor = { dtype: 'BF16', shape: [256, 256], data: tuned };
    const { obj, header } = await roundTrip(t, base);
    expect(obj.codec).toBe('CAST');
    expect(header.params.residual).toBeGreaterThan(n / 5);
    const alone = await encode(t);
    const vsCast = await encode(t, { base: { tensor: cast } });
    expect(obj.bytes.byteLength).toBeLessThan(alone.bytes.byteLength * 0.7);
    expect(obj.bytes.byteLength).toBeLessThanOrEqual(vsCast.bytes.byteLength + 64);
  });

  it('falls back to a standalone object when the base does not predict the tensor', async () => {
    const r = xorshift(4);
    const n = 4096;
    const a = new Float32Array(n).map(() => r() / 2 ** 32 - 0.5);
    const b = new Float32Array(n).map(() => r() / 2 ** 32 - 0.5);
    const t = castTensorSync({ dtype: 'F32', shape: [n], data: new Uint8Array(a.buffer) }, 'F16');
    const obj = await encode(t, { base: { tensor: { dtype: 'F32', shape: [n], data: new Uint8Array(b.buffer) } } });
    expect(['PLANES', 'ZSTD', 'RAW']).toContain(obj.codec);
    expect(inspectObject(obj.bytes).baseId).toBeNull();
  });

  it('a wrong base, a missing base and damaged bytes are reported, never wrong data', async () => {
    const base = fromBits('F32', hostile('F32', 8));
    const t = castTensorSync(base, 'F16');
    const obj = await encode(t, { base: { tensor: base } });
    expect(obj.codec).toBe('CAST');
    const other = fromBits('F32', hostile('F32', 9));
    await expect(decode(obj.bytes, { tensor: other })).rejects.toBeInstanceOf(BaseMismatchError);
    await expect(decode(obj.bytes)).rejects.toBeInstanceOf(BaseMismatchError);
    await expect(decode(obj.bytes, { tensor: t })).rejects.toBeInstanceOf(BaseMismatchError); // wrong size
    const cut = obj.bytes.subarray(0, obj.bytes.byteLength - 3);
    await expect(decode(cut, { tensor: base })).rejects.toBeInstanceOf(CorruptObjectError);
    // A bad rounding code in the params (the header checksum is recomputed by nobody: corrupt).
    const bad = Buffer.from(obj.bytes);
    bad[inspectObject(obj.bytes).headerSize - 12 - 12 + 1] ^= 0x7f;
    expect(() => inspectObject(bad)).toThrow(CorruptObjectError);
  });

  it('explicit codecs check the base', async () => {
    const base = fromBits('F32', hostile('F32', 8));
    const t = castTensorSync(base, 'BF16');
    await expect(encode(t, { codec: 'DELTA_XOR', base: { tensor: base } })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(encode(t, { codec: 'CAST' })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(encode(base, { codec: 'CAST', base: { tensor: base } })).rejects.toBeInstanceOf(InvalidArgumentError);
    const i32 = { dtype: 'I32' as DType, shape: base.shape, data: base.data };
    await expect(encode(i32, { base: { tensor: base } })).rejects.toBeInstanceOf(InvalidArgumentError);
    const forced = await encode(t, { codec: 'CAST', base: { tensor: base } });
    expect(forced.codec).toBe('CAST');
    expect(baseRelation(t, base)).toBe('cast');
    expect(baseRelation(i32, base)).toBeNull();
  });
});

// ---- ROWS ----------------------------------------------------------------------------------

function gaussRows(rows: number, cols: number, seed: number): Float32Array {
  const r = xorshift(seed);
  const a = new Float32Array(rows * cols);
  for (let i = 0; i < a.length; i++) {
    const u = (r() + 1) / 4294967297;
    a[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos((2 * Math.PI * r()) / 4294967296) * 0.02;
  }
  return a;
}
const f32t = (a: Float32Array, rows: number): Tensor => ({
  dtype: 'F32',
  shape: [rows, a.length / rows],
  data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
});

describe('ROWS codec', () => {
  const V = 3200;
  const D = 256;
  const emb = gaussRows(V, D, 1);
  const base = f32t(emb, V);

  it('an embedding grown by 16 rows costs no more than the new rows plus 1%', async () => {
    const grown = new Float32Array((V + 16) * D);
    grown.set(emb);
    grown.set(gaussRows(16, D, 2), V * D);
    const t = f32t(grown, V + 16);
    const { obj, header } = await roundTrip(t, base);
    expect(obj.codec).toBe('ROWS');
    expect(header.params).toMatchObject({ baseRows: V, rowStart: 0, baseRowStart: 0, sharedRows: V, residual: 0 });
    const newRows = 16 * D * 4;
    expect(obj.bytes.byteLength).toBeLessThanOrEqual(newRows + 0.01 * t.data.byteLength);
  });

  it('rows removed at the start and added at the end, with the shared rows fine-tuned', async () => {
    const t0 = new Float32Array((V - 5 + 7) * D);
    t0.set(emb.subarray(5 * D));
    t0.set(gaussRows(7, D, 3), (V - 5) * D);
    const r = xorshift(5);
    for (let i = 0; i < (V - 5) * D; i += 2) t0[i] += (r() / 2 ** 32 - 0.5) * 1e-4;
    const t = f32t(t0, V + 2);
    const { obj, header } = await roundTrip(t, base);
    expect(obj.codec).toBe('ROWS');
    expect(header.params).toMatchObject({ baseRows: V, rowStart: 0, baseRowStart: 5, sharedRows: V - 5 });
    expect(Number(header.params.residual)).toBeGreaterThan(0);
    expect(obj.bytes.byteLength).toBeLessThan((await encode(t)).bytes.byteLength * 0.8);
  });

  it('rows added at the start, and rows removed at the end (a shrunk vocabulary)', async () => {
    const pre = new Float32Array((V + 3) * D);
    pre.set(gaussRows(3, D, 6));
    pre.set(emb, 3 * D);
    let { obj, header } = await roundTrip(f32t(pre, V + 3), base);
    expect(obj.codec).toBe('ROWS');
    expect(header.params).toMatchObject({ rowStart: 3, baseRowStart: 0, sharedRows: V, residual: 0 });
    ({ obj, header } = await roundTrip(f32t(emb.slice(0, (V - 100) * D), V - 100), base));
    expect(obj.codec).toBe('ROWS');
    expect(header.params).toMatchObject({ sharedRows: V - 100, residual: 0 });
    expect(obj.bytes.byteLength).toBeLessThan(2048);
  });

  it('checks its base and its row ranges', async () => {
    const grown = new Float32Array((V + 1) * D);
    grown.set(emb);
    const t = f32t(grown, V + 1);
    const obj = await encode(t, { base: { tensor: base } });
    expect(obj.codec).toBe('ROWS');
    await expect(decode(obj.bytes, { tensor: f32t(emb.slice(0, (V - 1) * D), V - 1) })).rejects.toBeInstanceOf(
      BaseMismatchError,
    );
    const other = f32t(gaussRows(V, D, 99), V);
    await expect(decode(obj.bytes, { tensor: other })).rejects.toBeInstanceOf(BaseMismatchError);
    // A base whose trailing dimensions differ is no ROWS base.
    await expect(encode(t, { base: { tensor: f32t(emb, V * 2) } })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(baseRelation(t, base)).toBe('rows');
  });
});
