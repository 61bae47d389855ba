/**
 * SimHash fingerprints of tensors and the exact cosine used to verify
 * candidates. The definition (sampling, hyperplanes, bit order) is in
 * docs/similarity.md; it is part of the on-disk format of the similarity index.
 *
 * @example
 * const fp = await fingerprint(t);            // 256-bit signature + numel, rms, ...
 * const est = estimateSimilarity(fp, other);  // cos(pi * hamming / bits)
 * const exact = (await cosine(t, u)).cosine;
 */
import type { CosineResult, SimHashResult } from '../../binding';
import { CorruptIndexError, InvalidArgumentError, invalidParameter } from '../errors';
import { ASYNC_THRESHOLD_BYTES, FINGERPRINT_ASYNC_WORK, callAsync, callSync, native } from '../native';
import { DTYPES, dtypeFromCode, isDType, type DType } from '../tensor/dtype';
import { numel as countElements, type Tensor } from '../tensor/tensor';

/**
 * Tensors with fewer elements than this are "small": a fingerprint is defined
 * for them but says little, and ingestion must never substitute one tensor for
 * another on similarity alone (only a lossless delta is allowed). The policy is
 * the caller's; this constant and `Fingerprint.small` only expose the fact.
 */
export const SMALL_TENSOR_NUMEL = 4096;

export const DEFAULT_BITS = 256;
export const DEFAULT_MAX_SAMPLES = 16384;
export const DEFAULT_SEED = 0x636f72616c534831n; // "coralSH1"

export interface FingerprintOptions {
  /** Signature bits: multiple of 64 in [64, 1024]. Default 256. */
  bits?: number;
  /** Elements projected at most (multiple of 16 in [256, 2^22]). Default 16384. */
  maxSamples?: number;
  /** Hyperplane and sampling seed. Default DEFAULT_SEED. */
  seed?: bigint;
  /** Estimate Pearson correlation (project x - mean) instead of raw cosine. Default false. */
  center?: boolean;
}

/** A tensor's fingerprint plus what a caller needs to use it safely. */
export interface Fingerprint {
  /** Identifies bits / maxSamples / seed / center: only equal schemes compare. */
  readonly scheme: string;
  readonly bits: number;
  /** bits/8 bytes; hyperplane k is byte k>>3, bit k&7. */
  readonly signature: Uint8Array;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly numel: number;
  /** Elements projected; equals numel when `exact`. */
  readonly samples: number;
  /** Every element was projected (numel <= maxSamples). */
  readonly exact: boolean;
  /** numel < SMALL_TENSOR_NUMEL: never substitute on similarity; see SMALL_TENSOR_NUMEL. */
  readonly small: boolean;
  /** Sampled NaN/Inf elements (projected as 0). */
  readonly nonfinite: number;
  /** Mean / RMS of the finite sampled elements (RMS 0 means an all-zero sample: similarity is undefined). */
  readonly mean: number;
  readonly rms: number;
}

interface Resolved {
  bits: number;
  maxSamples: number;
  seed: bigint;
  center: boolean;
  scheme: string;
}

/** Validates options and names the scheme, e.g. "simhash1;b=256;m=16384;s=636f72616c534831;c=0". */
export function resolveScheme(o: FingerprintOptions = {}): Resolved {
  if (o === null || typeof o !== 'object') throw invalidParameter('options', 'object', o);
  for (const k of Object.keys(o))
    if (!['bits', 'maxSamples', 'seed', 'center'].includes(k) && (o as Record<string, unknown>)[k] !== undefined)
      throw invalidParameter(`options.${k}`, 'a known option (bits, maxSamples, seed, center)', k);
  const bits = o.bits ?? DEFAULT_BITS;
  if (!Number.isInteger(bits) || bits < 64 || bits > 1024 || bits % 64 !== 0)
    throw invalidParameter('bits', 'multiple of 64 in [64, 1024]', bits);
  const maxSamples = o.maxSamples ?? DEFAULT_MAX_SAMPLES;
  if (!Number.isInteger(maxSamples) || maxSamples < 256 || maxSamples > 1 << 22 || maxSamples % 16 !== 0)
    throw invalidParameter('maxSamples', 'multiple of 16 in [256, 4194304]', maxSamples);
  const seed = o.seed ?? DEFAULT_SEED;
  if (typeof seed !== 'bigint' || seed < 0n || seed >= 1n << 64n)
    throw invalidParameter('seed', 'bigint in [0, 2^64)', seed);
  const center = o.center ?? false;
  if (typeof center !== 'boolean') throw invalidParameter('center', 'boolean', center);
  const scheme = `simhash1;b=${bits};m=${maxSamples};s=${seed.toString(16).padStart(16, '0')};c=${center ? 1 : 0}`;
  return { bits, maxSamples, seed, center, scheme };
}

/** Parses a scheme string back into options (throws InvalidArgumentError on anything else). */
export function parseScheme(scheme: string): Required<FingerprintOptions> {
  const m = /^simhash1;b=(\d+);m=(\d+);s=([0-9a-f]{16});c=([01])$/.exec(scheme);
  if (!m) throw invalidParameter('scheme', 'a simhash1 scheme string', scheme);
  const o = { bits: Number(m[1]), maxSamples: Number(m[2]), seed: BigInt(`0x${m[3]}`), center: m[4] === '1' };
  resolveScheme(o);
  return o;
}

function wrap(r: SimHashResult, t: Tensor, s: Resolved): Fingerprint {
  return Object.freeze({
    scheme: s.scheme,
    bits: s.bits,
    signature: new Uint8Array(r.signature.buffer, r.signature.byteOffset, r.signature.byteLength),
    dtype: t.dtype,
    shape: Object.freeze(t.shape.slice()),
    numel: r.numel,
    samples: r.samples,
    exact: r.samples === r.numel,
    small: r.numel < SMALL_TENSOR_NUMEL,
    nonfinite: r.nonfinite,
    mean: r.mean,
    rms: r.rms,
  });
}

function nativeOpts(s: Resolved) {
  return { bits: s.bits, maxSamples: s.maxSamples, seed: s.seed, center: s.center };
}

/** Fingerprint on the calling thread. Cheap: at most maxSamples elements are read. */
export function fingerprintSync(t: Tensor, options?: FingerprintOptions): Fingerprint {
  const s = resolveScheme(options);
  return wrap(
    callSync(() => native.simhash(t.data, DTYPES[t.dtype].code, t.shape, nativeOpts(s))),
    t,
    s,
  );
}

/**
 * Fingerprint of a tensor. Runs inline when the work is small (few samples),
 * on the libuv pool otherwise; the input must not change until it settles.
 */
export function fingerprint(t: Tensor, options?: FingerprintOptions): Promise<Fingerprint> {
  const s = resolveScheme(options);
  const work = Math.min(countElements(t.shape), s.maxSamples) * (s.bits / 64);
  if (work < FINGERPRINT_ASYNC_WORK) {
    try {
      return Promise.resolve(fingerprintSync(t, options));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return callAsync(() => native.simhashAsync(t.data, DTYPES[t.dtype].code, t.shape, nativeOpts(s))).then((r) =>
    wrap(r, t, s),
  );
}

/** Fingerprints of many tensors in one native job. */
export async function fingerprints(ts: readonly Tensor[], options?: FingerprintOptions): Promise<Fingerprint[]> {
  const s = resolveScheme(options);
  const rs = await callAsync(() =>
    native.simhashBatch(
      ts.map((t) => ({ data: t.data, dtype: DTYPES[t.dtype].code, shape: t.shape })),
      nativeOpts(s),
    ),
  );
  return rs.map((r, i) => wrap(r, ts[i], s));
}

/** Hamming distance between two fingerprints of the same scheme. */
export function hamming(a: Fingerprint, b: Fingerprint): number {
  if (a.scheme !== b.scheme) throw new InvalidArgumentError(`fingerprint schemes differ: ${a.scheme} vs ${b.scheme}`);
  return native.hamming(a.signature, b.signature);
}

/** cos(pi * hamming / bits): the SimHash estimate of the angle's cosine. */
export function similarityFromHamming(h: number, bits: number): number {
  return Math.cos((Math.PI * h) / bits);
}

/**
 * Estimated similarity of two fingerprints; null when they are not comparable
 * (different schemes, or different element counts, which sample different positions).
 */
export function estimateSimilarity(a: Fingerprint, b: Fingerprint): number | null {
  if (a.scheme !== b.scheme || a.numel !== b.numel) return null;
  return similarityFromHamming(native.hamming(a.signature, b.signature), a.bits);
}

/**
 * Largest Hamming distance a pair with true similarity `minSimilarity` reaches
 * with probability ~Phi(tolerance): bits*p + tolerance*sqrt(bits*p*(1-p)),
 * p = acos(minSimilarity)/pi. tolerance 3 misses ~0.1% of pairs at the threshold.
 */
export function maxHammingFor(minSimilarity: number, bits: number, tolerance = 3): number {
  if (!(minSimilarity >= -1 && minSimilarity <= 1))
    throw invalidParameter('minSimilarity', 'number in [-1, 1]', minSimilarity);
  if (!(tolerance >= 0 && Number.isFinite(tolerance)))
    throw invalidParameter('tolerance', 'finite number >= 0', tolerance);
  const p = Math.acos(minSimilarity) / Math.PI;
  return Math.min(bits, Math.floor(bits * p + tolerance * Math.sqrt(bits * p * (1 - p))));
}

/** Exact comparison of two tensors (any float or int dtypes, same element count). */
export interface TensorCosine extends CosineResult {
  /** ||a - b|| / ||b||: relative size of the delta a - b against base b (Infinity if b is 0). */
  relativeDelta: number;
}

function finishCosine(r: CosineResult): TensorCosine {
  return { ...r, relativeDelta: r.normB > 0 ? r.normDelta / r.normB : r.normDelta > 0 ? Infinity : 0 };
}

/**
 * Exact cosine of a and b (Pearson correlation with `center`), multithreaded,
 * plus norms and ||a - b||. Runs on the libuv pool above ASYNC_THRESHOLD_BYTES.
 */
export function cosine(a: Tensor, b: Tensor, options: { center?: boolean } = {}): Promise<TensorCosine> {
  const n = countElements(a.shape);
  if (n !== countElements(b.shape))
    return Promise.reject(
      new InvalidArgumentError(`cosine needs equal element counts, got ${n} and ${countElements(b.shape)}`),
    );
  const args = [
    a.data,
    DTYPES[a.dtype].code,
    b.data,
    DTYPES[b.dtype].code,
    [n],
    { center: options.center ?? false },
  ] as const;
  if (a.data.byteLength + b.data.byteLength < ASYNC_THRESHOLD_BYTES) {
    try {
      return Promise.resolve(finishCosine(callSync(() => native.cosine(...args))));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return callAsync(() => native.cosineAsync(...args)).then(finishCosine);
}

// ---- serialised fingerprints ---------------------------------------------------------------
//
// For storing next to objects (e.g. a pack attribute) and feeding rebuild():
//   "CFP1" u8 dtype u8 ndim u16 schemeLen scheme[] f64 dims[ndim] f64 samples f64 nonfinite
//   f64 mean f64 rms u8 signature[bits/8]   (little-endian)

const FP_MAGIC = 0x31504643; // "CFP1"

export function encodeFingerprint(fp: Fingerprint): Uint8Array {
  const scheme = Buffer.from(fp.scheme, 'utf8');
  const n = 4 + 1 + 1 + 2 + scheme.length + 8 * fp.shape.length + 32 + fp.signature.byteLength;
  const out = Buffer.alloc(n);
  let o = out.writeUInt32LE(FP_MAGIC, 0);
  o = out.writeUInt8(DTYPES[fp.dtype].code, o);
  o = out.writeUInt8(fp.shape.length, o);
  o = out.writeUInt16LE(scheme.length, o);
  o += scheme.copy(out, o);
  for (const d of fp.shape) o = out.writeDoubleLE(d, o);
  o = out.writeDoubleLE(fp.samples, o);
  o = out.writeDoubleLE(fp.nonfinite, o);
  o = out.writeDoubleLE(fp.mean, o);
  o = out.writeDoubleLE(fp.rms, o);
  out.set(fp.signature, o);
  return out;
}

export function decodeFingerprint(bytes: Uint8Array): Fingerprint {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string) => new CorruptIndexError(`encoded fingerprint is corrupt: ${why}`);
  if (b.length < 8 || b.readUInt32LE(0) !== FP_MAGIC) throw bad('bad magic');
  const code = b.readUInt8(4),
    ndim = b.readUInt8(5),
    slen = b.readUInt16LE(6);
  if (code >= 15) throw bad('unknown dtype');
  let o = 8;
  if (b.length < o + slen + 8 * ndim + 32) throw bad('truncated');
  const scheme = b.toString('utf8', o, o + slen);
  o += slen;
  let s: Resolved;
  try {
    s = resolveScheme(parseScheme(scheme));
  } catch {
    throw bad(`unknown scheme ${JSON.stringify(scheme)}`);
  }
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++, o += 8) {
    const d = b.readDoubleLE(o);
    if (!Number.isSafeInteger(d) || d < 0) throw bad('bad dimension');
    shape.push(d);
  }
  const samples = b.readDoubleLE(o),
    nonfinite = b.readDoubleLE(o + 8),
    mean = b.readDoubleLE(o + 16),
    rms = b.readDoubleLE(o + 24);
  o += 32;
  if (b.length !== o + s.bits / 8) throw bad('signature length does not match the scheme');
  const dtype = dtypeFromCode(code);
  if (!isDType(dtype)) throw bad('unknown dtype');
  const numel = countElements(shape);
  return Object.freeze({
    scheme: s.scheme,
    bits: s.bits,
    signature: new Uint8Array(b.subarray(o)),
    dtype,
    shape: Object.freeze(shape),
    numel,
    samples,
    exact: samples === numel,
    small: numel < SMALL_TENSOR_NUMEL,
    nonfinite,
    mean,
    rms,
  });
}
