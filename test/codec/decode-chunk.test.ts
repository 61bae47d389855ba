// decodeChunk: one chunk of a chunked lossless object decoded alone (kernels DecodeChunkAt), as the
// git clean's base probe uses it (lib/git/anchors.ts). Every chunk must equal that slice of the full
// decode, for every codec that allows it, with and without a base, at a chunk size that does not
// divide the tensor (a short last chunk).
import { describe, expect, it } from 'vitest';
import { CHUNK_DECODABLE, decodeChunk, decodeSync, encodeSync, inspectObject, type CodecName } from '../../lib/codec';
import { InvalidArgumentError, UnsupportedError } from '../../lib/errors';
import { contentIdSync } from '../../lib/hash';
import { gaussian, rng, sameBytes, t } from './helpers';

const N = 10_000;
const CHUNK = 4096; // 3 chunks, the last one short

function versions(): [Float32Array, Float32Array] {
  const a = gaussian(N, 0.02, 31);
  const b = new Float32Array(a);
  const r = rng(32);
  for (let i = 0; i < N; i++) if (r() < 0.3) b[i] += (r() - 0.5) * 1e-4;
  return [a, b];
}

describe('decodeChunk', () => {
  const [a, b] = versions();
  const ta = t('F32', [N], new Uint8Array(a.buffer));
  const tb = t('F32', [N], new Uint8Array(b.buffer));
  const base = { tensor: ta, id: contentIdSync(ta) };
  const cases: Array<[CodecName, boolean]> = [
    ['ZSTD', false],
    ['PLANES', false],
    ['DELTA_XOR', true],
    ['DELTA_ORDERED', true],
    ['DELTA_EXPMANT', true],
    ['SPARSE_UPDATE', true],
  ];

  it.each(cases)('%s: every chunk equals its slice of the full decode', (codec, delta) => {
    expect(CHUNK_DECODABLE.has(codec)).toBe(true);
    const obj = encodeSync(tb, { codec, chunkElems: CHUNK, ...(delta ? { base } : {}) });
    expect(inspectObject(obj.bytes).chunkElems).toBe(CHUNK);
    const full = decodeSync(obj.bytes, delta ? base : null).data;
    for (let k = 0; k * CHUNK < N; k++) {
      const from = k * CHUNK * 4;
      const to = Math.min(N, (k + 1) * CHUNK) * 4;
      const got = decodeChunk(obj.bytes, k, delta ? ta.data.subarray(from, to) : null);
      expect(got.byteLength).toBe(to - from);
      expect(sameBytes(got, full.subarray(from, to))).toBe(true);
      // Into a caller's buffer: the same bytes, that buffer returned.
      const out = new Uint8Array(to - from);
      expect(decodeChunk(obj.bytes, k, delta ? ta.data.subarray(from, to) : null, out)).toBe(out);
      expect(sameBytes(out, got)).toBe(true);
    }
  });

  it('refuses codecs whose chunks do not decode alone, a chunk out of range, and a base that does not fit', () => {
    const raw = encodeSync(tb, { codec: 'RAW' });
    expect(() => decodeChunk(raw.bytes, 0, null)).toThrow(InvalidArgumentError);
    const lossy = encodeSync(tb, { codec: 'QUANT_INT8', base });
    expect(() => decodeChunk(lossy.bytes, 0, ta.data.subarray(0, CHUNK * 4))).toThrow(UnsupportedError);
    const d = encodeSync(tb, { codec: 'DELTA_ORDERED', chunkElems: CHUNK, base });
    expect(() => decodeChunk(d.bytes, 3, ta.data.subarray(0, CHUNK * 4))).toThrow(InvalidArgumentError);
    expect(() => decodeChunk(d.bytes, 0, null)).toThrow(/base/);
    expect(() => decodeChunk(d.bytes, 0, ta.data.subarray(0, 100))).toThrow(/base/);
    const p = encodeSync(tb, { codec: 'PLANES', chunkElems: CHUNK });
    expect(() => decodeChunk(p.bytes, 0, ta.data.subarray(0, CHUNK * 4))).toThrow(/base/);
  });
});
