/**
 * Whole-pack copies between stores: the optional capabilities a transfer (lib/remote/negotiate.ts) uses to
 * move a pack *as it is*, byte for byte, instead of reading its objects one by one and writing them into a
 * new pack. Packs are immutable and their format is the same everywhere (a pack in a bucket is byte-identical
 * to a local one), so when a receiver wants every object of one of the sender's packs, the pack itself is
 * the cheapest thing to send: no HDF5 rewrite, no temp pack before an upload, and the bytes stream from one
 * side to the other through a bounded window (never the whole pack in memory).
 *
 * - `PackSource` (LocalPackStore, S3ObjectStore): lists its published packs with their entries, and reads
 *   byte ranges of one (local: positioned reads of an open file, which keeps reading even if a concurrent
 *   repack unlinks it; S3: parallel ranged GETs).
 * - `PackSink` (LocalPackStore, S3ObjectStore): takes a pack's bytes in order and publishes them under a
 *   fresh name with the given index, atomically, on `commit()`; `abort()` leaves nothing visible (local: the
 *   temp file is removed; S3: the multipart upload is aborted and no index is ever written, so a reader
 *   never sees the pack). The local sink also opens the finished file with the native pack reader and
 *   checks that its own listing equals the index before publishing it, so a pack whose HDF5 structure
 *   disagrees with its index never enters a local store.
 *
 * The caller verifies the objects' bytes as they pass (checksums, and content ids where it must) and only
 * then commits: these interfaces move bytes, they do not judge them.
 *
 * @example
 * const src = packSource(a), dst = packSink(b);
 * const pack = src!.packListing()[0];
 * const rd = await src!.openPack(pack.name);
 * const imp = dst!.importPack(pack.size, pack.entries);
 * const buf = Buffer.allocUnsafe(pack.size);
 * await rd.read(0, buf); await imp.write(buf);   // (in bounded spans, verifying each object)
 * await imp.commit(); await rd.close();
 */
import type { PackEntry } from '../../binding';
import type { ObjectStore, PackInfo } from './object-store';

/** One published pack of a store. */
export interface PackListing {
  name: string;
  /** File size in bytes. */
  size: number;
  /** Every object of the pack, with its offset and stored size. */
  entries: readonly PackEntry[];
}

/** An open pack: positioned reads of its bytes. */
export interface PackBytes {
  /**
   * Fills `dst` with the pack's bytes from `offset`; CorruptObjectError when the pack is shorter. A source
   * that receives the bytes piece by piece (S3) calls `landed(from, to)` as each piece of `dst` is filled
   * (pieces of a few hundred KiB, in any order, covering `dst` once), while the bytes are still in the
   * CPU's cache: a caller can pass them on right away (PackImport.writeAt). Others never call it.
   */
  read(offset: number, dst: Buffer, landed?: (from: number, to: number) => void): Promise<void>;
  close(): Promise<void>;
}

/** A store whose published packs can be read whole. */
export interface PackSource {
  /** The packs the store knows (no I/O). */
  packListing(): PackListing[];
  /** Opens one pack for reading; ObjectNotFoundError when it is gone. */
  openPack(name: string): Promise<PackBytes>;
}

/** A pack being imported: its bytes in order, then commit (publish) or abort. */
export interface PackImport {
  /**
   * Appends the next bytes (in file order). Resolves when the import accepts more; it may still hold
   * `chunk` then (an S3 part in flight): `release`, when given, is called once it no longer does, and
   * until then the caller must neither modify nor recycle the bytes.
   */
  write(chunk: Uint8Array, release?: () => void): Promise<void>;
  /**
   * Writes bytes at a position of the pack, in any order (a local file takes them so; an upload does not
   * and lacks this method). Use either this or `write` for one import; the bytes written must cover the
   * pack exactly once, and `commit` fails when their total is not the pack's size.
   */
  writeAt?(position: number, chunk: Uint8Array): Promise<void>;
  /** Publishes the pack and its index; fails when fewer or more bytes than announced were written. */
  commit(): Promise<PackInfo>;
  /** Drops the import; idempotent. */
  abort(): Promise<void>;
}

/** A store that takes whole packs. */
export interface PackSink {
  /** Starts importing a pack of `size` bytes holding `entries` (offsets within those bytes). */
  importPack(size: number, entries: readonly PackEntry[]): PackImport;
}

/** The store's whole-pack reading capability, if it has one. */
export function packSource(store: ObjectStore): PackSource | null {
  const s = store as Partial<PackSource>;
  return typeof s.packListing === 'function' && typeof s.openPack === 'function' ? (s as PackSource) : null;
}

/** The store's whole-pack import capability, if it has one. */
export function packSink(store: ObjectStore): PackSink | null {
  const s = store as Partial<PackSink>;
  return typeof s.importPack === 'function' ? (s as PackSink) : null;
}
