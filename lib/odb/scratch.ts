/**
 * Reusable large buffers for one streaming pass (a checkout writing a file
 * segment by segment): stored bytes are read into them and objects decoded
 * into them, and a buffer the pass is done with serves the next read or
 * decode.
 *
 * Why not the native pool alone (lib/native.ts allocLarge/recycleLarge): it
 * reuses the pages, but every buffer it hands out is a new ArrayBuffer, and V8
 * counts each new ArrayBuffer's bytes as external memory until the next
 * mark-compact. A checkout of a 512 MiB file made ~2 GiB of them and ran one
 * full GC per 16 MiB segment (~13% of its CPU). Reusing the same few JS
 * buffers creates no new ones.
 *
 * Ownership: `take` lends a view; the borrower hands it back with `give` once
 * nothing reads or writes it any more (a native call using it has settled).
 * Buffers still lent when the pass ends, or never given back, are left to the
 * GC, never recycled under a pending native call. Sizes below SCRATCH_MIN_BYTES are plain
 * allocations that are not kept.
 */
import { allocLarge, recycleLarge } from '../native';
import type { ScratchSource } from '../store/object-store';

/**
 * Buffers at or above this size are kept for reuse; smaller ones are plain allocations. Why so
 * small: a file of many small tensors would otherwise make a new ArrayBuffer for every read and
 * decode, and V8 answers that external memory with mark-compacts (a 512 MiB fine-tune checkout of
 * 1 MiB tensors took 3.1 CPU-s with a 4 MiB minimum, 1.9 with this one).
 */
export const SCRATCH_MIN_BYTES = 64 << 10;
/** Buffers at or above this size come from the native pool, page aligned (lib/native.ts allocLarge). */
const POOLED_BYTES = 4 << 20;
/** Slack a reused buffer may have beyond twice the need (one huge page). */
const SLACK_BYTES = 2 << 20;
/**
 * Larger buffers are not kept: they go straight back to the native pool, as
 * without a scratch. What the scratch keeps adds to what the pool keeps, and
 * for large tensors the memory bound (3 x the largest tensor + 256 MiB) has
 * no room for both.
 */
const KEEP_MAX_BYTES = 16 << 20;
/** The page a shifted view (`take(n, shift)`) may need beyond `n`. */
const SHIFT_PAGE = 4096;

export class ScratchBuffers implements ScratchSource {
  /** Whole buffers not lent out, oldest first. */
  private free: Uint8Array[] = [];
  private freeBytes = 0;
  /**
   * The views lent out (each `take` makes a new view object) and their whole buffers. Keyed by
   * view, so that giving back the same view twice (two stages both releasing a tensor) never
   * returns a buffer that was lent again meanwhile under another view. Weak: a view its borrower
   * drops without giving it back (an error path, a candidate nobody chose) is left to the GC.
   */
  private lent = new WeakMap<Uint8Array, Uint8Array>();
  /** Every ArrayBuffer this scratch made: never recycled by anyone else (see `give`). */
  private mine = new WeakSet<ArrayBufferLike>();
  private closed = false;

  /** `keepBytes`: the most the free list holds (buffers of at most 16 MiB); more goes back to the native pool. */
  constructor(private readonly keepBytes = 96 << 20) {}

  /**
   * `n` bytes (contents unspecified): a new view of a reused buffer when one fits, else of a new one.
   * `shift` (0..SHIFT_PAGE-1): the view starts that many bytes past the start of its buffer, so that its
   * address modulo 4096 is `shift` (pooled buffers are page-aligned): checkout places a segment so
   * that it agrees with its file offset, and the FileWriter writes it without a copy. Buffers below
   * the pooled size (4 MiB) are not page aligned: there the shift is dropped.
   */
  take(n: number, shift = 0): Uint8Array {
    if (n < SCRATCH_MIN_BYTES) return allocLarge(n);
    // Only pooled buffers are page aligned: a smaller view cannot be placed.
    if (n < POOLED_BYTES) shift = 0;
    const need = n + shift;
    const slack = n < POOLED_BYTES ? 0 : SLACK_BYTES;
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const cap = this.free[i].byteLength;
      if (cap >= need && cap <= 2 * n + slack && (best < 0 || cap < this.free[best].byteLength)) best = i;
    }
    let whole: Uint8Array;
    if (best >= 0) {
      whole = this.free[best];
      this.free.splice(best, 1);
      this.freeBytes -= whole.byteLength;
    } else {
      // A shifted view needs a page more: take whole pages so that the buffer is reused alike.
      whole = allocLarge(shift ? n + SHIFT_PAGE : n);
      this.mine.add(whole.buffer);
    }
    const view = Buffer.from(whole.buffer, whole.byteOffset + shift, n);
    this.lent.set(view, whole);
    return view;
  }

  /**
   * Takes back a view `take` returned (the caller is done with it). True when the bytes are this
   * scratch's (also when that view was given back already: then nothing happens), so the caller
   * must not recycle them itself; false for anything else (the caller disposes of it as before).
   */
  give(v: Uint8Array | null | undefined): boolean {
    if (!v) return false;
    const whole = this.lent.get(v);
    if (!whole) return this.mine.has(v.buffer);
    this.lent.delete(v);
    if (this.closed || whole.byteLength > KEEP_MAX_BYTES + SHIFT_PAGE) {
      recycleLarge(whole);
      return true;
    }
    this.free.push(whole);
    this.freeBytes += whole.byteLength;
    while (this.freeBytes > this.keepBytes && this.free.length) {
      const old = this.free.shift()!;
      this.freeBytes -= old.byteLength;
      recycleLarge(old);
    }
    return true;
  }

  /** True when `v` is a view this scratch lent out and has not had back. */
  lends(v: Uint8Array): boolean {
    return this.lent.has(v);
  }

  /** Gives the free buffers back to the native pool; buffers still lent go there when given back. */
  close(): void {
    this.closed = true;
    for (const b of this.free) recycleLarge(b);
    this.free = [];
    this.freeBytes = 0;
  }
}
