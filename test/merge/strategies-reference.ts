/**
 * Independent reference implementations for the merge tests: plain JS in f64
 * (or f32 via Math.fround), value-level rounding into F16/BF16/F8 (no bit
 * tricks shared with the native code), and DARE's PRNG in BigInt.
 */
import { tensor, type Tensor } from '../../lib/tensor/tensor';

export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

interface Fmt {
  M: number;
  emin: number;
  max: number;
  overflow: 'inf' | 'nan';
  E: number;
}
export const FORMATS: Record<'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2', Fmt> = {
  F16: { E: 5, M: 10, emin: -14, max: 65504, overflow: 'inf' },
  BF16: { E: 8, M: 7, emin: -126, max: (2 - 2 ** -7) * 2 ** 127, overflow: 'inf' },
  F8_E4M3: { E: 4, M: 3, emin: -6, max: 448, overflow: 'nan' },
  F8_E5M2: { E: 5, M: 2, emin: -14, max: 57344, overflow: 'inf' },
};

/** Round a number to the nearest value of a small float format, ties to even (value level). */
export function roundTo(fmt: Fmt, x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (!Number.isFinite(x)) return fmt.overflow === 'inf' ? x : NaN;
  if (x === 0) return x;
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const q = 2 ** (Math.max(e, fmt.emin) - fmt.M);
  const s = a / q;
  let r = Math.floor(s);
  const f = s - r;
  if (f > 0.5 || (f === 0.5 && r % 2 === 1)) r += 1;
  const v = r * q;
  if (v > fmt.max) return fmt.overflow === 'inf' ? sign * Infinity : NaN;
  return v === 0 ? sign * 0 : sign * v;
}

/** Value -> bits of a small float format (the value must already be representable). */
export function encodeBits(fmt: Fmt, v: number): number {
  const signBit = 1 << (fmt.E + fmt.M);
  if (Number.isNaN(v)) return fmt.overflow === 'nan' ? signBit - 1 : (((1 << fmt.E) - 1) << fmt.M) | (1 << (fmt.M - 1));
  const s = v < 0 || Object.is(v, -0) ? signBit : 0;
  const a = Math.abs(v);
  if (a === Infinity) return s | (((1 << fmt.E) - 1) << fmt.M);
  if (a === 0) return s;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const bias = (1 << (fmt.E - 1)) - 1;
  if (e < fmt.emin) return s | (a / 2 ** (fmt.emin - fmt.M));
  return s | ((e + bias) << fmt.M) | (a / 2 ** (e - fmt.M) - (1 << fmt.M));
}

/** Bits -> value of a small float format (arithmetic definition). */
export function decodeBits(fmt: Fmt, b: number): number {
  const sign = b & (1 << (fmt.E + fmt.M)) ? -1 : 1;
  const e = (b >> fmt.M) & ((1 << fmt.E) - 1);
  const f = b & ((1 << fmt.M) - 1);
  const bias = (1 << (fmt.E - 1)) - 1;
  if (fmt.overflow === 'inf' && e === (1 << fmt.E) - 1) return f ? NaN : sign * Infinity;
  if (fmt.overflow === 'nan' && e === (1 << fmt.E) - 1 && f === (1 << fmt.M) - 1) return NaN;
  if (e === 0) return sign * f * 2 ** (fmt.emin - fmt.M);
  return sign * (1 + f / 2 ** fmt.M) * 2 ** (e - bias);
}

export type FloatDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2';

/** Element values of a float tensor. */
export function values(t: Tensor): number[] {
  const d = t.data;
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    switch (t.dtype) {
      case 'F64':
        out[i] = dv.getFloat64(i * 8, true);
        break;
      case 'F32':
        out[i] = dv.getFloat32(i * 4, true);
        break;
      case 'F16':
      case 'BF16':
        out[i] = decodeBits(FORMATS[t.dtype], dv.getUint16(i * 2, true));
        break;
      case 'F8_E4M3':
      case 'F8_E5M2':
        out[i] = decodeBits(FORMATS[t.dtype], dv.getUint8(i));
        break;
      case 'I32':
        out[i] = dv.getInt32(i * 4, true);
        break;
      case 'U8':
        out[i] = dv.getUint8(i);
        break;
      case 'I8':
        out[i] = dv.getInt8(i);
        break;
      case 'I64':
        out[i] = Number(dv.getBigInt64(i * 8, true));
        break;
      default:
        throw new Error(`values(): ${t.dtype}`);
    }
  }
  return out;
}

/** Rounds f64 values once into a float dtype and builds the tensor. */
export function fromValues(dtype: FloatDType, vals: readonly number[], shape: number[] = [vals.length]): Tensor {
  const size = { F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1 }[dtype];
  const buf = new Uint8Array(vals.length * size);
  const dv = new DataView(buf.buffer);
  vals.forEach((v, i) => {
    switch (dtype) {
      case 'F64':
        dv.setFloat64(i * 8, v, true);
        break;
      case 'F32':
        dv.setFloat32(i * 4, v, true);
        break;
      case 'F16':
      case 'BF16':
        dv.setUint16(i * 2, encodeBits(FORMATS[dtype], roundTo(FORMATS[dtype], v)), true);
        break;
      default:
        dv.setUint8(i, encodeBits(FORMATS[dtype], roundTo(FORMATS[dtype], v)));
        break;
    }
  });
  return tensor(dtype, shape, buf);
}

/** The reference rounding of one f64 value into a float dtype (as a value). */
export function roundInto(dtype: FloatDType, v: number): number {
  if (dtype === 'F64') return v;
  if (dtype === 'F32') return Math.fround(v);
  return roundTo(FORMATS[dtype], v);
}

/** Random values that are exactly representable in `dtype`, spread over a few binades, with some zeros. */
export function randomValues(dtype: FloatDType, n: number, seed: number, scale = 1): number[] {
  const r = rng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const u = r();
    let v: number;
    if (u < 0.02) v = 0;
    else if (u < 0.03) v = -0;
    else v = (r() * 2 - 1) * scale * 2 ** Math.floor(r() * 8 - 4);
    out.push(roundInto(dtype, v));
  }
  return out;
}

// ---- strategies, straight from the definitions ----------------------------------------------

export type Arith = (x: number) => number;
export const F64: Arith = (x) => x;
export const F32: Arith = Math.fround;

export function refLinear(models: number[][], w: number[], op: Arith = F64): number[] {
  return models[0].map((_, j) => {
    let acc: number | undefined;
    models.forEach((m, i) => {
      if (w[i] === 0) return;
      const term = op(op(w[i]) * m[j]);
      acc = acc === undefined ? term : op(acc + term);
    });
    return acc ?? 0;
  });
}

function finish(base: number[], upd: number[], lambda: number, op: Arith): number[] {
  return base.map((b, j) => {
    const d = op(op(lambda) * upd[j]);
    return d === 0 ? b : op(b + d);
  });
}

export function refTask(base: number[], models: number[][], lambda: number, op: Arith = F64): number[] {
  const upd = base.map((b, j) => models.reduce((s, m) => op(s + op(m[j] - b)), 0));
  return finish(base, upd, lambda, op);
}

export function keepCount(n: number, density: number): number {
  if (n === 0) return 0;
  if (density >= 1) return n;
  let k = 0;
  for (let j = 1; j <= n; j++) if (j / n <= density) k = j;
  return Math.max(k, 1);
}

/** TIES trim by sorting: magnitude descending (NaN first), index ascending. */
export function refTrim(tau: number[], density: number): number[] {
  const k = keepCount(tau.length, density);
  const mag = (x: number) => (Number.isNaN(x) ? Infinity * 2 : Math.abs(x));
  const idx = tau.map((_, i) => i);
  idx.sort((a, b) => {
    const ma = mag(tau[a]),
      mb = mag(tau[b]);
    const na = Number.isNaN(tau[a]),
      nb = Number.isNaN(tau[b]);
    if (na !== nb) return na ? -1 : 1;
    if (ma !== mb) return mb - ma;
    return a - b;
  });
  const keep = new Set(idx.slice(0, k));
  return tau.map((t, i) => (keep.has(i) ? t : 0));
}

function elect(taus: number[][], j: number, op: Arith): number {
  let s = 0;
  for (const t of taus) s = op(s + t[j]);
  if (Number.isNaN(s)) return NaN;
  if (s === 0) return 0;
  let sum = 0,
    c = 0;
  for (const t of taus) {
    const v = t[j];
    if (s > 0 ? v > 0 : v < 0) {
      sum = op(sum + v);
      c++;
    }
  }
  return op(sum / c);
}

export function refTies(
  base: number[],
  models: number[][],
  density: number,
  lambda: number,
  op: Arith = F64,
): number[] {
  const taus = models.map((m) =>
    refTrim(
      m.map((x, j) => op(x - base[j])),
      density,
    ),
  );
  return finish(
    base,
    base.map((_, j) => elect(taus, j, op)),
    lambda,
    op,
  );
}

const MASK = (1n << 64n) - 1n;
const GAMMA = 0x9e3779b97f4a7c15n;
function mix64(z: bigint): bigint {
  z &= MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return z ^ (z >> 31n);
}
/** DARE's draw: element `index` of the SplitMix64 stream seeded by the (model+1)-th output of SplitMix64(seed). */
export function dareU(seed: bigint, model: number, index: number): number {
  const k = mix64(seed + GAMMA * BigInt(model + 1));
  return Number(mix64(k + GAMMA * BigInt(index + 1)) >> 11n) * 2 ** -53;
}

export function refDare(
  base: number[],
  models: number[][],
  drop: number,
  seed: bigint,
  lambda: number,
  ties = false,
  op: Arith = F64,
): number[] {
  const q = op(1 - drop);
  const taus = models.map((m, i) =>
    m.map((x, j) => {
      const t = op(x - base[j]);
      if (drop === 0) return t;
      return dareU(seed, i, j) < drop ? 0 : op(t / q);
    }),
  );
  const upd = ties
    ? base.map((_, j) => elect(taus, j, op))
    : base.map((_, j) => taus.reduce((s, t) => op(s + t[j]), 0));
  return finish(base, upd, lambda, op);
}

/** Expect-friendly comparison: same value, -0 distinct from +0, NaN equal to NaN. Returns first mismatch. */
export function firstMismatch(got: number[], want: number[]): string | null {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < got.length; i++) {
    const g = got[i],
      w = want[i];
    if (Number.isNaN(g) && Number.isNaN(w)) continue;
    if (!Object.is(g, w))
      return `element ${i}: got ${Object.is(g, -0) ? '-0' : g}, want ${Object.is(w, -0) ? '-0' : w}`;
  }
  return null;
}
