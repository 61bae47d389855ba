// decodePair: a delta and its base object decoded in one pass, chunk by chunk, the base never
// materialised whole (kernels DecodePair; checkout's streaming decode in lib/odb/objects.ts). Its
// bytes must equal the unfused decode (the base decoded, then the delta against it) bit for bit:
// NaN payloads, -0.0, infinities and subnormals included, for every codec pair it takes, at a chunk
// size that does not divide the tensor (a short last chunk), and with a base that is a delta itself.
import { describe, expect, it } from 'vitest';
import { decodePair, decodeSync, encodeSync, inspectObject, pairDecodable, type CodecName } from '../../lib/codec';
import { BaseMismatchError, InvalidArgumentError, UnsupportedError } from '../../lib/errors';
import { contentIdSync } from '../../lib/hash';
import { DTYPES, type DType } from '../../lib/tensor/dtype';
import { rng, sameBytes, sample, specials, t } from './helpers';

const N = 10_000;
const CHUNK = 4096; // 3 chunks, the last one short

/** A tuned version of `a`: low bits moved, some elements swapped for special values and back. */
function tuned(dtype: DType, a: Uint8Array, seed: number): Uint8Array {
  const size = DTYPES[dtype].size;
  const b = new Uint8Array(a);
  const r = rng(seed);
  const sp = specials(dtype);
  for (let i = 0; i < N; i++) {
    const x = r();
    if (x < 0.3) b[i * size] ^= 1 + ((r() * 7) | 0);
    else if (x < 0.32) b.set(sp[(r() * sp.length) | 0], i * size);
  }
  return b;
}

interface Link {
  bytes: Uint8Array;
  tensor: ReturnType<typeof t>;
  id: string;
}

function link(dtype: DType, data: Uint8Array, codec: CodecName, base?: Link, chunkElems = CHUNK): Link {
  const tensor = t(dtype, [N], data);
  const id = contentIdSync(tensor);
  const obj = encodeSync(tensor, {
    codec,
    chunkElems,
    ...(base ? { base: { tensor: base.tensor, id: base.id } } : {}),
  });
  expect(obj.id).toBe(id);
  expect(obj.codec).toBe(codec);
  return { bytes: obj.bytes, tensor, id };
}

/** The unfused decode of `upper` over `lower` (whose own base, if any, is `lowerBase`). */
function unfused(lower: Link, lowerBase: Link | null, upper: Link): Uint8Array {
  const lt = decodeSync(lower.bytes, lowerBase ? { tensor: lowerBase.tensor, id: lowerBase.id } : null);
  return decodeSync(upper.bytes, { tensor: lt, id: lower.id }).data;
}

describe('decodePair', () => {
  const dtypes: DType[] = ['F32', 'F64', 'F16', 'BF16'];
  const lowers: CodecName[] = ['PLANES', 'ZSTD'];
  const uppers: CodecName[] = ['DELTA_XOR', 'DELTA_ORDERED', 'DELTA_EXPMANT', 'SPARSE_UPDATE'];
  const cases = dtypes.flatMap((d) => lowers.flatMap((lo) => uppers.map((up) => [d, lo, up] as const)));

  it.each(cases)('%s %s + %s: the bytes of the unfused decode, specials included', async (dtype, lo, up) => {
    const a = sample(dtype, N, 41);
    const b = tuned(dtype, a, 42);
    const lower = link(dtype, a, lo);
    const upper = link(dtype, b, up, lower);
    expect(pairDecodable(inspectObject(lower.bytes), inspectObject(upper.bytes))).toBe(true);
    const want = unfused(lower, null, upper);
    expect(sameBytes(want, b)).toBe(true);
    const out = new Uint8Array(b.byteLength);
    const got = await decodePair(lower.bytes, null, upper.bytes, out);
    expect(got.data).toBe(out);
    expect(got.dtype).toBe(dtype);
    expect(got.shape).toEqual([N]);
    expect(sameBytes(out, want)).toBe(true);
    // One thread or several: the same bytes.
    const one = new Uint8Array(b.byteLength);
    await decodePair(lower.bytes, null, upper.bytes, one, { threads: 1 });
    expect(sameBytes(one, want)).toBe(true);
  });

  it.each(dtypes)('%s: a lower link that is a delta itself (three links, the bottom one whole)', async (dtype) => {
    const a = sample(dtype, N, 51);
    const b = tuned(dtype, a, 52);
    const c = tuned(dtype, b, 53);
    const bottom = link(dtype, a, 'PLANES');
    const lower = link(dtype, b, 'DELTA_XOR', bottom);
    const upper = link(dtype, c, 'DELTA_EXPMANT', lower);
    const want = unfused(lower, bottom, upper);
    expect(sameBytes(want, c)).toBe(true);
    const out = new Uint8Array(c.byteLength);
    await decodePair(lower.bytes, bottom.tensor, upper.bytes, out);
    expect(sameBytes(out, want)).toBe(true);
  });

  it('refuses pairs it cannot decode chunk by chunk, a missing lower base and a wrong output size', async () => {
    const a = sample('F32', N, 61);
    const b = tuned('F32', a, 62);
    const lower = link('F32', a, 'PLANES');
    const out = new Uint8Array(b.byteLength);
    // Another chunk size.
    const other = link('F32', b, 'DELTA_XOR', lower, CHUNK * 2);
    expect(pairDecodable(inspectObject(lower.bytes), inspectObject(other.bytes))).toBe(false);
    await expect(decodePair(lower.bytes, null, other.bytes, out)).rejects.toBeInstanceOf(UnsupportedError);
    // An upper object made against another base.
    const stranger = link('F32', tuned('F32', a, 63), 'PLANES');
    const wrong = link('F32', b, 'DELTA_XOR', stranger);
    expect(pairDecodable(inspectObject(lower.bytes), inspectObject(wrong.bytes))).toBe(false);
    await expect(decodePair(lower.bytes, null, wrong.bytes, out)).rejects.toBeInstanceOf(UnsupportedError);
    // A lower codec whose chunks do not decode alone.
    const raw = link('F32', a, 'RAW');
    const onRaw = link('F32', b, 'DELTA_XOR', raw);
    expect(pairDecodable(inspectObject(raw.bytes), inspectObject(onRaw.bytes))).toBe(false);
    await expect(decodePair(raw.bytes, null, onRaw.bytes, out)).rejects.toBeInstanceOf(UnsupportedError);
    // A lower delta without its base.
    const upper = link('F32', tuned('F32', b, 64), 'DELTA_XOR', link('F32', b, 'DELTA_XOR', lower));
    const mid = link('F32', b, 'DELTA_XOR', lower);
    await expect(decodePair(mid.bytes, null, upper.bytes, out)).rejects.toBeInstanceOf(BaseMismatchError);
    // The output must be exactly the decoded size.
    const ok = link('F32', b, 'DELTA_XOR', lower);
    await expect(decodePair(lower.bytes, null, ok.bytes, new Uint8Array(8))).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  });
});
