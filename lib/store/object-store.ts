/**
 * The object store contract: immutable encoded objects addressed by id, written
 * in batches (pack transactions) and read back verified. The local HDF5 pack
 * store (local.ts) and the in-memory store (memory.ts) implement it; S3 and
 * remote backends implement it later and run the same conformance suite
 * (test/store/conformance.ts).
 *
 * Objects are immutable: an id names one byte string forever, so writing an id
 * that already exists is a no-op (the store "reuses" the stored copy).
 *
 * @example
 * const tx = store.beginWrite();
 * await tx.put(id, encodedBytes, { codec: 'zstd', dtype: 'F32', shape: [4096, 4096], rawSize: 64 << 20 });
 * await tx.commit();                     // durable and visible from here on
 * const { bytes, attrs } = await store.get(id);   // checksum verified
 */
import { invalidParameter } from '../errors';

/** Attributes stored with an object. `id`, `storedSize` and `checksum` are filled in by the store on read. */
export interface ObjectAttrs {
  /** The object id; optional on put (the put's `id` argument wins and must agree). */
  id?: string;
  /** Codec that produced the stored bytes (e.g. "zstd", "delta-xor"). */
  codec: string;
  /** dtype name of the decoded tensor (lib/tensor/dtype.ts), or "U8" for blobs. */
  dtype: string;
  /** Decoded shape; [] for a 0-d scalar. */
  shape: readonly number[];
  /** Id of the delta base; "" or absent when the object stands alone. */
  base?: string;
  /** Decoded size in bytes. */
  rawSize: number;
  /** Stored (encoded) size in bytes. Ignored on put. */
  storedSize?: number;
  /** XXH3-128 hex of the stored bytes. Ignored on put (the store computes it). */
  checksum?: string;
  /** Free-form string attributes; names match EXTRA_NAME_RE. */
  extra?: Readonly<Record<string, string>>;
}

/** Attributes as read back from a store: every field present. */
export interface StoredAttrs extends ObjectAttrs {
  id: string;
  base: string;
  shape: number[];
  storedSize: number;
  checksum: string;
  extra: Record<string, string>;
  /** Backend-specific location (pack file name for the local store). Informational. */
  location?: string;
}

/** An object read back from a store; `bytes` matched `attrs.checksum`. */
export interface StoredObject {
  bytes: Uint8Array;
  attrs: StoredAttrs;
}

/** What a committed transaction published. */
export interface PackInfo {
  /** Pack name (local: file name `pack-<hex>.h5`). */
  name: string;
  /** Objects written into the pack. */
  objects: number;
  /** Pack size in bytes (file size for the local store). */
  bytes: number;
}

/**
 * A batch of writes that becomes visible atomically on commit. Nothing is
 * visible (or durable) before commit; abort (or a crash) leaves no trace
 * besides a temp file that `cleanTmp` removes later.
 */
export interface PackTransaction {
  /** Objects written so far (excluding reused ones). */
  readonly count: number;
  /**
   * Stages one object. Resolves `false` when the id already exists in the store
   * or in this transaction (nothing is written; the existing copy is reused, see
   * `reuse`). The caller must not mutate `bytes` until the promise settles;
   * once it has settled the store no longer uses them (a store that keeps
   * bytes for later copies them): the caller may give their memory back.
   */
  put(id: string, bytes: Uint8Array, attrs: ObjectAttrs): Promise<boolean>;
  /**
   * Declares that the caller relies on an existing object instead of writing it.
   * Resolves `false` when the store does not have it. Reused objects are
   * protected from a concurrent repack (the local store freshens their pack),
   * and `commit` fails with ObjectNotFoundError if one vanished meanwhile.
   */
  reuse(id: string): Promise<boolean>;
  /** Publishes the batch; resolves `null` when nothing was written. */
  commit(): Promise<PackInfo | null>;
  /** Drops the batch. Idempotent. */
  abort(): Promise<void>;
}

export interface RepackOptions {
  /**
   * Packs modified less than this many milliseconds ago are left alone: a
   * concurrent writer may be about to reference their objects. gc should pass
   * its grace period here. Default 0.
   */
  graceMs?: number;
  /** Also merge packs that hold no garbage (consolidation). Default false. */
  all?: boolean;
}

export interface RepackResult {
  /** The pack holding the copied survivors (null when nothing needed copying). */
  newPack: PackInfo | null;
  /** Packs removed. */
  removedPacks: string[];
  /** Candidate packs left in place because they were touched during the repack. */
  skippedPacks: string[];
  /** Objects copied into the new pack. */
  copied: number;
  /** Objects dropped (keep() returned false) from removed packs. */
  dropped: number;
}

export type StoreProblemKind = 'pack' | 'object' | 'index';

/** One finding of `verify()`. `code` is a CoralError code. */
export interface StoreProblem {
  kind: StoreProblemKind;
  code: string;
  message: string;
  pack?: string;
  id?: string;
}

/** Lends buffers for reads (lib/odb/scratch.ts ScratchBuffers): `take(n)` bytes, `give` them back. */
export interface ScratchSource {
  /** `n` bytes; with `shift`, starting that many bytes past the start of a pooled buffer (ScratchBuffers.take). */
  take(n: number, shift?: number): Uint8Array;
  give(b: Uint8Array): boolean;
}

/** The interface every object store backend implements. */
export interface ObjectStore {
  /** Backend name, e.g. "local-pack" or "memory". */
  readonly kind: string;
  /** True when the object is known to the store (no I/O for the local store; see refresh()). */
  has(id: string): Promise<boolean>;
  /**
   * Reads and verifies one object. ObjectNotFoundError / ChecksumMismatchError / CorruptObjectError.
   * The returned bytes belong to the caller (never a buffer the store keeps using).
   */
  get(id: string): Promise<StoredObject>;
  /**
   * Optional: `get` into a buffer from `into` (`into.take(storedSize)`; the returned bytes are that
   * view). A backend that reads into caller memory (the local packs) implements it, so a streaming
   * reader reuses its buffers (lib/odb/scratch.ts); callers fall back to `get` when it is absent.
   * On failure the taken buffer has been given back.
   */
  getInto?(id: string, into: ScratchSource): Promise<StoredObject>;
  /** Attributes of one object without reading it. ObjectNotFoundError when absent. */
  stat(id: string): Promise<StoredAttrs>;
  /** Starts a batch of writes. */
  beginWrite(): PackTransaction;
  /** Every object with its attributes (each id once). */
  list(): AsyncIterableIterator<StoredAttrs>;
  /** Picks up objects published by other processes. */
  refresh(): Promise<void>;
  /**
   * Garbage collection hook: rewrites the store so that only objects with
   * keep(id) === true remain (subject to graceMs), removing the old copies in
   * a crash- and reader-safe order.
   */
  repack(keep: (id: string) => boolean, opts?: RepackOptions): Promise<RepackResult>;
  /** Reads every object and checks its checksum; returns what is wrong (empty when healthy). */
  verify(): Promise<StoreProblem[]>;
  /** Releases handles. Pending transactions are aborted. */
  close(): Promise<void>;
}

/** Object ids: 1..128 of [0-9A-Za-z._-], not starting with '.'. Same rule as native ValidPackId. */
export const ID_RE = /^[0-9A-Za-z_-][0-9A-Za-z._-]{0,127}$/;
/** Extra attribute names. */
export const EXTRA_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
/** Attribute names the store itself uses; extra attributes may not take them. */
export const RESERVED_ATTRS: ReadonlySet<string> = new Set([
  'id',
  'codec',
  'dtype',
  'shape',
  'base',
  'rawSize',
  'checksum',
]);

export function checkId(id: unknown, name = 'id'): asserts id is string {
  if (typeof id !== 'string' || !ID_RE.test(id)) throw invalidParameter(name, 'object id matching ' + ID_RE.source, id);
}

function checkText(v: unknown, name: string, allowEmpty: boolean): void {
  if (typeof v !== 'string' || (!allowEmpty && v.length === 0) || v.includes('\0'))
    throw invalidParameter(name, allowEmpty ? 'string without NUL' : 'non-empty string without NUL', v);
}

/** Validates put attributes and returns a normalised copy (base "" when absent, extra {}). */
export function normalizeAttrs(
  id: string,
  attrs: ObjectAttrs,
): Required<Pick<ObjectAttrs, 'codec' | 'dtype' | 'base' | 'rawSize'>> & {
  shape: number[];
  extra: Record<string, string>;
} {
  if (typeof attrs !== 'object' || attrs === null) throw invalidParameter('attrs', 'object', attrs);
  if (attrs.id !== undefined && attrs.id !== id) throw invalidParameter('attrs.id', `undefined or "${id}"`, attrs.id);
  checkText(attrs.codec, 'attrs.codec', false);
  checkText(attrs.dtype, 'attrs.dtype', false);
  const base = attrs.base ?? '';
  checkText(base, 'attrs.base', true);
  if (
    !Array.isArray(attrs.shape) ||
    attrs.shape.length > 64 ||
    !attrs.shape.every((d) => Number.isSafeInteger(d) && d >= 0)
  )
    throw invalidParameter('attrs.shape', 'array of at most 64 non-negative integers', attrs.shape);
  if (!Number.isSafeInteger(attrs.rawSize) || attrs.rawSize < 0)
    throw invalidParameter('attrs.rawSize', 'non-negative integer', attrs.rawSize);
  const extra: Record<string, string> = {};
  if (attrs.extra !== undefined) {
    if (typeof attrs.extra !== 'object' || attrs.extra === null || Array.isArray(attrs.extra))
      throw invalidParameter('attrs.extra', 'object of strings', attrs.extra);
    for (const [k, v] of Object.entries(attrs.extra)) {
      if (!EXTRA_NAME_RE.test(k) || RESERVED_ATTRS.has(k))
        throw invalidParameter('attrs.extra key', 'name matching ' + EXTRA_NAME_RE.source + ' (not reserved)', k);
      checkText(v, `attrs.extra.${k}`, true);
      extra[k] = v;
    }
  }
  return {
    codec: attrs.codec,
    dtype: attrs.dtype,
    shape: (attrs.shape as readonly number[]).slice(),
    base,
    rawSize: attrs.rawSize,
    extra,
  };
}
