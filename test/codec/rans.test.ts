// The rANS plane mode (stream mode 3, native/kernels/entropy.h): round trips
// through it, and targeted corruption of its frequency table, states and words.
import { describe, expect, it } from 'vitest';
import { decodeSync, encodeSync } from '../../lib/codec';
import { ChecksumMismatchError, CorruptObjectError } from '../../lib/errors';
import { native } from '../../lib/native';
import { runPortable } from '../helpers/portable';
import { rng, t } from './helpers';

const MODE_RANS = 3;

/** i.i.d. low-entropy bytes (~0.4 bit/byte): zero with p = 0.95, else 1..3. */
function lowEntropy(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r() < 0.95 ? 0 : 1 + ((r() * 3) | 0);
  return b;
}

interface Layout {
  stream: number;
  body: number;
  stored: number;
  bitmap: number;
  states: number;
  words: number;
}

/** Locates the only stream of a one-chunk U8 PLANES object and the parts of its rANS body. */
function layout(bytes: Uint8Array): Layout {
  const info = native.codecInspect(bytes);
  const stream = info.headerSize + 4; // after the one-entry chunk table
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = dv.getUint32(stream + 5, true);
  const body = stream + 9;
  let k = 0;
  for (let s = 0; s < 256; s++) if (bytes[body + (s >> 3)] & (1 << (s & 7))) k++;
  let pos = body + 32;
  for (let j = 0; j + 1 < k; j++) pos += bytes[pos] & 0x80 ? 2 : 1;
  return { stream, body, stored, bitmap: body, states: pos, words: pos + 128 };
}

function expectCorrupt(bad: Uint8Array): void {
  expect(() => decodeSync(bad)).toThrow(CorruptObjectError);
}

describe('rANS plane mode', () => {
  for (const n of [60000, 60001, 65536 + 31]) {
    it(`round-trips low-entropy planes bit-exactly (n = ${n}) and beats the raw size 8x`, () => {
      const data = lowEntropy(n, n);
      const x = t('U8', [n], data);
      const obj = encodeSync(x, { codec: 'PLANES' });
      const L = layout(obj.bytes);
      expect(obj.bytes[L.stream]).toBe(MODE_RANS);
      expect(obj.bytes.length).toBeLessThan(n / 8);
      const back = decodeSync(obj.bytes);
      expect(Buffer.compare(Buffer.from(back.data), Buffer.from(data))).toBe(0);
      // thread-count independent bytes
      const one = encodeSync(x, { codec: 'PLANES', threads: 1 });
      expect(Buffer.compare(one.bytes, obj.bytes)).toBe(0);
    });
  }

  it('is used for the busy planes of a small fine-tune delta and round-trips', () => {
    const n = 1 << 16;
    const r = rng(5);
    const base = new Float32Array(n),
      ft = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      base[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) * 0.02;
      ft[i] = base[i] + (r() - 0.5) * 4e-5;
    }
    const bt = t('F32', [n], new Uint8Array(base.buffer)),
      xt = t('F32', [n], new Uint8Array(ft.buffer));
    for (const codec of ['DELTA_XOR', 'DELTA_ORDERED', 'DELTA_EXPMANT'] as const) {
      const obj = encodeSync(xt, { codec, base: { tensor: bt } });
      const back = decodeSync(obj.bytes, { tensor: bt });
      expect(Buffer.compare(Buffer.from(back.data), Buffer.from(xt.data))).toBe(0);
    }
  });

  it('writes the same bytes with the AVX2 and the portable coder, and each reads the other', () => {
    // Distributions that stress the coder: a dominant symbol (frequency near
    // the scale), many symbols at frequency 1, every byte value, two symbols;
    // lengths with and without a tail of < 32 symbols and several chunks.
    const gen: Array<[string, (r: () => number) => number]> = [
      ['dominant', (r) => (r() < 0.995 ? 0 : 1 + ((r() * 7) | 0))],
      ['rare tail', (r) => (r() < 0.9 ? (r() * 6) | 0 : r() < 0.99 ? 6 + ((r() * 10) | 0) : (r() * 256) | 0)],
      ['busy', (r) => Math.round(Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) * 40) & 255],
      ['two symbols', (r) => (r() < 0.3 ? 7 : 200)],
    ];
    const cases: ReturnType<typeof t>[] = [];
    let seed = 100;
    for (const [, g] of gen)
      for (const n of [64, 1000, 65536 + 31, (1 << 20) + 7]) {
        const r = rng(seed++);
        const d = new Uint8Array(n);
        for (let i = 0; i < n; i++) d[i] = g(r);
        cases.push(t('U8', [n], d));
      }
    const mine = cases.map((x) => encodeSync(x, { codec: 'PLANES' }).bytes);
    const firstMode = (b: Uint8Array, n: number) => b[native.codecInspect(b).headerSize + 4 * Math.ceil(n / 262144)];
    const modes = mine.map((b, k) => firstMode(b, cases[k].shape[0]));
    // Large planes are rANS-coded; tiny ones may keep zstd's smaller header or stay raw.
    modes.forEach((m, k) => cases[k].shape[0] > 65536 && expect(m).toBe(MODE_RANS));
    const theirs = runPortable(cases.map((x) => ({ op: 'encode' as const, tensor: x, codec: 'PLANES' as const })));
    for (let k = 0; k < cases.length; k++) expect(Buffer.compare(theirs[k], mine[k])).toBe(0);
    // Cross-decoding: the portable decoder reads objects written here.
    const back = runPortable(cases.map((x, k) => ({ op: 'decode' as const, bytes: mine[k], like: x })));
    for (let k = 0; k < cases.length; k++) expect(Buffer.compare(back[k], cases[k].data)).toBe(0);
  });

  describe('corruption', () => {
    const n = 60001;
    const obj = encodeSync(t('U8', [n], lowEntropy(n, 9)), { codec: 'PLANES' });
    const L = layout(obj.bytes);

    it('rejects a table with fewer than two symbols', () => {
      const bad = Buffer.from(obj.bytes);
      bad.fill(0, L.bitmap, L.bitmap + 32);
      bad[L.bitmap] = 1;
      expectCorrupt(bad);
    });
    it('rejects an out-of-range or oversized frequency', () => {
      const bad = Buffer.from(obj.bytes);
      bad[L.bitmap + 32] = 0xff; // two-byte form 0x7fxx: >= 4096
      expectCorrupt(bad);
      const zero = Buffer.from(obj.bytes);
      zero[L.bitmap + 32] = 0; // frequency 0 for a present symbol
      expectCorrupt(zero);
    });
    it('rejects a state below 2^16', () => {
      for (const lane of [0, 7, 31]) {
        const bad = Buffer.from(obj.bytes);
        bad.fill(0, L.states + 4 * lane + 2, L.states + 4 * lane + 4);
        expectCorrupt(bad);
      }
    });
    it('rejects flipped words (final states or word count disagree), never returning wrong data', () => {
      const r = rng(77);
      let corrupt = 0;
      const end = L.body + L.stored;
      for (let k = 0; k < 60; k++) {
        const pos = L.words + ((r() * (end - L.words)) | 0);
        const bad = Buffer.from(obj.bytes);
        bad[pos] ^= 1 << ((r() * 8) | 0);
        try {
          decodeSync(bad);
          throw new Error('decoded a corrupted object');
        } catch (e) {
          expect([CorruptObjectError.code, ChecksumMismatchError.code]).toContain((e as { code: string }).code);
          if (e instanceof CorruptObjectError) corrupt++;
        }
      }
      // the rANS end-state check catches (nearly) all of them before the content hash
      expect(corrupt).toBeGreaterThan(50);
    });
    it('rejects a stream whose raw length disagrees with its words', () => {
      // claim one byte fewer: the stream no longer matches the chunk's plane length
      const bad = Buffer.from(obj.bytes);
      const dv = new DataView(bad.buffer, bad.byteOffset, bad.byteLength);
      dv.setUint32(L.stream + 1, n - 1, true);
      expectCorrupt(bad);
    });
  });
});
