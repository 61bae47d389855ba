/**
 * Content ids: XXH3-128 over a canonical description (dtype, shape) plus the
 * tensor's bytes, defined in docs/content-ids.md. The id never depends on the
 * thread count. Small tensors hash inline; large ones off the event loop.
 *
 * @example
 * const id = await contentId(tensor('F32', [3], new Float32Array([1, 2, 3])));
 */
import * as crypto from 'node:crypto';
import type * as Binding from '../binding';
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

/** Pieces below this size are gathered (copied) into one pool job instead of one job each. */
const SHA_BATCH_BYTES = 1 << 20;

/**
 * The SHA-256 of a file's bytes given piece by piece, in order, computed on
 * the libuv pool (native Sha256: the host's OpenSSL) so the event loop keeps
 * dispatching the other stages of an ingest while it runs. Where native code
 * has no SHA-256 it runs on the calling thread through node:crypto, in 2 MiB
 * slices with a turn of the event loop between them.
 *
 * `update(b)` resolves once `b` is hashed: until then `b` must not change or
 * go back to a buffer pool. Small pieces are copied (and resolve at once). A
 * failure surfaces from `digest()` as well.
 *
 * @example
 * const h = new OrderedSha256();
 * await Promise.all([h.update(a), h.update(b)]);
 * const hex = await h.digest();
 */
export class OrderedSha256 {
  private readonly nat: Binding.Sha256 | null;
  private readonly js: crypto.Hash | null;
  private chain: Promise<void> = Promise.resolve();
  private batch: Buffer | null = null;
  private fill = 0;

  /** `opts.native: false` hashes through node:crypto even where native SHA-256 exists (tests). */
  constructor(opts: { native?: boolean } = {}) {
    this.nat = opts.native !== false && native.sha256Available() ? callSync(() => new native.Sha256()) : null;
    this.js = this.nat ? null : crypto.createHash('sha256');
  }

  update(b: Uint8Array): Promise<void> {
    if (this.js) {
      const p = this.chain.then(() => sliced(this.js!, b));
      this.chain = p;
      return p;
    }
    if (b.byteLength < SHA_BATCH_BYTES / 4) {
      if (this.fill + b.byteLength > SHA_BATCH_BYTES) this.flush();
      this.batch ??= Buffer.allocUnsafe(SHA_BATCH_BYTES);
      this.batch.set(b, this.fill);
      this.fill += b.byteLength;
      return Promise.resolve();
    }
    this.flush();
    return this.submit(b);
  }

  /** The hex digest, once every piece is hashed; the hasher is done afterwards. */
  async digest(): Promise<string> {
    this.flush();
    await this.chain;
    return this.js ? this.js.digest('hex') : callSync(() => this.nat!.digestHex());
  }

  private submit(b: Uint8Array): Promise<void> {
    const p = this.chain.then(() => callAsync(() => this.nat!.updateAsync(b)));
    this.chain = p;
    return p;
  }

  /** Hands the gathered small pieces over (a copy, so the batch buffer can fill again). */
  private flush(): void {
    if (!this.fill) return;
    const piece = Buffer.from(this.batch!.subarray(0, this.fill));
    this.fill = 0;
    void this.submit(piece).catch(() => undefined); // surfaces from the chain (digest)
  }
}

/** node:crypto in 2 MiB slices, yielding to the event loop between them. */
async function sliced(h: crypto.Hash, b: Uint8Array): Promise<void> {
  const step = 2 << 20;
  for (let o = 0; o < b.byteLength; o += step) {
    h.update(b.subarray(o, Math.min(b.byteLength, o + step)));
    if (b.byteLength > step) await new Promise((r) => setImmediate(r));
  }
}
