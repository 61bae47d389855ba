// Fused transform + byte-plane kernels (native/kernels/planes.h) through the
// public codec API: bit-exact round trips for every dtype x element codec x
// length, and identical encoded bytes from the AVX2 and the portable kernels
// (the portable ones run in a child process with CORAL_NO_AVX2=1).
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSync, encodeSync } from '../../lib/codec';
import { native } from '../../lib/native';
import { tensor } from '../../lib/tensor/tensor';
import { runPortableScript } from '../helpers/portable';
import { runPlanesCases, sha256, type PlanesRun } from './planes-cases';

const CASES = path.join(__dirname, 'planes-cases.ts');

const portableRun = (): PlanesRun => JSON.parse(runPortableScript(CASES)) as PlanesRun;

describe('byte-plane kernels', () => {
  let cached: PlanesRun | undefined;
  const here = (): PlanesRun => (cached ??= runPlanesCases());

  it('round trips every dtype x codec x length bit-exactly (NaN payloads, -0, +-Inf, subnormals)', () => {
    expect(here().failures).toEqual([]);
    expect(Object.keys(here().digests).length).toBeGreaterThan(800);
  });

  it('writes the same bytes with the AVX2 and the portable kernels', () => {
    const portable = portableRun();
    expect(portable.failures).toEqual([]);
    const mine = here().digests;
    expect(Object.keys(portable.digests).length).toBe(Object.keys(mine).length);
    const differ = Object.keys(mine).filter((k) => portable.digests[k] !== mine[k]);
    expect(differ).toEqual([]);
    // Informational: on an AVX2 machine the two processes really ran different code.
    if (!native.features.avx2) console.warn('no AVX2 on this CPU: both runs used the portable kernels');
  }, 240_000);

  it('keeps the transform layout: DELTA_ORDERED of equal F32 tensors is all-zero planes', () => {
    // Zig(Ord(t) - Ord(b)) == 0 for t == b: every plane is one repeated byte, so the
    // object is tiny whatever the values (this pins the transform, not just invertibility).
    const n = 100003;
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.sin(i) * 1e3;
    a[5] = -0;
    a[6] = NaN;
    const t = tensor('F32', [n], new Uint8Array(a.buffer));
    const obj = encodeSync(t, { codec: 'DELTA_ORDERED', base: { tensor: t } });
    expect(obj.bytes.byteLength).toBeLessThan(400);
    expect(sha256(decodeSync(obj.bytes, { tensor: t }).data)).toBe(sha256(t.data));
  });
});
