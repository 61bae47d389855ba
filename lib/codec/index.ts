/**
 * Tensor codecs: a typed wrapper over the native codec kernels
 * (native/kernels/codec.h). Lossless codecs are bit-exact for every dtype;
 * lossy codecs run only when asked for by name and record their measured
 * error. Every encoded object carries the content id of the tensor it decodes
 * to, and decode verifies it. See docs/codecs.md.
 *
 * @example
 * const obj = await encode(t);                                   // automatic, lossless
 * const back = await decode(obj.bytes);                          // bit-exact
 * const d = await encode(t2, { base: { tensor: t, id } });       // delta against t
 * const q = await encode(t2, { codec: 'QUANT_INT8', base: { tensor: t } });
 * q.maxAbsError; q.relL2Error;                                   // measured, also in the header
 */
import { BaseMismatchError, invalidParameter } from '../errors';
import { ASYNC_THRESHOLD_BYTES, DECODE_ASYNC_BYTES, ENCODE_ASYNC_BYTES, callAsync, callSync, native } from '../native';
import { DTYPES, dtypeFromCode, type DType } from '../tensor/dtype';
import type { Tensor } from '../tensor/tensor';

/** Codec names as stored in objects (ids in native/kernels/codec.h). */
export const CODEC_NAMES = [
  'RAW',
  'ZSTD',
  'PLANES',
  'DELTA_XOR',
  'DELTA_ORDERED',
  'DELTA_EXPMANT',
  'SPARSE_UPDATE',
  'QUANT_INT8',
  'QUANT_INT16',
  'SPARSE_TOPK',
  'PER_AXIS_SCALED',
  'LOW_RANK',
  'CAST',
  'ROWS',
] as const;
export type CodecName = (typeof CODEC_NAMES)[number];

/** Lossless codecs: decode returns the exact bits that were encoded. */
export const LOSSLESS_CODECS: readonly CodecName[] = [...CODEC_NAMES.slice(0, 7), 'CAST', 'ROWS'];
/** Lossy codecs: only used when named; error is measured and recorded. */
export const LOSSY_CODECS: readonly CodecName[] = CODEC_NAMES.slice(7, 12);
/**
 * Lossless codecs whose base differs from the tensor: CAST (a base of another
 * float dtype, cast with a named rounding, plus an exact residual) and ROWS (a
 * base with another first dimension: shared rows as a delta, new rows
 * standalone). See docs/codecs.md, "Derived bases".
 */
export const DERIVED_CODECS: readonly CodecName[] = ['CAST', 'ROWS'];

/** Float dtypes CAST converts between. */
const CAST_DTYPES: ReadonlySet<DType> = new Set<DType>(['F64', 'F32', 'F16', 'BF16']);

/**
 * How a base relates to a tensor for delta encoding: `same` (dtype and shape:
 * the element delta codecs), `cast` (another float dtype among F64 F32 F16
 * BF16, same shape: CAST), `rows` (same dtype and trailing dimensions, another
 * first dimension: ROWS), or null (no lossless delta possible).
 *
 * @example
 * baseRelation({ dtype: 'BF16', shape: [4, 4] }, { dtype: 'F32', shape: [4, 4] }) // 'cast'
 */
export function baseRelation(
  t: { dtype: DType; shape: readonly number[] },
  base: { dtype: DType; shape: readonly number[] },
): 'same' | 'cast' | 'rows' | null {
  const sameShape = base.shape.length === t.shape.length && base.shape.every((d, i) => d === t.shape[i]);
  if (base.dtype === t.dtype) {
    if (sameShape) return 'same';
    if (
      t.shape.length >= 1 &&
      base.shape.length === t.shape.length &&
      base.shape.every((d, i) => i === 0 || d === t.shape[i])
    )
      return 'rows';
    return null;
  }
  return sameShape && CAST_DTYPES.has(base.dtype) && CAST_DTYPES.has(t.dtype) ? 'cast' : null;
}

/**
 * Names used by coral's predecessor, accepted as aliases. Each maps to one of
 * our bit-exact codecs (EXPONENT_MANTISSA is PLANES without a base and
 * DELTA_EXPMANT with one). The stored object records our name.
 */
export const CODEC_ALIASES = {
  FLOAT32_RAW: 'RAW',
  COMPRESSED: 'ZSTD',
  XOR_FLOAT32: 'DELTA_XOR',
  XOR_BFLOAT16: 'DELTA_XOR',
  EXPONENT_MANTISSA: 'PLANES',
} as const satisfies Record<string, CodecName>;
export type CodecAlias = keyof typeof CODEC_ALIASES;

/** A base tensor for deltas. `id` is optional; when given it must be the tensor's content id. */
export interface BaseRef {
  tensor: Tensor;
  id?: string;
}

/** Knobs of the lossy codecs (each codec reads its own). */
export interface LossyOptions {
  /** QUANT_INT8/16: elements per scale block (16..2^24, default 4096). */
  block?: number;
  /** SPARSE_TOPK: keep this fraction of elements (0..1). */
  fraction?: number;
  /** SPARSE_TOPK: keep this many elements. */
  topk?: number;
  /** SPARSE_TOPK: keep every |delta| >= threshold. */
  threshold?: number;
  /** PER_AXIS_SCALED: one scale per row (dim 0, default) or per column. */
  axis?: 'row' | 'col';
  /** LOW_RANK: fixed rank. */
  rank?: number;
  /** LOW_RANK: rank cap when choosing by energy (default 64). */
  maxRank?: number;
  /** LOW_RANK: fraction of the delta's energy (squared Frobenius norm) to keep (default 0.9). */
  energy?: number;
}

export interface EncodeOptions {
  /** Codec name, predecessor alias, or 'auto' (default): smallest lossless encoding, estimated on samples. */
  codec?: CodecName | CodecAlias | 'auto';
  /**
   * Base tensor for delta codecs: same dtype and shape, or (CAST) another float dtype and the same
   * shape, or (ROWS) the same dtype with another first dimension; see `baseRelation`.
   */
  base?: BaseRef;
  /** zstd level for compressible streams, -7..22 (default 3). */
  level?: number;
  /** Lossy codec knobs; only valid with a lossy codec. */
  lossy?: LossyOptions;
  /** Threads for this call (default: runtime.threads()). Output bytes do not depend on it. */
  threads?: number;
  /** Elements per independently compressed chunk (default 2^18, max 2^22). Part of the format. */
  chunkElems?: number;
}

export interface EncodedObject {
  bytes: Buffer;
  codec: CodecName;
  lossy: boolean;
  /** Content id of the tensor the object decodes to. */
  id: string;
  /** Lossy only: max |decoded - input| over elements. */
  maxAbsError?: number;
  /** Lossy only: ||decoded - input||_2 / ||input||_2. */
  relL2Error?: number;
}

export interface DecodeOptions {
  /**
   * Decode into this buffer (exactly the decoded size) instead of a new one. When decode throws
   * (corrupt object, wrong base), its contents are unspecified.
   */
  out?: Uint8Array;
  threads?: number;
  /**
   * false skips the content id check of the decoded bytes, for a caller that verifies them another
   * way before anything relies on them (checkout checks the sha256 of the whole file it assembles
   * before the rename). Default true.
   */
  verify?: boolean;
}

/** Header fields of an encoded object. */
export interface ObjectHeader {
  version: number;
  codec: CodecName;
  dtype: DType;
  shape: number[];
  lossy: boolean;
  /** zstd level recorded at encode time (informational). */
  level: number;
  /** Elements per chunk (0 for unchunked codecs). */
  chunkElems: number;
  id: string;
  baseId: string | null;
  maxAbsError: number;
  relL2Error: number;
  /** Decoded codec parameters (codec-specific). */
  params: Record<string, number | string>;
  headerSize: number;
  payloadSize: number;
  /** Decoded tensor size in bytes. */
  nbytes: number;
}

const ENCODE_KEYS = new Set(['codec', 'base', 'level', 'lossy', 'threads', 'chunkElems']);
const LOSSY_KEYS = new Set(['block', 'fraction', 'topk', 'threshold', 'axis', 'rank', 'maxRank', 'energy']);
const DECODE_KEYS = new Set(['out', 'threads', 'verify']);

function checkKeys(o: object, allowed: Set<string>, what: string): void {
  for (const k of Object.keys(o))
    if (!allowed.has(k)) throw invalidParameter(`${what} key`, `one of ${[...allowed].join(', ')}`, k);
}

function isInt(x: unknown, lo: number, hi: number): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;
}

function checkTensor(t: unknown, name: string): asserts t is Tensor {
  const o = t as Tensor;
  if (
    typeof t !== 'object' ||
    t === null ||
    !(o.data instanceof Uint8Array) ||
    !Array.isArray(o.shape) ||
    !Object.prototype.hasOwnProperty.call(DTYPES, o.dtype)
  )
    throw invalidParameter(name, 'Tensor {dtype, shape, data}', t);
}

function resolveCodec(name: unknown, hasBase: boolean, dtype: DType): number {
  if (name === undefined || name === 'auto') return 255;
  if (typeof name !== 'string') throw invalidParameter('codec', 'codec name or "auto"', name);
  let c: string = name;
  if (Object.prototype.hasOwnProperty.call(CODEC_ALIASES, name)) {
    const alias = name as CodecAlias;
    if (alias === 'FLOAT32_RAW' && dtype !== 'F32')
      throw invalidParameter('codec', 'an F32 tensor for FLOAT32_RAW', dtype);
    if (alias === 'XOR_FLOAT32' && dtype !== 'F32')
      throw invalidParameter('codec', 'an F32 tensor for XOR_FLOAT32', dtype);
    if (alias === 'XOR_BFLOAT16' && dtype !== 'BF16')
      throw invalidParameter('codec', 'a BF16 tensor for XOR_BFLOAT16', dtype);
    c = alias === 'EXPONENT_MANTISSA' && hasBase ? 'DELTA_EXPMANT' : CODEC_ALIASES[alias];
  }
  const id = (CODEC_NAMES as readonly string[]).indexOf(c);
  if (id < 0) throw invalidParameter('codec', `one of ${CODEC_NAMES.join(' ')}, an alias or "auto"`, name);
  return id;
}

interface NativeArgs {
  data: Uint8Array;
  dtype: number;
  shape: readonly number[];
  base: Uint8Array | null;
  opts: Record<string, number | string | readonly number[]>;
}

function encodeArgs(t: Tensor, o: EncodeOptions | undefined): NativeArgs {
  checkTensor(t, 'tensor');
  const opts = o ?? {};
  if (typeof opts !== 'object' || opts === null) throw invalidParameter('options', 'object', opts);
  checkKeys(opts, ENCODE_KEYS, 'encode option');
  const n: Record<string, number | string | readonly number[]> = {};
  let base: Uint8Array | null = null;
  let baseShape: readonly number[] | null = null;
  if (opts.base !== undefined) {
    if (typeof opts.base !== 'object' || opts.base === null) throw invalidParameter('base', '{tensor, id?}', opts.base);
    checkKeys(opts.base, new Set(['tensor', 'id']), 'base');
    checkTensor(opts.base.tensor, 'base.tensor');
    const bt = opts.base.tensor;
    const rel = baseRelation(t, bt);
    if (rel === null)
      throw invalidParameter(
        'base.tensor',
        `a ${t.dtype}[${t.shape.join(', ')}] tensor, a cast of one, or one with another first dimension`,
        `${bt.dtype}[${bt.shape.join(', ')}]`,
      );
    if (rel !== 'same') {
      n.baseDtype = DTYPES[bt.dtype].code;
      baseShape = bt.shape;
    }
    if (opts.base.id !== undefined) {
      if (typeof opts.base.id !== 'string' || !/^[0-9a-f]{32}$/.test(opts.base.id))
        throw invalidParameter('base.id', 'content id (32 hex chars)', opts.base.id);
      n.baseId = opts.base.id;
    }
    base = bt.data;
  }
  const codec = resolveCodec(opts.codec, base !== null, t.dtype);
  n.codec = codec;
  if (opts.level !== undefined) {
    if (!isInt(opts.level, -7, 22)) throw invalidParameter('level', 'integer -7..22', opts.level);
    n.level = opts.level;
  }
  if (opts.threads !== undefined) {
    if (!isInt(opts.threads, 1, 256)) throw invalidParameter('threads', 'integer 1..256', opts.threads);
    n.threads = opts.threads;
  }
  if (opts.chunkElems !== undefined) {
    if (!isInt(opts.chunkElems, 1, 2 ** 22))
      throw invalidParameter('chunkElems', 'integer 1..4194304', opts.chunkElems);
    n.chunkElems = opts.chunkElems;
  }
  const lossyCodec = codec >= 7 && codec <= 11;
  if (opts.lossy !== undefined) {
    if (!lossyCodec)
      throw invalidParameter('lossy', `undefined unless codec is one of ${LOSSY_CODECS.join(' ')}`, opts.lossy);
    const l = opts.lossy;
    if (typeof l !== 'object' || l === null) throw invalidParameter('lossy', 'object', l);
    checkKeys(l, LOSSY_KEYS, 'lossy option');
    if (l.block !== undefined) {
      if (!isInt(l.block, 16, 2 ** 24)) throw invalidParameter('lossy.block', 'integer 16..16777216', l.block);
      n.block = l.block;
    }
    for (const k of ['fraction', 'energy'] as const) {
      const v = l[k];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw invalidParameter(`lossy.${k}`, 'number in [0, 1]', v);
      n[k] = v;
    }
    if (l.topk !== undefined) {
      if (!isInt(l.topk, 0, Number.MAX_SAFE_INTEGER))
        throw invalidParameter('lossy.topk', 'non-negative integer', l.topk);
      n.topk = l.topk;
    }
    if (l.threshold !== undefined) {
      if (typeof l.threshold !== 'number' || !(l.threshold >= 0) || !Number.isFinite(l.threshold))
        throw invalidParameter('lossy.threshold', 'non-negative finite number', l.threshold);
      n.threshold = l.threshold;
    }
    if (l.axis !== undefined) {
      if (l.axis !== 'row' && l.axis !== 'col') throw invalidParameter('lossy.axis', '"row" or "col"', l.axis);
      n.axis = l.axis === 'row' ? 0 : 1;
    }
    for (const k of ['rank', 'maxRank'] as const) {
      const v = l[k];
      if (v === undefined) continue;
      if (!isInt(v, 1, 65536)) throw invalidParameter(`lossy.${k}`, 'integer 1..65536', v);
      n[k] = v;
    }
  }
  if (
    codec === 9 &&
    !(
      opts.lossy &&
      (opts.lossy.fraction !== undefined || opts.lossy.topk !== undefined || opts.lossy.threshold !== undefined)
    )
  )
    throw invalidParameter('lossy', 'one of {fraction, topk, threshold} for SPARSE_TOPK', opts.lossy);
  if (baseShape) n.baseShape = baseShape;
  return { data: t.data, dtype: DTYPES[t.dtype].code, shape: t.shape, base, opts: n };
}

type NativeEncoded = {
  bytes: Buffer;
  codec: number;
  lossy: boolean;
  maxAbsError: number;
  relL2Error: number;
  id: string;
};

function toEncoded(r: NativeEncoded): EncodedObject {
  const out: EncodedObject = { bytes: r.bytes, codec: CODEC_NAMES[r.codec], lossy: r.lossy, id: r.id };
  if (r.lossy) {
    out.maxAbsError = r.maxAbsError;
    out.relL2Error = r.relL2Error;
  }
  return out;
}

/**
 * Encodes a tensor. Runs on the libuv pool (split across threads above 1 MiB) at or
 * above ENCODE_ASYNC_BYTES, inline below it.
 *
 * @example
 * const { bytes, codec } = await encode(t, { level: 3 });
 */
export function encode(t: Tensor, opts?: EncodeOptions): Promise<EncodedObject> {
  let a: NativeArgs;
  try {
    a = encodeArgs(t, opts);
  } catch (e) {
    return Promise.reject(e);
  }
  if (a.data.byteLength < ENCODE_ASYNC_BYTES) {
    try {
      return Promise.resolve(toEncoded(callSync(() => native.codecEncode(a.data, a.dtype, a.shape, a.base, a.opts))));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return callAsync(() => native.codecEncodeAsync(a.data, a.dtype, a.shape, a.base, a.opts)).then(toEncoded);
}

/** Encodes on the calling thread: for small tensors. */
export function encodeSync(t: Tensor, opts?: EncodeOptions): EncodedObject {
  const a = encodeArgs(t, opts);
  return toEncoded(callSync(() => native.codecEncode(a.data, a.dtype, a.shape, a.base, a.opts)));
}

/**
 * The CAST object of a tensor that is exactly the cast of its base (an empty residual), built from
 * the ids alone: neither tensor is read. Ingest uses it when a new tensor's content id is the
 * recorded RNE-cast id of a stored tensor (lib/similarity/cast-index.ts); the bytes are those
 * `encode(t, { base })` writes for such a tensor, and decode verifies `id` as for every object.
 */
export function encodePureCast(
  t: { dtype: DType; shape: readonly number[] },
  id: string,
  base: { dtype: DType; id: string },
  rounding: 'RNE' | 'RTZ' = 'RNE',
  opts: { level?: number; chunkElems?: number } = {},
): EncodedObject {
  if (!CAST_DTYPES.has(t.dtype)) throw invalidParameter('dtype', 'one of F64 F32 F16 BF16', t.dtype);
  if (!CAST_DTYPES.has(base.dtype) || base.dtype === t.dtype)
    throw invalidParameter('base.dtype', `one of F64 F32 F16 BF16 other than ${t.dtype}`, base.dtype);
  const r = CAST_ROUNDINGS.indexOf(rounding);
  if (r < 0) throw invalidParameter('rounding', '"RNE" or "RTZ"', rounding);
  return toEncoded(
    callSync(() =>
      native.codecPureCast(DTYPES[t.dtype].code, t.shape.slice(), id, DTYPES[base.dtype].code, base.id, r, opts),
    ),
  );
}

function decodeArgs(bytes: unknown, base: BaseRef | null | undefined, opts: DecodeOptions | undefined) {
  if (!(bytes instanceof Uint8Array)) throw invalidParameter('bytes', 'Uint8Array or Buffer', bytes);
  let b: Uint8Array | null = null;
  if (base !== undefined && base !== null) {
    if (typeof base !== 'object') throw invalidParameter('base', '{tensor, id?}', base);
    checkKeys(base, new Set(['tensor', 'id']), 'base');
    checkTensor(base.tensor, 'base.tensor');
    b = base.tensor.data;
  }
  const o = opts ?? {};
  checkKeys(o, DECODE_KEYS, 'decode option');
  if (o.out !== undefined && !(o.out instanceof Uint8Array)) throw invalidParameter('out', 'Uint8Array', o.out);
  if (o.threads !== undefined && !isInt(o.threads, 1, 256))
    throw invalidParameter('threads', 'integer 1..256', o.threads);
  if (o.verify !== undefined && typeof o.verify !== 'boolean') throw invalidParameter('verify', 'boolean', o.verify);
  const h = inspectObject(bytes);
  if (h.baseId !== null && base && base.id !== undefined && base.id !== h.baseId)
    throw new BaseMismatchError(`object was made against base ${h.baseId}, got base id ${base.id}`, {
      expected: h.baseId,
      got: base.id,
    });
  return { bytes, base: b, out: o.out ?? null, threads: o.threads ?? 0, verify: o.verify ?? true, header: h };
}

function toTensor(h: ObjectHeader, data: Uint8Array): Tensor {
  return { dtype: h.dtype, shape: h.shape, data };
}

/**
 * Decodes an object, verifying its content id. Deltas need their base
 * (BaseMismatchError otherwise); corrupt bytes raise CorruptObjectError or
 * ChecksumMismatchError, never wrong data.
 *
 * @example
 * const t = await decode(obj.bytes, { tensor: baseTensor });
 */
export function decode(bytes: Uint8Array, base?: BaseRef | null, opts?: DecodeOptions): Promise<Tensor> {
  let a: ReturnType<typeof decodeArgs>;
  try {
    a = decodeArgs(bytes, base, opts);
  } catch (e) {
    return Promise.reject(e);
  }
  if (a.header.nbytes < DECODE_ASYNC_BYTES) {
    try {
      return Promise.resolve(
        toTensor(
          a.header,
          callSync(() => native.codecDecode(a.bytes, a.base, a.out, a.threads, a.verify)),
        ),
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return callAsync(() => native.codecDecodeAsync(a.bytes, a.base, a.out, a.threads, a.verify)).then((d) =>
    toTensor(a.header, d),
  );
}

/** Codecs whose chunks `decodeChunk` decodes alone. */
export const CHUNK_DECODABLE: ReadonlySet<CodecName> = new Set<CodecName>([
  'ZSTD',
  'PLANES',
  'DELTA_XOR',
  'DELTA_ORDERED',
  'DELTA_EXPMANT',
  'SPARSE_UPDATE',
]);

/**
 * Decodes chunk `k` alone of a chunked lossless object (codec in CHUNK_DECODABLE): the elements
 * [k * chunkElems, min((k + 1) * chunkElems, numel)), given `base`, the base's bytes of the same
 * elements (null for an object without a base). Only the framing is checked: a chunk has no content
 * id, so this serves estimates (which delta base to choose), never data that is kept. Synchronous
 * (one chunk, about 1 MiB of work).
 *
 * @example
 * const h = inspectObject(obj);
 * const first = decodeChunk(obj, 0, null); // elements [0, h.chunkElems)
 */
export function decodeChunk(bytes: Uint8Array, k: number, base: Uint8Array | null, out?: Uint8Array): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw invalidParameter('bytes', 'Uint8Array or Buffer', bytes);
  if (base !== null && !(base instanceof Uint8Array)) throw invalidParameter('base', 'Uint8Array or null', base);
  const h = inspectObject(bytes);
  const esize = DTYPES[h.dtype].size;
  const numel = h.nbytes / esize;
  if (!isInt(k, 0, Number.MAX_SAFE_INTEGER) || !h.chunkElems || k * h.chunkElems >= numel)
    throw invalidParameter('k', `chunk index below ${h.chunkElems ? Math.ceil(numel / h.chunkElems) : 0}`, k);
  const len = Math.min(h.chunkElems, numel - k * h.chunkElems) * esize;
  const dst = out ?? new Uint8Array(len);
  return callSync(() => native.codecDecodeChunk(bytes, k, base, dst));
}

/**
 * True when `upper` (a delta whose base is the object `lower`) and `lower` can be decoded as a pair
 * by `decodePair`: both chunk-decodable (CHUNK_DECODABLE) with the same dtype, element count and
 * chunk size. Headers from `inspectObject`.
 */
export function pairDecodable(lower: ObjectHeader, upper: ObjectHeader): boolean {
  return (
    CHUNK_DECODABLE.has(lower.codec) &&
    CHUNK_DECODABLE.has(upper.codec) &&
    upper.baseId === lower.id &&
    lower.dtype === upper.dtype &&
    lower.nbytes === upper.nbytes &&
    lower.chunkElems === upper.chunkElems
  );
}

/**
 * Decodes a delta `upper` whose base is the object `lower` in one pass (kernels DecodePair): chunk by
 * chunk, lower's chunk is decoded into a cache-sized buffer and upper's chunk applied to it, so
 * lower's tensor is never written out whole and read back. `lowerBase`: lower's own base tensor when
 * lower is a delta, else null. Writes `out` (exactly upper's decoded size) and resolves with upper's
 * tensor over it: the bytes of `decode(upper, decode(lower))`. Neither content id is checked (lower
 * never exists whole): only for a caller that verifies the result another way before anything
 * relies on it (checkout checks the file's sha256). Requires `pairDecodable` (else an
 * UnsupportedError from the native side). Off the event loop at or above DECODE_ASYNC_BYTES.
 */
export function decodePair(
  lower: Uint8Array,
  lowerBase: Tensor | null,
  upper: Uint8Array,
  out: Uint8Array,
  opts: { threads?: number } = {},
): Promise<Tensor> {
  let h: ObjectHeader;
  try {
    if (!(lower instanceof Uint8Array)) throw invalidParameter('lower', 'Uint8Array or Buffer', lower);
    if (!(upper instanceof Uint8Array)) throw invalidParameter('upper', 'Uint8Array or Buffer', upper);
    if (!(out instanceof Uint8Array)) throw invalidParameter('out', 'Uint8Array', out);
    if (lowerBase !== null) checkTensor(lowerBase, 'lowerBase');
    checkKeys(opts, new Set(['threads']), 'decodePair option');
    if (opts.threads !== undefined && !isInt(opts.threads, 1, 256))
      throw invalidParameter('threads', 'integer 1..256', opts.threads);
    h = inspectObject(upper);
  } catch (e) {
    return Promise.reject(e);
  }
  const base = lowerBase ? lowerBase.data : null;
  const threads = opts.threads ?? 0;
  if (h.nbytes < DECODE_ASYNC_BYTES) {
    try {
      return Promise.resolve(
        toTensor(
          h,
          callSync(() => native.codecDecodePair(lower, base, upper, out, threads)),
        ),
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return callAsync(() => native.codecDecodePairAsync(lower, base, upper, out, threads)).then((d) => toTensor(h, d));
}

/** Decodes on the calling thread: for small objects. */
export function decodeSync(bytes: Uint8Array, base?: BaseRef | null, opts?: DecodeOptions): Tensor {
  const a = decodeArgs(bytes, base, opts);
  return toTensor(
    a.header,
    callSync(() => native.codecDecode(a.bytes, a.base, a.out, a.threads, a.verify)),
  );
}

function castArgs(t: Tensor, dtype: DType, rounding: 'RNE' | 'RTZ'): [Uint8Array, number, number, number] {
  checkTensor(t, 'tensor');
  if (!CAST_DTYPES.has(t.dtype)) throw invalidParameter('tensor.dtype', 'one of F64 F32 F16 BF16', t.dtype);
  if (!CAST_DTYPES.has(dtype) || dtype === t.dtype)
    throw invalidParameter('dtype', `one of F64 F32 F16 BF16 other than ${t.dtype}`, dtype);
  const r = CAST_ROUNDINGS.indexOf(rounding);
  if (r < 0) throw invalidParameter('rounding', '"RNE" or "RTZ"', rounding);
  return [t.data, DTYPES[t.dtype].code, DTYPES[dtype].code, r];
}

/**
 * Casts a float tensor to another float dtype (F64, F32, F16, BF16) exactly as the CAST codec
 * predicts a tensor from its base: one rounding, `'RNE'` (to nearest even, the default) or
 * `'RTZ'` (toward zero, truncation); NaNs keep sign and top payload bits (quiet), widening is
 * exact bit for bit. Runs on the libuv pool at or above ASYNC_THRESHOLD_BYTES, inline below it.
 *
 * @example
 * const bf16 = await castTensor(f32Tensor, 'BF16');         // what torch's .to(torch.bfloat16) gives
 * const cut = await castTensor(f32Tensor, 'BF16', 'RTZ');   // the top 16 bits of each element
 */
export function castTensor(t: Tensor, dtype: DType, rounding: 'RNE' | 'RTZ' = 'RNE'): Promise<Tensor> {
  let a: ReturnType<typeof castArgs>;
  try {
    a = castArgs(t, dtype, rounding);
  } catch (e) {
    return Promise.reject(e);
  }
  if (t.data.byteLength < ASYNC_THRESHOLD_BYTES) {
    try {
      return Promise.resolve(castTensorSync(t, dtype, rounding));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return callAsync(() => native.codecCastAsync(...a)).then((data) => ({ dtype, shape: t.shape.slice(), data }));
}

/** `castTensor` on the calling thread: for small tensors (samples, tests). */
export function castTensorSync(t: Tensor, dtype: DType, rounding: 'RNE' | 'RTZ' = 'RNE'): Tensor {
  const a = castArgs(t, dtype, rounding);
  return { dtype, shape: t.shape.slice(), data: callSync(() => native.codecCast(...a)) };
}

/**
 * CAST roundings by their code in the object: round to nearest even, and
 * truncation (round toward zero). Widening casts are exact and record RNE.
 */
export const CAST_ROUNDINGS = ['RNE', 'RTZ'] as const;

function parseParams(codec: CodecName, p: Buffer): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  switch (codec) {
    case 'QUANT_INT8':
    case 'QUANT_INT16':
      if (p.length >= 4) out.block = p.readUInt32LE(0);
      break;
    case 'SPARSE_TOPK':
      if (p.length >= 16) {
        out.threshold = p.readDoubleLE(0);
        out.kept = Number(p.readBigUInt64LE(8));
      }
      break;
    case 'PER_AXIS_SCALED':
      if (p.length >= 9) {
        out.axis = p[0] === 0 ? 'row' : 'col';
        out.groups = Number(p.readBigUInt64LE(1));
      }
      break;
    case 'LOW_RANK':
      if (p.length >= 4) out.rank = p.readUInt32LE(0);
      break;
    case 'CAST':
      if (p.length >= 2 && p[0] & 0x80) {
        // Compact layout: 1 d d r 0 0 i i, then the residual as LEB128 (docs/codecs.md).
        out.baseDtype = dtypeFromCode((p[0] >> 5) & 3);
        out.rounding = CAST_ROUNDINGS[(p[0] >> 4) & 1];
        out.inner = CODEC_NAMES[3 + (p[0] & 3)] ?? String(3 + (p[0] & 3));
        let v = 0;
        for (let i = 1, mul = 1; i < p.length; i++, mul *= 128) v += (p[i] & 0x7f) * mul;
        out.residual = v;
      } else if (p.length >= 12) {
        out.baseDtype = dtypeFromCode(p[0]);
        out.rounding = CAST_ROUNDINGS[p[1]] ?? String(p[1]);
        out.inner = CODEC_NAMES[p[2]] ?? String(p[2]);
        out.residual = Number(p.readBigUInt64LE(4));
      }
      break;
    case 'ROWS':
      if (p.length >= 44) {
        out.baseRows = Number(p.readBigUInt64LE(0));
        out.rowStart = Number(p.readBigUInt64LE(8));
        out.baseRowStart = Number(p.readBigUInt64LE(16));
        out.sharedRows = Number(p.readBigUInt64LE(24));
        out.inner = CODEC_NAMES[p[33]] ?? String(p[33]);
        out.residual = Number(p.readBigUInt64LE(36));
      }
      break;
    default:
      break;
  }
  return out;
}

/**
 * Reads and validates an object's header (cheap, no payload decode).
 *
 * @example
 * inspectObject(obj.bytes).codec // 'PLANES'
 */
export function inspectObject(bytes: Uint8Array): ObjectHeader {
  if (!(bytes instanceof Uint8Array)) throw invalidParameter('bytes', 'Uint8Array or Buffer', bytes);
  const r = callSync(() => native.codecInspect(bytes));
  const codec = CODEC_NAMES[r.codec];
  return {
    version: r.version,
    codec,
    dtype: dtypeFromCode(r.dtype),
    shape: r.shape.map((d) => Number(d)),
    lossy: r.lossy,
    level: r.level,
    chunkElems: r.chunkElems,
    id: r.id,
    baseId: r.baseId,
    maxAbsError: r.maxAbsError,
    relL2Error: r.relL2Error,
    params: parseParams(codec, r.params),
    headerSize: r.headerSize,
    payloadSize: r.payloadSize,
    nbytes: r.nbytes,
  };
}

/**
 * Estimated object size of every lossless candidate, smallest first, as the
 * automatic choice sees it (zstd on up to four 16Ki-element samples).
 *
 * @example
 * (await estimate(t, { base }))[0].codec // what 'auto' would pick
 */
export function estimate(
  t: Tensor,
  opts?: Pick<EncodeOptions, 'base' | 'level' | 'threads'>,
): Array<{ codec: CodecName; bytes: number }> {
  const a = encodeArgs(t, opts);
  const r = callSync(() => native.codecEstimate(a.data, a.dtype, a.shape, a.base, a.opts));
  return r.map((e) => ({ codec: CODEC_NAMES[e.codec], bytes: e.bytes })).sort((x, y) => x.bytes - y.bytes);
}
