// Seeded data for the codec tests: deterministic PRNG, trained-like floats,
// and every special bit pattern of each float dtype.
import { rng } from '../../bench/lib/weights';
import { DTYPES, type DType } from '../../lib/tensor/dtype';
import type { Tensor } from '../../lib/tensor/tensor';

// The seeded generator is the benches' (one definition for generated data).
export { rng };

export function gaussian(n: number, scale: number, seed: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) * scale;
  return a;
}

export function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}

/** Special bit patterns (little-endian element bytes) per float dtype. */
export function specials(dtype: DType): Uint8Array[] {
  const le = (v: bigint, size: number) => {
    const b = new Uint8Array(size);
    for (let i = 0; i < size; i++) b[i] = Number((v >> BigInt(8 * i)) & 0xffn);
    return b;
  };
  const pats: Record<string, bigint[]> = {
    F64: [
      0x7ff8000000000000n,
      0x7ff0000000000001n,
      0xfff8dead0000beefn,
      0x7ff4000000000123n,
      0x8000000000000000n,
      0n,
      0x7ff0000000000000n,
      0xfff0000000000000n,
      1n,
      0x000fffffffffffffn,
      0x7fefffffffffffffn,
      0xffefffffffffffffn,
      0x0010000000000000n,
    ],
    F32: [
      0x7fc00000n,
      0x7f800001n,
      0xffc0deadn,
      0x7fa00123n,
      0x80000000n,
      0n,
      0x7f800000n,
      0xff800000n,
      1n,
      0x007fffffn,
      0x7f7fffffn,
      0xff7fffffn,
      0x00800000n,
    ],
    F16: [0x7e00n, 0x7c01n, 0xfe55n, 0x7d23n, 0x8000n, 0n, 0x7c00n, 0xfc00n, 1n, 0x03ffn, 0x7bffn, 0xfbffn, 0x0400n],
    BF16: [0x7fc0n, 0x7f81n, 0xffd5n, 0x7fa3n, 0x8000n, 0n, 0x7f80n, 0xff80n, 1n, 0x007fn, 0x7f7fn, 0xff7fn, 0x0080n],
    F8_E4M3: [0x7fn, 0xffn, 0x80n, 0n, 1n, 0x07n, 0x7en, 0xfen, 0x08n],
    F8_E5M2: [0x7en, 0x7dn, 0xffn, 0x80n, 0n, 0x7cn, 0xfcn, 1n, 0x03n, 0x7bn, 0xfbn, 0x04n],
  };
  const size = DTYPES[dtype].size;
  return (pats[dtype] ?? [0n, 1n, (1n << BigInt(8 * size)) - 1n, 1n << BigInt(8 * size - 1)]).map((v) => le(v, size));
}

/** n elements of dtype: trained-like floats (or random ints) with every special value sprinkled in. */
export function sample(dtype: DType, n: number, seed: number): Uint8Array {
  const size = DTYPES[dtype].size;
  const out = new Uint8Array(n * size);
  if (dtype === 'F32' || dtype === 'F64' || dtype === 'F16' || dtype === 'BF16') {
    const g = gaussian(n, 0.02, seed);
    for (let i = 0; i < n; i++) {
      const v = g[i];
      if (dtype === 'F32') new DataView(out.buffer).setFloat32(i * 4, v, true);
      else if (dtype === 'F64') new DataView(out.buffer).setFloat64(i * 8, v * 1.0000001, true);
      else if (dtype === 'BF16') new DataView(out.buffer).setUint16(i * 2, f32bits(v) >>> 16, true);
      else new DataView(out.buffer).setUint16(i * 2, toHalf(v), true);
    }
  } else {
    out.set(randomBytes(n * size, seed));
  }
  const sp = specials(dtype);
  const r = rng(seed ^ 0x5eed);
  for (let k = 0; k < Math.min(n, 3 * sp.length); k++) out.set(sp[k % sp.length], ((r() * n) | 0) * size);
  if (n >= sp.length) for (let k = 0; k < sp.length; k++) out.set(sp[k], k * size);
  return out;
}

export function f32bits(v: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setFloat32(0, v, true);
  return b.getUint32(0, true);
}

function toHalf(v: number): number {
  const x = f32bits(v);
  const s = (x >>> 16) & 0x8000,
    e = ((x >>> 23) & 0xff) - 127 + 15,
    m = x & 0x7fffff;
  if (e <= 0) return s;
  if (e >= 31) return s | 0x7c00;
  return s | (e << 10) | (m >>> 13);
}

export function t(dtype: DType, shape: number[], data: Uint8Array): Tensor {
  return { dtype, shape, data };
}

/** Float values of a F32/F64/F16/BF16 tensor as doubles. */
export function values(x: Tensor): Float64Array {
  const n = x.data.byteLength / DTYPES[x.dtype].size;
  const dv = new DataView(x.data.buffer, x.data.byteOffset, x.data.byteLength);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (x.dtype === 'F32') out[i] = dv.getFloat32(i * 4, true);
    else if (x.dtype === 'F64') out[i] = dv.getFloat64(i * 8, true);
    else if (x.dtype === 'BF16')
      out[i] = new Float32Array(new Uint32Array([dv.getUint16(i * 2, true) << 16]).buffer)[0];
    else throw new Error('values(): unsupported dtype');
  }
  return out;
}

/** Whether two byte views hold the same bytes (bit for bit: NaN payloads and -0.0 included). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}
