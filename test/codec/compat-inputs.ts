/**
 * Deterministic inputs of the backward-compatibility fixtures
 * (fixtures/v1-objects.json): objects written by an earlier encoder must keep
 * decoding bit-exactly with every later build.
 */
export interface CompatInput {
  name: string;
  dtype: number; // dtype code (F32 = 1, BF16 = 3, I32 = 7)
  shape: number[];
  codec: number; // codec id (255 = automatic choice)
  data: Buffer;
  base: Buffer | null;
}

function xorshift(seed: number): () => number {
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

/** Gaussian-ish weights (sum of 4 uniforms), scaled like a 1/sqrt(fan_in) layer. */
function weights(n: number, seed: number): Float32Array {
  const r = xorshift(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() + r() + r() + r() - 2) * 0.05;
  return a;
}
function tune(w: Float32Array, rel: number, seed: number): Float32Array {
  const r = xorshift(seed);
  return w.map((v) => v + (r() - 0.5) * rel * 0.05);
}
function sparse(w: Float32Array, every: number, seed: number): Float32Array {
  const r = xorshift(seed);
  return w.map((v, i) => (i % every === 3 ? v + (r() - 0.5) * 0.01 : v));
}
const f32 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
function bf16(a: Float32Array): Buffer {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const o = Buffer.alloc(a.length * 2);
  for (let i = 0; i < a.length; i++) o.writeUInt16LE(((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) & 0xffff, 2 * i);
  return o;
}

export function fixtureInputs(): CompatInput[] {
  const n = 1500,
    shape = [30, 50];
  const w = weights(n, 7),
    ft = tune(w, 1e-2, 8),
    sp = sparse(w, 97, 9);
  const special = new Float32Array([0, -0, Infinity, -Infinity, NaN, 1e-45, -1e-40, 3.4e38]);
  const sw = Float32Array.from(w);
  sw.set(special, 100);
  const ints = Buffer.from(Int32Array.from(w, (v) => Math.round(v * 1e4)).buffer);
  return [
    { name: 'f32 ZSTD', dtype: 1, shape, codec: 1, data: f32(w), base: null },
    { name: 'f32 PLANES specials', dtype: 1, shape, codec: 2, data: f32(sw), base: null },
    { name: 'bf16 PLANES', dtype: 3, shape, codec: 2, data: bf16(w), base: null },
    { name: 'i32 PLANES', dtype: 7, shape, codec: 2, data: ints, base: null },
    { name: 'f32 DELTA_XOR', dtype: 1, shape, codec: 3, data: f32(ft), base: f32(w) },
    { name: 'f32 DELTA_ORDERED', dtype: 1, shape, codec: 4, data: f32(ft), base: f32(w) },
    { name: 'bf16 DELTA_EXPMANT', dtype: 3, shape, codec: 5, data: bf16(ft), base: bf16(w) },
    { name: 'f32 SPARSE_UPDATE', dtype: 1, shape, codec: 6, data: f32(sp), base: f32(w) },
    { name: 'bf16 auto delta', dtype: 3, shape, codec: 255, data: bf16(ft), base: bf16(w) },
    { name: 'f32 auto', dtype: 1, shape, codec: 255, data: f32(w), base: null },
  ];
}
