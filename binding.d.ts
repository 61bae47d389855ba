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
/** Async native operations queued on / running in the libuv pool. */
export function counters(): { queued: number; running: number };

// ---- hashing (native/bindings/hash.cc → kernels/hash.h) -----------------------------------

/** Content id (32 hex chars) of a tensor, on the calling thread (kernels ContentId). */
export function contentId(data: Bytes, dtype: number, shape: Shape): string;
/** Content id computed off the event loop, split across threads (kernels ContentId). */
export function contentIdAsync(data: Bytes, dtype: number, shape: Shape): Promise<string>;
/** Content ids of many tensors in one pool job (kernels ContentId). */
export function contentIdBatch(items: ReadonlyArray<{ data: Bytes; dtype: number; shape: Shape }>): Promise<string[]>;
/** Plain XXH3-128 of bytes, hex in canonical big-endian order, as `xxhsum -H2` prints (kernels Xxh3_128). */
export function xxh3_128(data: Bytes): string;
/** Plain XXH3-128 off the event loop (kernels Xxh3_128). */
export function xxh3_128Async(data: Bytes): Promise<string>;
