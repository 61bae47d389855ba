/**
 * Content ids: XXH3-128 over a canonical description (dtype, shape) plus the
 * tensor's bytes, defined in docs/content-ids.md. The id never depends on the
 * thread count. Small tensors hash inline; large ones off the event loop.
 *
 * @example
 * const id = await contentId(tensor('F32', [3], new Float32Array([1, 2, 3])));
 */
import { ASYNC_THRESHOLD_BYTES, callAsync, callSync, native } from './native';
import { DTYPES } from './tensor/dtype';
import type { Tensor } from './tensor/tensor';

/** A content id: 32 lowercase hex characters. */
export type ContentId = string;

/** Content id of a tensor; runs on the libuv pool above ASYNC_THRESHOLD_BYTES. */
export function contentId(t: Tensor): Promise<ContentId> {
  if (t.data.byteLength < ASYNC_THRESHOLD_BYTES) {
    try {
      return Promise.resolve(contentIdSync(t));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return callAsync(() => native.contentIdAsync(t.data, DTYPES[t.dtype].code, t.shape));
}

/** Content id computed on the calling thread: for small tensors. */
export function contentIdSync(t: Tensor): ContentId {
  return callSync(() => native.contentId(t.data, DTYPES[t.dtype].code, t.shape));
}

/** Content ids of many tensors in one native job. */
export function contentIds(ts: readonly Tensor[]): Promise<ContentId[]> {
  return callAsync(() =>
    native.contentIdBatch(ts.map((t) => ({ data: t.data, dtype: DTYPES[t.dtype].code, shape: t.shape }))),
  );
}

/** Plain XXH3-128 of bytes (hex, as `xxhsum -H2` prints it). */
export function xxh3(data: ArrayBufferView | ArrayBuffer): Promise<string> {
  const n = data.byteLength;
  if (n < ASYNC_THRESHOLD_BYTES) return Promise.resolve(callSync(() => native.xxh3_128(data)));
  return callAsync(() => native.xxh3_128Async(data));
}

/** The cast ids computed beside a content id: what the tensor's RNE cast to `dtype` would be named. */
export interface CastId {
  dtype: 'BF16' | 'F16' | 'F32';
  id: ContentId;
}

/** Narrower dtypes whose RNE-cast ids `contentIdWithCasts` computes, by source dtype. */
export const CAST_ID_TARGETS: Readonly<Partial<Record<string, ReadonlyArray<CastId['dtype']>>>> = {
  F32: ['BF16', 'F16'],
  F64: ['F32'],
};

/**
 * Content id of `t` plus the content ids of its round-to-nearest-even casts
 * (F32 -> BF16 and F16, F64 -> F32; none for other dtypes), in one native pass
 * over the bytes that never builds the casts (docs/content-ids.md). Off the
 * event loop above ASYNC_THRESHOLD_BYTES, like `contentId`.
 *
 * @example
 * const { id, casts } = await contentIdWithCasts(f32Tensor); // casts[0].id: the id of its BF16 cast
 */
export async function contentIdWithCasts(t: Tensor): Promise<{ id: ContentId; casts: CastId[] }> {
  const targets = CAST_ID_TARGETS[t.dtype];
  if (!targets) return { id: await contentId(t), casts: [] };
  const codes = targets.map((d) => DTYPES[d].code);
  const r =
    t.data.byteLength < ASYNC_THRESHOLD_BYTES
      ? callSync(() => native.contentIdCasts(t.data, DTYPES[t.dtype].code, t.shape, codes))
      : await callAsync(() => native.contentIdCastsAsync(t.data, DTYPES[t.dtype].code, t.shape, codes));
  return { id: r.id, casts: targets.map((dtype, i) => ({ dtype, id: r.casts[i] })) };
}
