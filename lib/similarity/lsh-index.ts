/**
 * An in-memory LSH index over fingerprints (native SimIndex: banding, optional
 * multi-probe, exact Hamming re-rank). Persistence lives in index-file.ts.
 *
 * @example
 * const idx = SimilarityIndex.create();               // 256-bit scheme, 16 bands of 16 bits
 * idx.insert(id, await fingerprint(t));
 * const hits = idx.query(await fingerprint(u), { minSimilarity: 0.98, k: 5 });
 * // hits[0] = { id, similarity, hamming, dtype, shape, numel, rms }; verify with cosine()
 */
import type { SimIndexHit } from '../../binding';
import {
  CorruptIndexError,
  CorruptObjectError,
  InvalidArgumentError,
  invalidParameter,
  UnsupportedError,
} from '../errors';
import { callSync, native } from '../native';
import { DTYPES, dtypeFromCode, isDType, type DType } from '../tensor/dtype';
import { checkShape, numel as countElements } from '../tensor/tensor';
import {
  maxHammingFor,
  parseScheme,
  resolveScheme,
  similarityFromHamming,
  type Fingerprint,
  type FingerprintOptions,
} from './fingerprint';

type NativeIndex = InstanceType<typeof native.SimIndex>;
const handle = Symbol('coral.simIndex');

/**
 * Band width r for a signature of `bits` bits (bands = floor(bits / r)).
 * Chosen from the recall model 1 - (1 - (1 - p)^r)^b, p = acos(c)/pi, and
 * measured in bench/similarity.ts: r = 16 keeps recall >= 99.8% at cosine 0.98
 * from 256 bits up while an unrelated tensor of the same size lands in a
 * bucket with probability b / 65536; 64 and 128 bits need narrower bands.
 */
export function defaultBandBits(bits: number): number {
  if (bits >= 256) return 16;
  if (bits >= 128) return 12;
  return 8;
}

/** Probability that a pair at cosine c shares at least one band (theory, exact for Gaussian hyperplanes). */
export function bandRecall(c: number, bits: number, bandBits: number, probes: 0 | 1 = 0): number {
  const p = Math.acos(Math.max(-1, Math.min(1, c))) / Math.PI;
  const bands = Math.floor(bits / bandBits);
  let hit = (1 - p) ** bandBits;
  if (probes === 1) hit += bandBits * p * (1 - p) ** (bandBits - 1);
  return 1 - (1 - hit) ** bands;
}

export interface IndexOptions extends FingerprintOptions {
  /** Bits per band, 4..32 (default defaultBandBits(bits)). */
  bandBits?: number;
}

export interface EntryMeta {
  dtype: DType;
  shape: readonly number[];
  /** Must equal the product of shape when given. */
  numel?: number;
  /** RMS of the tensor (from the fingerprint), kept for delta-size estimates. */
  rms?: number;
}

export interface QueryOptions {
  /** Most results, best first (0 = all). Default 10. */
  k?: number;
  /** Keep entries whose true similarity may reach this (see tolerance). Default 0.9. */
  minSimilarity?: number;
  /**
   * Standard deviations of Hamming noise allowed above the expected distance at
   * minSimilarity (default 3, ~0.1% of pairs at the threshold missed). 0 keeps
   * only entries whose point estimate reaches minSimilarity.
   */
  tolerance?: number;
  /** Only entries with the query's shape. Default true. Element counts always match. */
  sameShapeOnly?: boolean;
  /** Only entries with the query's dtype. Default false (a BF16 copy may find its F32 base). */
  sameDtypeOnly?: boolean;
  /** Also probe buckets one bit away in every band: higher recall, ~bandBits x more lookups. Default 0. */
  probes?: 0 | 1;
  /** Compare against every entry of the same size instead of the bands. Default false. */
  exhaustive?: boolean;
}

export interface SimilarityHit {
  id: string;
  /** cos(pi * hamming / bits): an estimate; verify with cosine() before acting on it. */
  similarity: number;
  hamming: number;
  dtype: DType;
  shape: number[];
  numel: number;
  rms: number;
}

export interface IndexRecord {
  id: string;
  fingerprint: Fingerprint;
  meta?: EntryMeta;
}

export class SimilarityIndex {
  private [handle]: NativeIndex;
  /** Scheme of every fingerprint this index accepts. */
  readonly scheme: string;

  private constructor(h: NativeIndex) {
    this[handle] = h;
    this.scheme = h.scheme;
  }

  /** A new empty index for fingerprints made with `options`. */
  static create(options: IndexOptions = {}): SimilarityIndex {
    const { bandBits, ...fpOpts } = options;
    const s = resolveScheme(fpOpts);
    const r = bandBits ?? defaultBandBits(s.bits);
    if (!Number.isInteger(r) || r < 4 || r > 32 || r > s.bits)
      throw invalidParameter('bandBits', 'integer in [4, 32]', r);
    return new SimilarityIndex(callSync(() => new native.SimIndex({ bits: s.bits, bandBits: r, scheme: s.scheme })));
  }

  /** Parses serialize() output. Corrupt bytes throw CorruptIndexError. */
  static deserialize(bytes: Uint8Array): SimilarityIndex {
    let h: NativeIndex;
    try {
      h = callSync(() => new native.SimIndex(bytes));
    } catch (e) {
      if (e instanceof CorruptObjectError || e instanceof UnsupportedError) throw new CorruptIndexError(e.message);
      throw e;
    }
    try {
      parseScheme(h.scheme);
    } catch {
      throw new CorruptIndexError(`similarity index has an unknown scheme ${JSON.stringify(h.scheme)}`);
    }
    return new SimilarityIndex(h);
  }

  get size(): number {
    return this[handle].size;
  }
  get bits(): number {
    return this[handle].bits;
  }
  get bandBits(): number {
    return this[handle].bandBits;
  }
  get bands(): number {
    return this[handle].bands;
  }
  /** Heap bytes held natively. */
  memoryBytes(): number {
    return this[handle].memoryBytes();
  }

  /** Adds or replaces `id`. meta defaults to the fingerprint's dtype and shape. */
  insert(id: string, fp: Fingerprint, meta?: EntryMeta): void {
    if (typeof id !== 'string' || id.length === 0) throw invalidParameter('id', 'non-empty string', id);
    if (fp.scheme !== this.scheme)
      throw new InvalidArgumentError(`fingerprint scheme ${fp.scheme} does not match the index scheme ${this.scheme}`);
    const dtype = meta?.dtype ?? fp.dtype;
    if (!isDType(dtype)) throw invalidParameter('meta.dtype', 'dtype name', dtype);
    const shape = checkShape(meta?.shape ?? fp.shape, 'meta.shape');
    const n = countElements(shape);
    if (meta?.numel !== undefined && meta.numel !== n)
      throw invalidParameter('meta.numel', `${n} (the product of shape)`, meta.numel);
    if (n !== fp.numel) throw new InvalidArgumentError(`meta describes ${n} elements but the fingerprint ${fp.numel}`);
    callSync(() => this[handle].insert(id, fp.signature, DTYPES[dtype].code, shape, meta?.rms ?? fp.rms));
  }

  remove(id: string): boolean {
    return this[handle].remove(id);
  }

  has(id: string): boolean {
    return this[handle].has(id);
  }

  /** The stored entry (signature and meta), or null. */
  get(id: string): { signature: Uint8Array; dtype: DType; shape: number[]; numel: number; rms: number } | null {
    const e = this[handle].get(id);
    return e ? { ...e, dtype: dtypeFromCode(e.dtype) } : null;
  }

  ids(): string[] {
    return this[handle].ids();
  }

  /** Candidates for `fp`, best first. Element counts must match; see QueryOptions for the rest. */
  query(fp: Fingerprint, options: QueryOptions = {}): SimilarityHit[] {
    if (fp.scheme !== this.scheme)
      throw new InvalidArgumentError(`fingerprint scheme ${fp.scheme} does not match the index scheme ${this.scheme}`);
    const k = options.k ?? 10;
    if (!Number.isInteger(k) || k < 0 || k > 0xffffffff) throw invalidParameter('k', 'non-negative integer', k);
    const maxHamming = maxHammingFor(options.minSimilarity ?? 0.9, fp.bits, options.tolerance ?? 3);
    const probes = options.probes ?? 0;
    if (probes !== 0 && probes !== 1) throw invalidParameter('probes', '0 or 1', probes);
    const hits = callSync(() =>
      this[handle].query(fp.signature, {
        numel: fp.numel,
        k,
        maxHamming,
        probes,
        exhaustive: options.exhaustive ?? false,
        ...((options.sameShapeOnly ?? true) ? { shape: fp.shape } : {}),
        ...(options.sameDtypeOnly ? { dtype: DTYPES[fp.dtype].code } : {}),
      }),
    );
    return hits.map((h: SimIndexHit) => ({
      id: h.id,
      similarity: similarityFromHamming(h.hamming, fp.bits),
      hamming: h.hamming,
      dtype: dtypeFromCode(h.dtype),
      shape: h.shape,
      numel: h.numel,
      rms: h.rms,
    }));
  }

  /** Compact checksummed bytes; see docs/similarity.md. */
  serialize(): Uint8Array {
    return this[handle].serialize();
  }

  /**
   * Replaces the contents with `records` (e.g. fingerprints stored next to the
   * objects). Async iterables are consumed with a yield to the event loop every
   * 1024 records. Records of another scheme throw InvalidArgumentError.
   */
  async rebuild(records: Iterable<IndexRecord> | AsyncIterable<IndexRecord>): Promise<void> {
    const fresh = SimilarityIndex.create({ ...parseScheme(this.scheme), bandBits: this.bandBits });
    let n = 0;
    for await (const r of records as AsyncIterable<IndexRecord>) {
      fresh.insert(r.id, r.fingerprint, r.meta);
      if (++n % 1024 === 0) await new Promise((res) => setImmediate(res));
    }
    this[handle] = fresh[handle];
  }

  /** Moves another index's contents into this one (same scheme); used by the persisted store. */
  replaceWith(other: SimilarityIndex): void {
    if (other.scheme !== this.scheme)
      throw new InvalidArgumentError('cannot replace an index with one of another scheme');
    this[handle] = other[handle];
  }
}
