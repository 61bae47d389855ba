/**
 * The typed surface of the native addon (build/Release/coral.node or a
 * prebuild). This file is the only declaration of what C++ exports; lib/native.ts
 * loads the addon and is the only module that imports these declarations
 * directly. Every function below names the kernel it wraps.
 *
 * Conventions: byte inputs are borrowed zero-copy (any Buffer, TypedArray,
 * DataView or ArrayBuffer, honouring byteOffset) and must not be mutated until
 * an async call settles. dtype is the numeric code of lib/tensor/dtype.ts.
 * Errors carry a `code` string (CORAL_*), mapped to CoralError classes in lib/errors.ts.
 */

/** Any contiguous byte container accepted zero-copy. */
export type Bytes = ArrayBufferView | ArrayBuffer;
/** Dimensions: non-negative safe integers or bigints. */
export type Shape = ReadonlyArray<number | bigint>;

// ---- runtime (native/bindings/runtime.cc) --------------------------------------------------

/** sha256 of the native sources this binary was built from (scripts/native-digest.js). */
export const sourceDigest: string;
/** Build facts: CPU path chosen and linked library versions. */
export const features: { readonly avx2: boolean; readonly zstdVersion: string; readonly hdf5Version: string };
/** Thread budget of data-parallel kernels (kernels/parallel.h MaxThreads). */
export function threads(): number;
/** Sets the kernel thread budget, 1..256 (kernels/parallel.h SetMaxThreads). */
export function setThreads(n: number): void;
/**
 * Async native operations queued on / running in the libuv pool, and the pool of large result
 * buffers (util/big_buffer.h): bytes held, and large allocations served from it or freshly mapped.
 */
export function counters(): { queued: number; running: number; pooledBytes: number; poolHits: number; poolMisses: number };
/**
 * `size` uninitialised bytes from the large-buffer pool (util/big_buffer.h BigBuffer::Take); the
 * memory returns to the pool when the Buffer is collected. For big, short-lived buffers.
 */
export function allocBuffer(size: number): Buffer;
/**
 * Gives a whole pooled buffer (allocBuffer, decode/encode results, pack reads) back to the pool
 * now (util/napi_util.h RecycleBig): its ArrayBuffer is detached, so `buf` and every view of it
 * become empty. False, changing nothing, for any other value or a part of one.
 */
export function recycleBuffer(buf: Uint8Array): boolean;
/**
 * Bounds the bytes the large-buffer pool keeps (default 256 MiB); lowering it unmaps the surplus at
 * once. Returns the previous bound.
 */
export function setPoolLimit(bytes: number): number;

// ---- hashing (native/bindings/hash.cc → kernels/hash.h) -----------------------------------

/** Content id (32 hex chars) of a tensor, on the calling thread (kernels ContentId). */
export function contentId(data: Bytes, dtype: number, shape: Shape): string;
/** Content id computed off the event loop, split across threads (kernels ContentId). */
export function contentIdAsync(data: Bytes, dtype: number, shape: Shape): Promise<string>;
/** Content ids of many tensors in one pool job (kernels ContentId). */
export function contentIdBatch(items: ReadonlyArray<{ data: Bytes; dtype: number; shape: Shape }>): Promise<string[]>;
/**
 * Content id plus the ids of the tensor's RNE casts to `targets` (dtype codes; F32 -> BF16/F16,
 * F64 -> F32), in one pass without materialising the casts (kernels ContentIdWithCasts).
 */
export function contentIdCasts(data: Bytes, dtype: number, shape: Shape, targets: number[]): { id: string; casts: string[] };
/** contentIdCasts off the event loop, split across threads. */
export function contentIdCastsAsync(
  data: Bytes,
  dtype: number,
  shape: Shape,
  targets: number[],
): Promise<{ id: string; casts: string[] }>;
/** Plain XXH3-128 of bytes, hex in canonical big-endian order, as `xxhsum -H2` prints (kernels Xxh3_128). */
export function xxh3_128(data: Bytes): string;
/** Plain XXH3-128 off the event loop (kernels Xxh3_128). */
export function xxh3_128Async(data: Bytes): Promise<string>;

// ---- stats (native/bindings/stats.cc → kernels/stats.h) -----------------------------------

/** Element-wise comparison of two same-dtype tensors (kernels ComputeDiffStats). Sums skip non-finite pairs. */
export interface DiffStats {
  /** Elements whose bit patterns differ. */
  changed: number;
  /** Element pairs with NaN/Inf on either side, excluded from the sums. */
  nonFinite: number;
  maxAbs: number;
  sumSqDiff: number;
  sumSqA: number;
  sumSqB: number;
  dot: number;
}
/** Diff metrics on the calling thread (kernels ComputeDiffStats). */
export function diffStats(dtype: number, a: Bytes, b: Bytes): DiffStats;
/** Diff metrics off the event loop, split across threads (kernels ComputeDiffStats). */
export function diffStatsAsync(dtype: number, a: Bytes, b: Bytes): Promise<DiffStats>;

// ---- packs (native/bindings/pack.cc → kernels/h5pack.h) -----------------------------------

/**
 * Attributes given to PackWriter.put; stored as HDF5 attributes of the object's dataset, or as the
 * fields of its /small/index row for objects below smallObjectMax (docs/store.md).
 */
export interface PackPutAttrs {
  codec: string;
  dtype: string;
  /** Decoded tensor shape; [] for a 0-d scalar. Stored as an int64 array. */
  shape: Shape;
  /** Content id of the delta base, "" (or absent) when none. */
  base?: string;
  /** Decoded size in bytes (uint64). */
  rawSize: number | bigint;
  /** Extra string attributes; names match /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/ and are not reserved. */
  extra?: Readonly<Record<string, string>>;
}
/**
 * What a put recorded: XXH3-128 hex of the stored bytes, their size, file offset (null when empty,
 * and for small objects, whose offset is known only after finish) and the dataset holding the
 * bytes: "/objects/<id>" or, for objects below smallObjectMax, the part "/small/data<k>".
 * `room`: bytes the small-object part being filled can still take; a later small put of at most
 * that many bytes only copies them (it writes nothing to the file), so it is cheap on the calling thread.
 */
export interface PackPutResult { checksum: string; size: number; offset: number | null; dataset: string; room: number }
/** One object of a pack, as read back from its dataset attributes or its /small/index row. */
export interface PackEntry {
  id: string;
  codec: string;
  dtype: string;
  shape: number[];
  base: string;
  rawSize: number;
  checksum: string;
  /** Stored bytes. */
  size: number;
  /** Byte offset of the object's bytes in the file (contiguous either way); null for empty objects. */
  offset: number | null;
  /**
   * "/objects/<id>" (one dataset with attributes) or, for a row of /small/index, the part that holds
   * its bytes: "/small/data<k>" (coral-pack-3), "/small/data" (coral-pack-2).
   */
  dataset: string;
  extra: Record<string, string>;
}
/** Options of `new PackWriter(path, options)`. */
export interface PackWriterOptions {
  /**
   * Objects with fewer stored bytes go into /small (8 MiB parts + one table). Default 1048576 (1 MiB);
   * at most 8 MiB (larger values are clamped); 0 disables.
   */
  smallObjectMax?: number;
}
/** What PackWriter.finish resolves with: the file size and every object, sorted by id, with final offsets. */
export interface PackFinishResult { size: number; entries: PackEntry[] }
/** Pack-level attributes. */
export interface PackMeta { format: string; created: string; createdUnixMs: number }

/**
 * Writes one HDF5 pack (kernels PackWriterFile). `new PackWriter(path)` creates the file
 * exclusively (fails if it exists). Put objects, then `finish()` (flush, close, fsync).
 * Await every putAsync before finish. After finish/abort every method but abort throws.
 */
export class PackWriter {
  private __brand: 'PackWriter';
  constructor(path: string, options?: PackWriterOptions);
  /** Appends one object on the calling thread (kernels PackWriterFile::Put). */
  put(id: string, data: Bytes, attrs: PackPutAttrs): PackPutResult;
  /** Appends one object off the event loop; `data` must not change until it settles. */
  putAsync(id: string, data: Bytes, attrs: PackPutAttrs): Promise<PackPutResult>;
  /** Objects written so far. */
  count(): number;
  /** Writes the small-object table, flushes, closes and fsyncs (kernels PackWriterFile::Finish). */
  finish(): Promise<PackFinishResult>;
  /** Closes without fsync; the caller deletes the file. Idempotent. */
  abort(): void;
}

/**
 * A published pack opened read-only (kernels PackReaderFile). Throws CORAL_NOT_FOUND when the
 * file is missing and CORAL_CORRUPT_OBJECT when it is not a readable pack. Every read verifies
 * the stored checksum (CORAL_CHECKSUM_MISMATCH names the object and the pack).
 */
/**
 * Writes one new file front to back, bypassing the page cache where the filesystem allows
 * (native/bindings/file.cc → kernels/direct_io.h AlignedFileWriter; CORAL_NO_DIRECT_IO=1
 * turns that off). `new FileWriter(path, mode?)` creates the file exclusively. Await each call
 * before the next. `finish()` sets the exact size, fsyncs, closes and resolves with the size.
 */
export class FileWriter {
  private __brand: 'FileWriter';
  /**
   * `flags`: FILE_WRITER_SHA256 (1) also hashes the bytes with SHA-256 as appendAsync copies
   * them, on the pool thread (kernels/sha256.h, the host's OpenSSL), when the host offers it
   * (`hashing()`).
   */
  constructor(path: string, mode?: number, flags?: number);
  /**
   * Copies `data` (and hashes it, when hashing) on the libuv pool; full 8 MiB blocks are
   * written by the writer's background thread, so this resolves once the bytes are copied.
   * A background write's error rejects the next call.
   */
  appendAsync(data: Bytes): Promise<void>;
  /** Writes the rest, waits for every block, sets the exact size, fsyncs, closes: the size. */
  finish(): Promise<number>;
  /** Closes without fsync (the caller removes the file); idempotent. */
  abort(): void;
  /** True when the file is written with O_DIRECT. */
  direct(): boolean;
  /** True when made with FILE_WRITER_SHA256 and the host offers SHA-256. */
  hashing(): boolean;
  /** The SHA-256 (hex) of the bytes written, once finish() resolved, when hashing; else null. */
  sha256(): string | null;
}

/** True when native code can compute SHA-256 (kernels/sha256.h: the host's OpenSSL, looked up at run time). */
export function sha256Available(): boolean;

/**
 * A SHA-256 of bytes given in order, hashed on the libuv pool (kernels/sha256.h Sha256). Throws
 * CORAL_UNSUPPORTED when `sha256Available()` is false. Await each call before the next.
 */
export class Sha256 {
  private __brand: 'Sha256';
  constructor();
  /** Hashes `data` on the libuv pool; it must not change until the promise settles. */
  updateAsync(data: Bytes): Promise<void>;
  /** The digest (64 hex characters); the hasher is done afterwards. */
  digestHex(): string;
}

export class PackReader {
  private __brand: 'PackReader';
  constructor(path: string);
  meta(): PackMeta;
  /** One object's attributes; CORAL_NOT_FOUND when absent. */
  stat(id: string): PackEntry;
  /** Every object, in name order, off the event loop (kernels PackReaderFile::List). */
  list(): Promise<PackEntry[]>;
  /** Reads and verifies one object into a new Buffer, off the event loop. */
  read(id: string): Promise<Buffer>;
  readSync(id: string): Buffer;
  /** Reads and verifies into `dst` (at least the stored size); resolves with the byte count. */
  readInto(id: string, dst: Bytes): Promise<number>;
  readIntoSync(id: string, dst: Bytes): number;
  /** Drops this handle; the file closes once pending reads finish. */
  close(): void;
}

// ---- merge (native/bindings/merge.cc → kernels/merge.h, kernels/convert.h) ----------------

/** One input tensor of a merge: bytes borrowed zero-copy, with dtype code and shape. */
export interface MergeTensorArg { data: Bytes; dtype: number; shape: Shape }
/**
 * A numeric merge (kernels Merge). All tensors must share dtype and shape
 * (else CORAL_INVALID_ARGUMENT naming the mismatch). Math in f64 unless
 * precision 'f32'; one round-to-nearest-even into the dtype. See docs/merge-strategies.md.
 */
export interface MergeSpec {
  /** linear: sum w_i*x_i; task-arithmetic / ties / dare: base + lambda * combined task vectors. */
  op: 'linear' | 'task-arithmetic' | 'ties' | 'dare';
  models: ReadonlyArray<MergeTensorArg>;
  /** Common ancestor; required by every op except linear. */
  base?: MergeTensorArg | null;
  /** Caller-allocated result bytes (same length as an input; may alias one). Default: a new Buffer. */
  out?: Bytes;
  /** linear: one finite weight per model (terms with weight 0 are skipped). */
  weights?: readonly number[];
  /** Finite scale of the combined task vector (default 1). */
  lambda?: number;
  /** ties: fraction of entries kept per task vector, 0 < density <= 1 (default 1). */
  density?: number;
  /** dare: drop probability, 0 <= drop < 1 (default 0). */
  drop?: number;
  /** dare: PRNG seed, 0..2^64-1 (default 0). */
  seed?: number | bigint;
  /** dare: TIES sign election + disjoint mean over the pruned task vectors instead of their sum. */
  ties?: boolean;
  /** Accumulator: 'f64' (default) or 'f32' (float dtypes of <= 32 bits only; others stay f64). */
  precision?: 'f64' | 'f32';
  /** Thread budget for this call (0 = runtime threads()). */
  threads?: number;
}
/** Merges on the calling thread (kernels Merge); returns `out` or a new Buffer. */
export function mergeTensors(spec: MergeSpec): Buffer | Bytes;
/** Merges on the libuv pool (kernels Merge); inputs must not change until it settles. */
export function mergeTensorsAsync(spec: MergeSpec): Promise<Buffer | Bytes>;
/** Element conversion through f64 with one RNE rounding (kernels ConvertDType). */
export function convertDType(src: Bytes, srcDtype: number, dstDtype: number, out?: Bytes): Buffer | Bytes;
/** DARE's uniform draw in [0,1) for (seed, model, element) (kernels DareUniform). */
export function dareUniform(seed: bigint, model: bigint, index: bigint): number;
/** Entries TIES keeps per task vector of n elements (kernels TiesKeepCount). */
export function tiesKeepCount(n: number, density: number): number;

// ---- similarity (native/bindings/simhash.cc → kernels/simhash.h, kernels/simhash_index.h) ----

/** SimHash parameters; they define the fingerprint scheme (see docs/similarity.md). */
export interface SimHashOptions {
  /** Signature bits, a multiple of 64 in [64, 1024] (default 256). */
  bits?: number;
  /** Hyperplane / sampling seed, 0..2^64-1 (default 0x636f72616c534831). */
  seed?: number | bigint;
  /** Elements projected at most, a multiple of 16 in [256, 2^22] (default 16384). */
  maxSamples?: number;
  /** Project x - mean (Pearson correlation) instead of x (cosine). Default false. */
  center?: boolean;
}
/** A SimHash fingerprint as the kernel returns it. */
export interface SimHashResult {
  /** bits/8 bytes; hyperplane k is byte k>>3, bit k&7. */
  signature: Buffer;
  numel: number;
  /** Elements projected (numel when numel <= maxSamples). */
  samples: number;
  /** Sampled elements that were NaN/Inf (projected as 0). */
  nonfinite: number;
  /** Mean and root-mean-square of the finite sampled elements. */
  mean: number;
  rms: number;
}
/** Fingerprint on the calling thread (kernels SimHash). */
export function simhash(data: Bytes, dtype: number, shape: Shape, options?: SimHashOptions): SimHashResult;
/** Fingerprint on the libuv pool (kernels SimHash). */
export function simhashAsync(data: Bytes, dtype: number, shape: Shape, options?: SimHashOptions): Promise<SimHashResult>;
/** Fingerprints of many tensors in one pool job (kernels SimHash). */
export function simhashBatch(
  items: ReadonlyArray<{ data: Bytes; dtype: number; shape: Shape }>, options?: SimHashOptions,
): Promise<SimHashResult[]>;
/** Exact cosine of two tensors; ||a - b|| too (kernels Cosine). */
export interface CosineResult {
  /** Cosine (Pearson correlation with center); 0 when a norm is 0. */
  cosine: number;
  normA: number;
  normB: number;
  /** ||a - b||, never centered. */
  normDelta: number;
  /** Element pairs used / skipped because one member was NaN or Inf. */
  count: number;
  skipped: number;
}
/** Exact cosine on the calling thread; dtypes may differ, shape gives the element count (kernels Cosine). */
export function cosine(a: Bytes, aDtype: number, b: Bytes, bDtype: number, shape: Shape, options?: { center?: boolean }): CosineResult;
/** Exact cosine on the libuv pool (kernels Cosine). */
export function cosineAsync(
  a: Bytes, aDtype: number, b: Bytes, bDtype: number, shape: Shape, options?: { center?: boolean },
): Promise<CosineResult>;
/** Hamming distance of two equal-length signatures (kernels HammingDistance). */
export function hamming(a: Bytes, b: Bytes): number;
/** Entry metadata stored in a SimIndex. */
export interface SimIndexMeta {
  dtype: number;
  shape: number[];
  numel: number;
  rms: number;
}
export interface SimIndexHit extends SimIndexMeta {
  id: string;
  hamming: number;
}
/** LSH index over signatures: banding + optional 1-bit multi-probe, Hamming re-rank (kernels SimIndex). */
export class SimIndex {
  private __brand: 'SimIndex';
  /** A new empty index, or one parsed from serialize() output (throws CORAL_CORRUPT_OBJECT / CORAL_UNSUPPORTED). */
  constructor(init: { bits?: number; bandBits?: number; scheme?: string } | Bytes);
  /** Adds or replaces id; numel is derived from shape. */
  insert(id: string, signature: Bytes, dtype: number, shape: Shape, rms?: number): void;
  remove(id: string): boolean;
  has(id: string): boolean;
  get(id: string): (SimIndexMeta & { signature: Buffer }) | null;
  /** Entries with the same numel (and shape / dtype when given) within maxHamming, best first. */
  query(
    signature: Bytes,
    options: { numel: number; k?: number; maxHamming?: number; shape?: Shape; dtype?: number; probes?: 0 | 1; exhaustive?: boolean },
  ): SimIndexHit[];
  /** Compact checksummed bytes ("CORALLSH" v1). */
  serialize(): Buffer;
  ids(): string[];
  /** Heap bytes held by the index. */
  memoryBytes(): number;
  readonly size: number;
  readonly bits: number;
  readonly bandBits: number;
  readonly bands: number;
  readonly scheme: string;
}

// ---- codec (native/bindings/codec.cc → kernels/codec.h) ----------------------------------

/** Codec names in id order (kernels/codec.h Codec). */
export const codecNames: readonly string[];
/**
 * Flat encode options. codec: id (255 = automatic choice); level: zstd level -7..22;
 * threads: 0 = runtime.threads() (a tensor of at most 1 MiB is coded on one thread whatever the
 * budget); chunkElems: elements per chunk (0 = 2^18);
 * lossy knobs: block, fraction, topk, threshold, axis (0 row, 1 col), rank, maxRank, energy;
 * baseId: expected content id of the base (checked).
 * baseDtype, baseShape: the base's dtype code and shape when they differ from the tensor's
 * (a float cast: CAST; another first dimension: ROWS); default: the tensor's own.
 */
export interface CodecEncodeOptions {
  codec?: number; level?: number; threads?: number; chunkElems?: number; block?: number; fraction?: number;
  topk?: number; threshold?: number; axis?: number; rank?: number; maxRank?: number; energy?: number; baseId?: string;
  baseDtype?: number; baseShape?: Shape;
}
/** An encoded object: bytes (header + payload), codec id, measured error (0 when lossless), decoded content id. */
export interface CodecEncodeResult {
  bytes: Buffer; codec: number; lossy: boolean; maxAbsError: number; relL2Error: number; id: string;
}
/** Encodes on the calling thread (kernels Encode). base: same dtype/shape bytes (see baseDtype/baseShape) or null. */
export function codecEncode(data: Bytes, dtype: number, shape: Shape, base: Bytes | null,
  opts?: CodecEncodeOptions): CodecEncodeResult;
/** Encodes on the libuv pool, split across threads (kernels Encode). */
export function codecEncodeAsync(data: Bytes, dtype: number, shape: Shape, base: Bytes | null,
  opts?: CodecEncodeOptions): Promise<CodecEncodeResult>;
/**
 * The CAST object of a tensor that is exactly the `rounding` (0 RNE, 1 RTZ) cast of the base `baseId`,
 * from the ids alone (kernels EncodePureCast): the caller vouches for `id`; decode verifies it.
 */
export function codecPureCast(dtype: number, shape: Shape, id: string, baseDtype: number, baseId: string,
  rounding: number, opts?: CodecEncodeOptions): CodecEncodeResult;
/**
 * Decodes and verifies the content id (kernels Decode). Writes into `out` (exact size) when given
 * and returns it, else returns a new Buffer. threads: 0 = runtime.threads() (one thread for at most
 * 1 MiB decoded). verify: false skips
 * the content id check (for callers that verify the bytes another way; default true).
 */
export function codecDecode(bytes: Bytes, base: Bytes | null, out?: Uint8Array | null, threads?: number,
  verify?: boolean): Buffer;
/** Decode off the event loop (kernels Decode). */
export function codecDecodeAsync(bytes: Bytes, base: Bytes | null, out?: Uint8Array | null,
  threads?: number, verify?: boolean): Promise<Buffer>;
/**
 * Decodes chunk `k` alone (elements [k * chunkElems, …)) of a chunked lossless object into `out` (exactly
 * that chunk's bytes) and returns `out`, given the base's bytes of the same elements (kernels
 * DecodeChunkAt). Nothing is verified but the framing (a chunk has no content id): for estimates only.
 * Unsupported error for RAW, lossy, CAST and ROWS objects. On the calling thread.
 */
export function codecDecodeChunk<T extends Uint8Array>(bytes: Bytes, k: number, base: Bytes | null, out: T): T;
/**
 * Decodes a delta `upper` whose base is the object `lower` in one pass, chunk by chunk, without
 * materialising `lower` (kernels DecodePair): writes `out` (exactly upper's decoded size) and
 * returns it. `lowerBase`: lower's own base tensor when lower is a delta, else null. The bytes are
 * those of decoding lower, then upper against it. Nothing is verified but the framing (no content
 * id: lower never exists whole), for callers that verify the result another way. Unsupported error
 * unless both are chunk-decodable (codecDecodeChunk) with the same dtype, element count and chunk
 * size, and upper's base id is lower's id. threads: 0 = runtime.threads().
 */
export function codecDecodePair<T extends Uint8Array>(lower: Bytes, lowerBase: Bytes | null, upper: Bytes, out: T,
  threads?: number): T;
/** codecDecodePair off the event loop; the buffers must not change until it settles. */
export function codecDecodePairAsync<T extends Uint8Array>(lower: Bytes, lowerBase: Bytes | null, upper: Bytes,
  out: T, threads?: number): Promise<T>;
/** Validated header fields of an object (kernels Inspect). shape entries above 2^53 come back as bigint. */
export function codecInspect(bytes: Bytes): {
  version: number; codec: number; dtype: number; shape: Array<number | bigint>; hasBase: boolean; lossy: boolean;
  level: number; chunkElems: number; id: string; baseId: string | null; maxAbsError: number; relL2Error: number;
  params: Buffer; headerSize: number; payloadSize: number; nbytes: number;
};
/** Estimated object size per lossless candidate codec, from samples (kernels Estimate). */
export function codecEstimate(data: Bytes, dtype: number, shape: Shape, base: Bytes | null,
  opts?: CodecEncodeOptions): Array<{ codec: number; bytes: number }>;
/**
 * Casts every element of src between F64/F32/F16/BF16 (kernels/cast.h CastTensor), the CAST
 * codec's prediction: rounding 0 = nearest even, 1 = toward zero. On the calling thread.
 */
export function codecCast(src: Bytes, fromDtype: number, toDtype: number, rounding: number): Buffer;
/** The same on the libuv pool (kernels/cast.h CastTensor); src must not change until it settles. */
export function codecCastAsync(src: Bytes, fromDtype: number, toDtype: number, rounding: number): Promise<Buffer>;
/** The SPARSE_* position stream: LEB128 gaps from `start` (kernels EncodeIndexStream). */
export function codecEncodeIndexStream(indices: BigUint64Array, start: bigint | number): Buffer;
/** Decodes exactly `count` positions in [start, limit) (kernels DecodeIndexStream). */
export function codecDecodeIndexStream(bytes: Bytes, count: bigint | number, start: bigint | number,
  limit: bigint | number): BigUint64Array;
