import { describe, expect, it } from 'vitest';
import { native } from '../../lib/native';
import { InvalidArgumentError, CorruptIndexError } from '../../lib/errors';
import {
  cosine,
  decodeFingerprint,
  encodeFingerprint,
  estimateSimilarity,
  fingerprint,
  fingerprints,
  fingerprintSync,
  hamming,
  maxHammingFor,
  SMALL_TENSOR_NUMEL,
} from '../../lib/similarity/fingerprint';
import { DTYPE_NAMES, DTYPES } from '../../lib/tensor/dtype';
import { tensor } from '../../lib/tensor/tensor';
import { Rng, rowScaledDelta, trainedLike, variantAt } from './families';

function bf16Of(f: Float32Array): Uint16Array {
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = u[i] >>> 16; // truncation is fine for a test copy
  return out;
}

describe('SimHash fingerprints', () => {
  const rng = new Rng(11);
  const rows = 1024,
    cols = 2048; // 2^21 elements: sampled
  const base = trainedLike(rng, rows, cols);
  const t = tensor('F32', [rows, cols], base);

  it('is identical across thread counts, calls, sync/async and batch', async () => {
    const before = native.threads();
    const sigs = new Set<string>();
    try {
      for (const n of [1, 2, 3, 5]) {
        native.setThreads(n);
        for (const maxSamples of [16384, 1 << 20]) {
          sigs.add(`${maxSamples}:${Buffer.from(fingerprintSync(t, { maxSamples }).signature).toString('hex')}`);
          sigs.add(`${maxSamples}:${Buffer.from((await fingerprint(t, { maxSamples })).signature).toString('hex')}`);
        }
        sigs.add(`16384:${Buffer.from((await fingerprints([t]))[0].signature).toString('hex')}`);
      }
    } finally {
      native.setThreads(before);
    }
    expect(sigs.size).toBe(2);
  });

  it('gives the same fingerprint for the same values in another buffer, and differs with the seed', () => {
    const copy = new Uint8Array(t.data.byteLength + 3).subarray(3);
    copy.set(t.data); // unaligned copy
    const a = fingerprintSync(t),
      b = fingerprintSync(tensor('F32', [rows, cols], copy));
    expect(hamming(a, b)).toBe(0);
    expect(a.exact).toBe(false);
    expect(a.samples).toBe(16384);
    const c = fingerprintSync(t, { seed: 5n });
    expect(c.scheme).not.toBe(a.scheme);
    expect(() => hamming(a, c)).toThrow(InvalidArgumentError);
  });

  it('puts similar tensors at small Hamming distance and unrelated ones near bits/2', () => {
    const fa = fingerprintSync(t);
    const near = fingerprintSync(
      tensor('F32', [rows, cols], variantAt(base, rowScaledDelta(rng, base, rows, cols), 0.999)),
    );
    const mid = fingerprintSync(
      tensor('F32', [rows, cols], variantAt(base, rowScaledDelta(rng, base, rows, cols), 0.98)),
    );
    const far = fingerprintSync(tensor('F32', [rows, cols], trainedLike(rng, rows, cols)));
    // Expected Hamming = bits * acos(c) / pi: 3.6 at 0.999, 16.3 at 0.98, 128 unrelated.
    expect(hamming(fa, near)).toBeLessThanOrEqual(12);
    expect(hamming(fa, mid)).toBeLessThanOrEqual(30);
    expect(hamming(fa, far)).toBeGreaterThan(90);
    expect(hamming(fa, far)).toBeLessThan(166);
    expect(estimateSimilarity(fa, near)!).toBeGreaterThan(0.98);
  });

  it('compares across dtypes: a BF16 copy lands next to its F32 original', () => {
    const fa = fingerprintSync(t);
    const fb = fingerprintSync(tensor('BF16', [rows, cols], bf16Of(base)));
    expect(hamming(fa, fb)).toBeLessThanOrEqual(6);
  });

  it('defines fingerprints for every dtype, tiny, 0-d and zero-size tensors, and marks them small', () => {
    for (const name of DTYPE_NAMES) {
      const size = DTYPES[name].size;
      for (const n of [1, 2, 7, 16]) {
        const data = new Uint8Array(n * size).map((_, i) => (i * 37 + 11) & 0x7f);
        const fp = fingerprintSync(tensor(name, [n], data));
        expect(fp.signature.byteLength).toBe(32);
        expect(fp.numel).toBe(n);
        expect(fp.exact).toBe(true);
        expect(fp.small).toBe(true);
      }
      expect(fingerprintSync(tensor(name, [], new Uint8Array(size))).numel).toBe(1);
      const empty = fingerprintSync(tensor(name, [0, 4], new Uint8Array(0)));
      expect(empty.numel).toBe(0);
      expect(empty.rms).toBe(0);
    }
    expect(fingerprintSync(tensor('F32', [SMALL_TENSOR_NUMEL], new Float32Array(SMALL_TENSOR_NUMEL))).small).toBe(
      false,
    );
  });

  it('projects NaN/Inf as 0 and counts them', () => {
    const f = new Float32Array(1000).map((_, i) => Math.sin(i));
    const g = f.slice();
    g[10] = NaN;
    g[20] = Infinity;
    const a = fingerprintSync(tensor('F32', [1000], f)),
      b = fingerprintSync(tensor('F32', [1000], g));
    expect(b.nonfinite).toBe(2);
    expect(hamming(a, b)).toBeLessThan(20);
  });

  it('supports 64..1024 bits and rejects bad options with InvalidArgumentError', () => {
    for (const bits of [64, 128, 512, 1024]) expect(fingerprintSync(t, { bits }).signature.byteLength).toBe(bits / 8);
    expect(() => fingerprintSync(t, { bits: 100 })).toThrow(InvalidArgumentError);
    expect(() => fingerprintSync(t, { maxSamples: 100 })).toThrow(InvalidArgumentError);
    expect(() => fingerprintSync(t, { seed: -1n })).toThrow(InvalidArgumentError);
    expect(() => fingerprintSync(t, { bitz: 64 } as never)).toThrow(InvalidArgumentError);
    expect(() => native.simhash(Buffer.alloc(10), 1, [3])).toThrow(
      expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }),
    );
  });

  it('round-trips through encodeFingerprint / decodeFingerprint; corrupt bytes are typed', () => {
    const fp = fingerprintSync(t, { bits: 128, center: true });
    const back = decodeFingerprint(encodeFingerprint(fp));
    expect(back.scheme).toBe(fp.scheme);
    expect(Buffer.from(back.signature).equals(Buffer.from(fp.signature))).toBe(true);
    expect(back.shape).toEqual(fp.shape);
    expect(back.rms).toBe(fp.rms);
    const bad = encodeFingerprint(fp).slice(0, 20);
    expect(() => decodeFingerprint(bad)).toThrow(CorruptIndexError);
  });

  it('maxHammingFor follows the binomial bound', () => {
    expect(maxHammingFor(1, 256)).toBe(0);
    expect(maxHammingFor(0.98, 256, 0)).toBe(16);
    expect(maxHammingFor(0.98, 256, 3)).toBe(28); // 16.33 + 3 * 3.91
    expect(maxHammingFor(-1, 256)).toBe(256);
  });
});

describe('exact cosine', () => {
  it('matches a float64 reference, across dtypes, with center and non-finite skipping', async () => {
    const rng = new Rng(3);
    const n = 300_001;
    const a = new Float32Array(n),
      b = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      a[i] = rng.gauss() + 0.5;
      b[i] = a[i] + 0.3 * rng.gauss();
    }
    let ab = 0,
      aa = 0,
      bb = 0,
      dd = 0,
      sa = 0,
      sb = 0;
    for (let i = 0; i < n; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
      dd += (a[i] - b[i]) ** 2;
      sa += a[i];
      sb += b[i];
    }
    const ta = tensor('F32', [n], a),
      tb = tensor('F32', [n], b);
    const r = await cosine(ta, tb);
    expect(r.cosine).toBeCloseTo(ab / Math.sqrt(aa * bb), 10);
    expect(r.normDelta).toBeCloseTo(Math.sqrt(dd), 6);
    expect(r.relativeDelta).toBeCloseTo(Math.sqrt(dd / bb), 10);
    const ma = sa / n,
      mb = sb / n;
    const pear = (ab - n * ma * mb) / Math.sqrt((aa - n * ma * ma) * (bb - n * mb * mb));
    expect((await cosine(ta, tb, { center: true })).cosine).toBeCloseTo(pear, 9);
    // F64 copy of a against F32 b gives the same answer.
    const t64 = tensor('F64', [n], Float64Array.from(a));
    expect((await cosine(t64, tb)).cosine).toBeCloseTo(r.cosine, 12);
    // Non-finite pairs are skipped, not propagated.
    const c = a.slice();
    c[5] = NaN;
    c[n - 1] = -Infinity;
    const rc = await cosine(tensor('F32', [n], c), tb);
    expect(rc.skipped).toBe(2);
    expect(rc.count).toBe(n - 2);
    expect(rc.cosine).toBeCloseTo(r.cosine, 4);
    // Thread-count independent.
    const before = native.threads();
    try {
      native.setThreads(1);
      const one = (await cosine(ta, tb)).cosine;
      native.setThreads(3);
      expect((await cosine(ta, tb)).cosine).toBe(one);
    } finally {
      native.setThreads(before);
    }
    await expect(cosine(ta, tensor('F32', [2], new Float32Array(2)))).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
