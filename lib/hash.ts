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
