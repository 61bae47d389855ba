// The byte-plane kernel cases (native/kernels/planes.h) shared by
// planes.test.ts and its child process: every dtype x element codec x length,
// on trained-like floats and on raw random bits, with NaN payloads, -0.0,
// +-Inf and subnormals in target and base. Run as a script, it encodes every
// case, checks each round trip and prints {digests, failures} as JSON, so the
// test can compare a CORAL_NO_AVX2=1 child (portable kernels) with the
// in-process AVX2 kernels byte for byte.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { decodeSync, encodeSync, type CodecName } from '../../lib/codec';
import { DTYPE_NAMES, DTYPES, type DType } from '../../lib/tensor/dtype';
import { tensor, type Tensor } from '../../lib/tensor/tensor';
import { randomBytes, rng, sample, specials } from '../codec/helpers';

export const LENGTHS = [0, 1, 7, 31, 33, 2047, 2049, 100003];
const FLOATS: readonly DType[] = ['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2'];

export function codecsFor(d: DType): CodecName[] {
  const c: CodecName[] = ['PLANES', 'DELTA_XOR', 'DELTA_ORDERED'];
  if (FLOATS.includes(d)) c.push('DELTA_EXPMANT');
  return c;
}

export interface PlanesCase {
  name: string;
  codec: CodecName;
  target: Tensor;
  base: Tensor | null;
  chunkElems?: number;
}

/** `bytes` copied to byte offset `shift` of a fresh buffer (unaligned views for the kernels). */
function at(bytes: Uint8Array, shift: number): Uint8Array {
  const b = new Uint8Array(bytes.byteLength + shift);
  b.set(bytes, shift);
  return b.subarray(shift);
}

/** Target and base bytes of n elements: trained-like ('sample') or raw random bits ('bits'). */
function data(dtype: DType, n: number, kind: 'sample' | 'bits', seed: number): [Uint8Array, Uint8Array] {
  const size = DTYPES[dtype].size;
  const t = kind === 'sample' ? sample(dtype, n, seed) : randomBytes(n * size, seed);
  const b = kind === 'sample' ? sample(dtype, n, seed + 7777) : randomBytes(n * size, seed + 7777);
  const r = rng(seed ^ 0xba5e);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < 0.4) b.set(t.subarray(i * size, (i + 1) * size), i * size); // unchanged element
    else if (u < 0.7) {
      // a near neighbour: flip one low bit of the target
      b.set(t.subarray(i * size, (i + 1) * size), i * size);
      b[i * size] ^= 1 << ((r() * 8) | 0);
    }
  }
  // special values at random places of both (sample() already sprinkles them into the target)
  const sp = specials(dtype);
  for (let k = 0; k < Math.min(n, 2 * sp.length); k++) {
    b.set(sp[k % sp.length], ((r() * n) | 0) * size);
    t.set(sp[(k * 5) % sp.length], ((r() * n) | 0) * size);
  }
  return [t, b];
}

export function* planesCases(): Generator<PlanesCase> {
  let seed = 1;
  for (const dtype of DTYPE_NAMES) {
    for (const n of LENGTHS) {
      for (const kind of ['sample', 'bits'] as const) {
        const [t, b] = data(dtype, n, kind, seed++);
        const shift = seed % 3; // 0, 1 or 2 bytes off alignment
        const target = tensor(dtype, [n], at(t, shift));
        const base = tensor(dtype, [n], at(b, (shift + 1) % 3));
        for (const codec of codecsFor(dtype)) {
          const name = `${dtype}/${codec}/${kind}/n=${n}`;
          yield { name, codec, target, base: codec === 'PLANES' ? null : base };
          // small odd chunks: chunk starts off the 32-element vector blocks
          if (n === 100003) yield { name: `${name}/chunk=4099`, codec, target, base: codec === 'PLANES' ? null : base, chunkElems: 4099 };
        }
      }
    }
  }
}

/**
 * Small cases (67 elements: two 32-element vector blocks and a tail) whose
 * objects, written by the encoder from before the fused kernels, are stored in
 * fixtures/planes-v1.json. Regenerate only on purpose, with an old binary:
 *   CORAL_NATIVE_PATH=<old coral.node> node --import tsx test/native/planes-cases.ts --golden > test/native/fixtures/planes-v1.json
 */
export function* goldenCases(): Generator<PlanesCase> {
  let seed = 5000;
  for (const dtype of DTYPE_NAMES) {
    for (const kind of ['sample', 'bits'] as const) {
      const [t, b] = data(dtype, 67, kind, seed++);
      const target = tensor(dtype, [67], t);
      const base = tensor(dtype, [67], b);
      for (const codec of codecsFor(dtype)) yield { name: `${dtype}/${codec}/${kind}/n=67`, codec, target, base: codec === 'PLANES' ? null : base };
    }
  }
}

const GOLDEN = path.join(__dirname, 'fixtures', 'planes-v1.json');

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export interface PlanesRun {
  digests: Record<string, string>;
  failures: string[];
}

/** Encodes every case (threads: 1 and 2 must agree), decodes it (also into an unaligned `out`) and checks the bytes. */
export function runPlanesCases(): PlanesRun {
  const digests: Record<string, string> = {};
  const failures: string[] = [];
  for (const c of planesCases()) {
    const base = c.base ? { tensor: c.base } : undefined;
    const obj = encodeSync(c.target, { codec: c.codec, base, threads: 1, chunkElems: c.chunkElems });
    if (obj.codec !== c.codec) failures.push(`${c.name}: encoded as ${obj.codec}`);
    const obj2 = encodeSync(c.target, { codec: c.codec, base, threads: 2, chunkElems: c.chunkElems });
    if (!same(obj.bytes, obj2.bytes)) failures.push(`${c.name}: bytes depend on the thread count`);
    digests[c.name] = sha256(obj.bytes);
    try {
      const back = decodeSync(obj.bytes, base ?? null, { threads: 2 });
      if (!same(back.data, c.target.data)) failures.push(`${c.name}: round trip differs`);
      const out = at(new Uint8Array(c.target.data.byteLength), 1);
      decodeSync(obj.bytes, base ?? null, { out, threads: 1 });
      if (!same(out, c.target.data)) failures.push(`${c.name}: round trip into an unaligned out differs`);
    } catch (e) {
      failures.push(`${c.name}: ${(e as Error).message}`); // e.g. ChecksumMismatchError: wrong bytes decoded
    }
  }
  // objects of the earlier encoder decode to the same bytes (pins the transform and plane layout)
  const golden = existsSync(GOLDEN) ? (JSON.parse(readFileSync(GOLDEN, 'utf8')) as { objects: Record<string, string> }).objects : {};
  let seen = 0;
  for (const c of goldenCases()) {
    const obj = golden[c.name];
    if (obj === undefined) {
      failures.push(`${c.name}: no golden object`);
      continue;
    }
    seen++;
    try {
      const back = decodeSync(Buffer.from(obj, 'base64'), c.base ? { tensor: c.base } : null);
      if (!same(back.data, c.target.data)) failures.push(`${c.name}: golden object decodes differently`);
    } catch (e) {
      failures.push(`${c.name}: golden object: ${(e as Error).message}`);
    }
  }
  if (seen !== Object.keys(golden).length) failures.push('golden fixture has cases this file does not generate');
  return { digests, failures };
}

if (process.argv[1] && /planes-cases\.ts$/.test(process.argv[1])) {
  if (process.argv[2] === '--golden') {
    const objects: Record<string, string> = {};
    for (const c of goldenCases())
      objects[c.name] = encodeSync(c.target, { codec: c.codec, base: c.base ? { tensor: c.base } : undefined }).bytes.toString('base64');
    process.stdout.write(`${JSON.stringify({ note: 'objects of the encoder before the fused plane kernels; see planes-cases.ts', objects }, null, 1)}\n`);
  } else {
    process.stdout.write(JSON.stringify(runPlanesCases()));
  }
}
