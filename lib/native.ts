/**
 * The one module that loads the native addon. node-gyp-build looks in
 * build/Release first, then prebuilds/<platform>-<arch>/. Everything else in
 * lib/ imports `native` from here. The addon is loaded on the first use of one
 * of its exports, not with this module (see `native`).
 */
import * as path from 'node:path';
import type * as Binding from '../binding';
import { fromNative } from './errors';

/** Package root: dist/ and lib/ both sit one level below it. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..');

function loadBinding(): typeof Binding {
  const override = process.env.CORAL_NATIVE_PATH;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (override) return require(path.resolve(override)) as typeof Binding;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('node-gyp-build') as (dir: string) => typeof Binding)(PACKAGE_ROOT);
}

let binding: typeof Binding | undefined;

/** The addon itself, loaded by the first call (and `native` pointed at it). */
function loaded(): typeof Binding {
  if (!binding) native = binding = loadBinding();
  return binding;
}

/**
 * The addon's exports. Until one of them is first used, `native` is a stand-in
 * that loads the addon and forwards to it; from then on it is the addon itself
 * (an exported `let`: importers read it at each use), so hot paths pay nothing.
 * Many commands (`status`, `log`, `branch`, `diff` of unchanged files) never
 * call into native code, and the addon's dlopen was a tenth of their start-up.
 * A missing or broken build is reported at that first use, not at import.
 */
export let native: typeof Binding = new Proxy({} as typeof Binding, {
  get: (_t, k): unknown => Reflect.get(loaded(), k),
  has: (_t, k) => Reflect.has(loaded(), k),
  ownKeys: () => Reflect.ownKeys(loaded()),
  getOwnPropertyDescriptor: (_t, k) => {
    const d = Reflect.getOwnPropertyDescriptor(loaded(), k);
    // A proxy may not report a property its (empty) target lacks as non-configurable.
    return d && { ...d, configurable: true };
  },
});

/**
 * Inputs at or above this many bytes go to async native work on the libuv
 * pool; smaller ones run inline, where a thread hop would cost more than the
 * work. Tuned from bench/hash.ts (the crossover sits near 256 KiB here; 1 MiB
 * keeps sync calls well under a millisecond).
 */
export const ASYNC_THRESHOLD_BYTES = 1 << 20;

/**
 * The codec and the SimHash fingerprint cost far more per byte than hashing or copying: below 1 MiB
 * an encode runs at 0.1-0.3 GB/s (it tries several candidate codecs on each tensor) and a fingerprint
 * has a fixed cost of 30-250 µs. So they leave the event loop at much smaller sizes than
 * ASYNC_THRESHOLD_BYTES: from these sizes one call costs several pool hops (30-50 µs each on a
 * 2-core VM), and an ingest or checkout of many small tensors keeps every core busy instead of
 * running each kernel in turn on the JS thread. Measured per size with bench/codec.ts.
 */
export const ENCODE_ASYNC_BYTES = 16 << 10;
/** Decoded size from which a decode runs on the pool (see ENCODE_ASYNC_BYTES). */
export const DECODE_ASYNC_BYTES = 64 << 10;
/** Sampled elements × 64-bit signature words from which a fingerprint runs on the pool (~50 µs of work). */
export const FINGERPRINT_ASYNC_WORK = 4096;

/** Buffers at or above this size come from the native pool (util/big_buffer.h kBigBufferMin). */
const POOLED_BUFFER_BYTES = 4 << 20;

/**
 * An uninitialised buffer for big, short-lived data (tensor reads). Large ones
 * come from the native pool of recycled huge-page mappings: fresh pages cost a
 * first-touch fault and the kernel's zeroing each time (on this VM, more than
 * the read itself).
 */
export function allocLarge(size: number): Buffer {
  return size >= POOLED_BUFFER_BYTES ? callSync(() => native.allocBuffer(size)) : Buffer.allocUnsafe(size);
}

/**
 * Gives a large buffer's memory back to the native pool now instead of at the
 * next GC, when it is a whole pooled buffer (allocLarge, decode and encode
 * results, pack reads): the next large allocation then reuses its pages
 * without faulting and zeroing fresh ones, and peak memory stays at what is
 * in flight. The buffer's ArrayBuffer is detached, so every view of it
 * becomes empty: call it only on bytes nothing else holds. Anything else is
 * left alone.
 */
export function recycleLarge(b: Uint8Array | null | undefined): void {
  if (b && b.byteLength >= POOLED_BUFFER_BYTES) native.recycleBuffer(b);
}

/** Default bound of the native pool of large buffers (util/big_buffer.h kBigPoolBytes). */
export const DEFAULT_BUFFER_POOL_BYTES = 256 << 20;

/**
 * Bounds the bytes the native pool of large buffers keeps for reuse (default
 * DEFAULT_BUFFER_POOL_BYTES); lowering it unmaps the surplus now. Pooled pages
 * stay resident (MADV_FREE) until reused or reclaimed, so the bound is part of
 * a process's peak RSS: a long-running server sizes it from its memory budget.
 * Returns the previous bound.
 */
export function setBufferPoolLimit(bytes: number): number {
  return native.setPoolLimit(bytes);
}

/**
 * Runs an async native call and converts its error, keeping the caller's stack.
 * The Error is captured before the work starts, so traces show the user's call.
 */
export async function callAsync<T>(fn: () => Promise<T>): Promise<T> {
  const site = new Error();
  try {
    return await fn();
  } catch (e) {
    throw fromNative(e, site);
  }
}

/** Runs a sync native call and converts its error. */
export function callSync<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e);
  }
}
