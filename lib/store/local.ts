/**
 * LocalPackStore: objects in immutable HDF5 packs under `<root>/objects/packs/`.
 *
 * Files (docs/store.md has the formats):
 *   <root>/objects/packs/pack-<32 hex>.h5    one pack (kernels/h5pack.h, format coral-pack-2; -1 still read)
 *   <root>/objects/packs/pack-<32 hex>.idx   its index (Brotli JSON, rebuildable from the pack)
 *   <root>/tmp/pack-<32 hex>.h5.tmp          a pack being written (ignored by readers)
 *
 * Publication: the pack is written in tmp/, fsynced, renamed into packs/, then
 * its index is written (temp + fsync + rename) and the directory is fsynced.
 * A crash at any point leaves either nothing visible, or a complete pack
 * without an index (still readable: the store lists it from its HDF5
 * attributes). Packs never change after publication.
 *
 * Concurrency: writers only create uniquely named files, so puts need no lock.
 * Each store instance keeps an in-memory id -> pack map, refreshed from the
 * directory on open, on `refresh()`, and lazily when `get`/`stat` miss.
 * Deletion (repack) publishes the survivors first, then removes old packs
 * (.h5 before .idx); a reader whose pack vanished refreshes and retries once,
 * and open handles keep reading an unlinked file (POSIX semantics).
 *
 * Code: this file has the store and its read path; local-view.ts the in-memory
 * view of packs/ (refresh, sidecar repair, open readers); local-transaction.ts
 * the write transaction; local-maintenance.ts repack, verify, rebuildIndex and
 * cleanTmp.
 *
 * @example
 * const store = await LocalPackStore.open('.coral');
 * const tx = store.beginWrite();
 * await tx.put(id, bytes, { codec: 'zstd', dtype: 'F32', shape: [1024], rawSize: 4096 });
 * await tx.commit();
 * const { bytes: back } = await store.get(id);
 * await store.close();
 */

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { PackEntry } from '../../binding';
import { CoralError, CorruptObjectError, InvalidArgumentError, ObjectNotFoundError, invalidParameter } from '../errors';
import { ASYNC_THRESHOLD_BYTES, callAsync, callSync, native } from '../native';
import { crashPoint, faultPoint } from '../util/crash';
import { errnoOf, fsyncDir, fullDiskError, ioError, randomHex, unlinkIfExists, writeFileAtomic } from './fs';
import {
  checkId,
  type ObjectStore,
  type PackTransaction,
  type RepackOptions,
  type RepackResult,
  type ScratchSource,
  type StoredAttrs,
  type StoredObject,
  type StoreProblem,
} from './object-store';
import { encodeIndex, indexNameFor, sameEntries } from './pack-index';
import type { PackBytes, PackImport, PackListing, PackSink, PackSource } from './pack-stream';
import { cleanTmp, rebuildIndex, repack, verify } from './local-maintenance';
import { LocalTransaction } from './local-transaction';
import { isNativeNotFound, PackView, type Location } from './local-view';

export { PACK_RE } from './local-view';

export interface LocalPackStoreOptions {
  /** Packs kept open at once (LRU). Default 32. */
  maxOpenPacks?: number;
  /** fsync files and directories on publication (default true; tests of throwaway data may turn it off). */
  fsync?: boolean;
  /**
   * Objects with fewer stored bytes than this are aggregated into the pack's
   * /small parts instead of getting a dataset each (docs/store.md). Default
   * 1 MiB (DEFAULT_SMALL_OBJECT_MAX), at most 8 MiB; 0 gives every object its own dataset.
   */
  smallObjectMax?: number;
}

/**
 * Default LocalPackStoreOptions.smallObjectMax. Objects below 1 MiB are written through the page
 * cache whether or not they have a dataset; a dataset each would cost libhdf5 time and memory per
 * object for as long as a pack is open (kernels/h5pack.h kPackDefaultSmallMax).
 */
export const DEFAULT_SMALL_OBJECT_MAX = 1 << 20;

/** An imported pack is written back (datasync in the background) every this many bytes (importPack). */
const IMPORT_FLUSH_BYTES = 64 << 20;

function toAttrs(loc: Location): StoredAttrs {
  const e = loc.entry;
  return {
    id: e.id,
    codec: e.codec,
    dtype: e.dtype,
    shape: e.shape.slice(),
    base: e.base,
    rawSize: e.rawSize,
    storedSize: e.size,
    checksum: e.checksum,
    extra: { ...e.extra },
    location: loc.pack,
  };
}

/** Re-creates a CoralError with {id, pack} data attached (messages already name both). */
function annotate(e: unknown, id: string, pack: string): unknown {
  if (!(e instanceof CoralError) || e.data) return e;
  const Cls = e.constructor as new (m: string, d?: Record<string, unknown>, c?: CoralError['code']) => CoralError;
  const out = new Cls(e.message, { id, pack }, e.code);
  out.stack = e.stack;
  return out;
}

export class LocalPackStore implements ObjectStore, PackSource, PackSink {
  readonly kind = 'local-pack';
  readonly packsDir: string;
  readonly tmpDir: string;
  private readonly sync: boolean;
  private readonly smallMax: number;
  /** The packs as this instance sees them: id -> pack map, open readers, unreadable packs (local-view.ts). */
  private readonly view: PackView;
  private txs = new Set<LocalTransaction>();
  private closed = false;

  private constructor(
    readonly root: string,
    opts: LocalPackStoreOptions,
  ) {
    this.packsDir = path.join(root, 'objects', 'packs');
    this.tmpDir = path.join(root, 'tmp');
    const n = opts.maxOpenPacks ?? 32;
    if (!Number.isSafeInteger(n) || n < 1) throw invalidParameter('maxOpenPacks', 'positive integer', n);
    this.sync = opts.fsync ?? true;
    const sm = opts.smallObjectMax ?? DEFAULT_SMALL_OBJECT_MAX;
    if (!Number.isSafeInteger(sm) || sm < 0) throw invalidParameter('smallObjectMax', 'non-negative integer', sm);
    this.smallMax = sm;
    this.view = new PackView(this.packsDir, this.tmpDir, this.sync, n);
  }

  /** Opens (creating directories if needed) the store rooted at `root` (a `.coral` directory). */
  static async open(root: string, opts: LocalPackStoreOptions = {}): Promise<LocalPackStore> {
    if (typeof root !== 'string' || root.length === 0) throw invalidParameter('root', 'non-empty string', root);
    const s = new LocalPackStore(path.resolve(root), opts);
    for (const d of [s.packsDir, s.tmpDir]) {
      try {
        await fsp.mkdir(d, { recursive: true });
      } catch (e) {
        throw ioError(e, 'mkdir', d);
      }
    }
    await s.refresh();
    return s;
  }

  private checkOpen(): void {
    if (this.closed) throw new InvalidArgumentError(`object store ${this.root} is closed`);
  }

  packPath(name: string): string {
    return this.view.packPath(name);
  }

  /** Names of the packs currently known, sorted. */
  packNames(): string[] {
    return this.view.packNames();
  }

  // ---- reading ------------------------------------------------------------------------------

  async has(id: string): Promise<boolean> {
    this.checkOpen();
    return this.view.byId.has(id);
  }

  async stat(id: string): Promise<StoredAttrs> {
    this.checkOpen();
    checkId(id);
    const loc = await this.view.locate(id);
    if (!loc) throw this.notFound(id);
    return toAttrs(loc);
  }

  get(id: string): Promise<StoredObject> {
    return this.read(id, null);
  }

  /** `get` into a buffer from `into` (ObjectStore.getInto): the pack reader reads straight into it. */
  getInto(id: string, into: ScratchSource): Promise<StoredObject> {
    return this.read(id, into);
  }

  private async read(id: string, into: ScratchSource | null): Promise<StoredObject> {
    this.checkOpen();
    checkId(id);
    for (let attempt = 0; ; attempt++) {
      const loc = await this.view.locate(id);
      if (!loc) throw this.notFound(id);
      const dst = into?.take(loc.entry.size) ?? null;
      try {
        const r = this.view.reader(loc.pack);
        const big = loc.entry.size >= ASYNC_THRESHOLD_BYTES;
        let bytes: Uint8Array;
        if (dst) {
          const n = big ? await callAsync(() => r.readInto(id, dst)) : callSync(() => r.readIntoSync(id, dst));
          bytes = n === dst.byteLength ? dst : dst.subarray(0, n);
        } else {
          bytes = big ? await callAsync(() => r.read(id)) : callSync(() => r.readSync(id));
        }
        return { bytes, attrs: toAttrs(loc) };
      } catch (e) {
        if (dst) into!.give(dst);
        if (isNativeNotFound(e)) {
          // The pack was removed by a concurrent repack (or the index is stale): refresh and retry once.
          this.view.dropReader(loc.pack);
          if (attempt === 0) {
            await this.refresh();
            continue;
          }
          throw new ObjectNotFoundError(
            `object ${id} is listed in pack ${loc.pack} but could not be found there (${(e as Error).message}); ` +
              'run `coral fsck --rebuild-index`',
            { id, pack: loc.pack },
          );
        }
        throw annotate(e, id, loc.pack);
      }
    }
  }

  private notFound(id: string): ObjectNotFoundError {
    const broken = [...this.view.broken.keys()];
    const hint =
      broken.length === 0 ? '' : ` (${broken.length} unreadable pack(s), e.g. ${broken[0]}; run \`coral fsck\`)`;
    return new ObjectNotFoundError(`object ${id} is not in the store at ${this.root}${hint}`, { id });
  }

  async *list(): AsyncIterableIterator<StoredAttrs> {
    this.checkOpen();
    await this.refresh();
    for (const loc of [...this.view.byId.values()]) yield toAttrs(loc);
  }

  /** Picks up packs published (or removed) by other processes since the last scan. */
  refresh(): Promise<void> {
    return this.view.refresh();
  }

  // ---- writing ------------------------------------------------------------------------------

  beginWrite(): PackTransaction {
    this.checkOpen();
    const tx = new LocalTransaction(this, false);
    this.txs.add(tx);
    return tx;
  }

  /** @internal bookkeeping for transactions. */
  _txDone(tx: LocalTransaction): void {
    this.txs.delete(tx);
  }

  /** @internal whether a sync fsync policy is on. */
  get _sync(): boolean {
    return this.sync;
  }

  /** @internal the small-object bound given to pack writers. */
  get _smallMax(): number {
    return this.smallMax;
  }

  /** @internal location of an id (no I/O). */
  _locate(id: string): Location | undefined {
    return this.view.byId.get(id);
  }

  /** @internal marks a pack as in use "now" so a concurrent repack leaves it alone. */
  async _freshen(pack: string): Promise<boolean> {
    const now = new Date();
    try {
      await fsp.utimes(this.packPath(pack), now, now);
      return true;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return false;
      throw ioError(e, 'utimes', this.packPath(pack));
    }
  }

  /** @internal publishes a finished pack file from tmp/ into packs/ with its index. */
  async _publish(tmpPath: string, name: string, size: number, entries: PackEntry[]): Promise<void> {
    const final = this.packPath(name);
    crashPoint('pack:before-rename');
    try {
      await fsp.rename(tmpPath, final);
    } catch (e) {
      throw ioError(e, 'rename', final);
    }
    crashPoint('pack:after-rename');
    // The sidecar is a checksummed cache of the pack's own listing (a torn or lost one
    // is detected and rebuilt from the pack), so it needs no fsync of its own; the
    // directory fsync below makes the pack's rename durable.
    await writeFileAtomic(
      path.join(this.packsDir, indexNameFor(name)),
      await encodeIndex(name, size, entries),
      this.tmpDir,
      false,
    );
    crashPoint('pack:after-index');
    if (this.sync) await fsyncDir(this.packsDir);
    this.view.addPublished(name, size, entries);
  }

  // ---- whole packs (pack-stream.ts) --------------------------------------------------------

  /** The published packs this instance knows, with their entries (no I/O). */
  packListing(): PackListing[] {
    this.checkOpen();
    return this.view.packNames().map((name) => {
      const st = this.view.packs.get(name)!;
      return { name, size: st.size, entries: st.entries };
    });
  }

  /**
   * Opens a published pack for positioned reads. The file handle keeps reading the pack even if a
   * concurrent repack unlinks it meanwhile (POSIX), so a copy that started always completes.
   */
  async openPack(name: string): Promise<PackBytes> {
    this.checkOpen();
    const file = this.packPath(name);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (e) {
      if (errnoOf(e) === 'ENOENT')
        throw new ObjectNotFoundError(`pack ${name} is gone from ${this.root}`, { pack: name });
      throw ioError(e, 'open', file);
    }
    return {
      read: async (offset: number, dst: Buffer) => {
        for (let at = 0; at < dst.length;) {
          let n: number;
          try {
            n = (await fh.read(dst, at, dst.length - at, offset + at)).bytesRead;
          } catch (e) {
            throw ioError(e, 'read', file);
          }
          if (n === 0)
            throw new CorruptObjectError(`pack ${name} in ${this.root} is shorter than its index says`, { pack: name });
          at += n;
        }
      },
      close: () => fh.close(),
    };
  }

  /**
   * Imports a whole pack (written to tmp/, then checked and published as a transaction's pack is): on
   * commit the file is fsynced, opened with the native pack reader, and its own listing must equal
   * `entries` (CorruptObjectError otherwise) before it is renamed into packs/ with its index.
   */
  importPack(size: number, entries: readonly PackEntry[]): PackImport {
    this.checkOpen();
    const name = `pack-${randomHex(16)}.h5`;
    const tmp = path.join(this.tmpDir, `${name}.tmp`);
    let fh: Promise<fsp.FileHandle> | null = null;
    let written = 0;
    let state: 'open' | 'done' = 'open';
    // Write-back while the pack arrives: every IMPORT_FLUSH_BYTES written, a datasync runs in the
    // background (one at a time), so the one on commit finds little left to write instead of the whole
    // pack (for a 430 MB pack, 0.2 s at the end of a clone). A background failure is kept and thrown by
    // commit: the kernel reports a write-back error to one fsync only.
    let unflushed = 0;
    let flushing: Promise<void> | null = null;
    let flushError: Error | null = null;
    const flushSome = (f: fsp.FileHandle) => {
      if (!this.sync || flushing || unflushed < IMPORT_FLUSH_BYTES) return;
      unflushed = 0;
      // CORAL_FAULT=pack:import-sync:<ERRNO> fails this write-back, as a disk error would (tests).
      const fault = faultPoint('pack:import-sync');
      const sync = fault
        ? Promise.reject(Object.assign(new Error(`datasync: injected ${fault}`), { code: fault }))
        : f.datasync();
      flushing = sync
        .catch((e: unknown) => {
          flushError ??= e instanceof Error ? e : new Error(String(e));
        })
        .finally(() => {
          flushing = null;
        });
    };
    const closeFile = async () => {
      const f = fh;
      fh = null;
      await flushing;
      if (f) await (await f.catch(() => null))?.close().catch(() => undefined);
    };
    const drop = async () => {
      await closeFile();
      await unlinkIfExists(tmp).catch(() => undefined);
    };
    // Every byte lands through here, appended (write) or at its offset (writeAt).
    const writeAllAt = async (position: number, chunk: Uint8Array) => {
      try {
        fh ??= fsp.open(tmp, 'wx');
        const f = await fh;
        for (let at = 0; at < chunk.byteLength;)
          at += (await f.write(chunk, at, chunk.byteLength - at, position + at)).bytesWritten;
        unflushed += chunk.byteLength;
        flushSome(f);
      } catch (e) {
        throw fullDiskError(e, 'write pack', tmp);
      }
      written += chunk.byteLength;
    };
    return {
      write: async (chunk: Uint8Array, release?: () => void) => {
        try {
          if (state !== 'open') throw new InvalidArgumentError('pack import is finished');
          await writeAllAt(written, chunk);
        } finally {
          release?.();
        }
      },
      writeAt: async (position: number, chunk: Uint8Array) => {
        if (state !== 'open') throw new InvalidArgumentError('pack import is finished');
        if (!Number.isSafeInteger(position) || position < 0 || position + chunk.byteLength > size)
          throw new InvalidArgumentError(`pack import: bytes at ${position} fall outside the pack's ${size}`);
        await writeAllAt(position, chunk);
      },
      commit: async () => {
        if (state !== 'open') throw new InvalidArgumentError('pack import is finished');
        state = 'done';
        try {
          if (written !== size || !fh)
            throw new CorruptObjectError(`pack import: ${written} bytes written, the pack has ${size}`, { size });
          try {
            await flushing;
            if (flushError) throw flushError;
            if (this.sync) await (await fh).datasync();
          } catch (e) {
            throw fullDiskError(e, 'write pack', tmp);
          }
          await closeFile();
          let listed: PackEntry[];
          try {
            const r = callSync(() => new native.PackReader(tmp));
            try {
              listed = await callAsync(() => r.list());
            } finally {
              r.close();
            }
          } catch (e) {
            throw new CorruptObjectError(`incoming pack is not a readable pack: ${(e as Error).message}`, {
              cause: (e as { code?: string }).code,
            });
          }
          if (!sameEntries(listed, entries))
            throw new CorruptObjectError(
              'incoming pack does not match its index (objects, offsets or checksums differ)',
            );
          await this._publish(tmp, name, size, listed);
          return { name, objects: listed.length, bytes: size };
        } catch (e) {
          await drop();
          throw e;
        }
      },
      abort: async () => {
        if (state === 'done') return;
        state = 'done';
        await drop();
      },
    };
  }

  // ---- maintenance (local-maintenance.ts) ---------------------------------------------------

  /** Keeps only objects with keep(id) === true; the protocol is documented at repack() in local-maintenance.ts. */
  async repack(keep: (id: string) => boolean, opts: RepackOptions = {}): Promise<RepackResult> {
    this.checkOpen();
    return repack({ view: this.view, beginRawWrite: () => this.beginRawWrite() }, keep, opts);
  }

  /** Repack's internal writer, which must not dedup against the packs it is replacing. */
  private beginRawWrite(): LocalTransaction {
    const tx = new LocalTransaction(this, true);
    this.txs.add(tx);
    return tx;
  }

  /**
   * Checks every pack: readable, index present and equal to the pack's own
   * listing, every object's bytes matching its checksum.
   */
  async verify(): Promise<StoreProblem[]> {
    this.checkOpen();
    return verify(this.view);
  }

  /**
   * Regenerates every pack's .idx from the pack's HDF5 metadata and removes
   * index files whose pack is gone. Unreadable packs are reported, not indexed.
   */
  async rebuildIndex(): Promise<{ packs: number; objects: number; problems: StoreProblem[] }> {
    this.checkOpen();
    return rebuildIndex(this.view);
  }

  /**
   * Removes leftovers of crashed writers: temp files of this store in tmp/
   * older than `olderThanMs` (default one hour; a live writer keeps touching
   * its file) and index files whose pack is gone. Returns the removed names.
   */
  async cleanTmp(olderThanMs = 3_600_000): Promise<string[]> {
    this.checkOpen();
    return cleanTmp(this.view, olderThanMs);
  }

  /** Problems found while scanning (packs that could not be read at all). */
  brokenPacks(): Array<{ pack: string; error: unknown }> {
    return [...this.view.broken].map(([pack, b]) => ({ pack, error: b.error }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const tx of [...this.txs]) await tx.abort();
    await this.view.idle();
    this.closed = true;
    this.view.close();
  }
}
