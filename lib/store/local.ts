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
 * @example
 * const store = await LocalPackStore.open('.coral');
 * const tx = store.beginWrite();
 * await tx.put(id, bytes, { codec: 'zstd', dtype: 'F32', shape: [1024], rawSize: 4096 });
 * await tx.commit();
 * const { bytes: back } = await store.get(id);
 * await store.close();
 */
import { promises as fsp } from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { PackEntry, PackReader, PackWriter } from '../../binding';
import {
  CoralError,
  CorruptObjectError,
  Hdf5Error,
  InternalError,
  InvalidArgumentError,
  NativeNotFoundError,
  ObjectNotFoundError,
  invalidParameter,
} from '../errors';
import { ASYNC_THRESHOLD_BYTES, callAsync, callSync, native } from '../native';
import { faultPoint } from '../util/crash';
import { errnoOf, fsyncDir, fullDiskError, ioError, randomHex, unlinkIfExists, writeFileAtomic } from './fs';
import {
  checkId,
  normalizeAttrs,
  type ObjectAttrs,
  type ObjectStore,
  type PackInfo,
  type PackTransaction,
  type RepackOptions,
  type RepackResult,
  type StoredAttrs,
  type StoredObject,
  type StoreProblem,
} from './object-store';
import { encodeIndex, indexNameFor, parseIndex, sameEntries } from './pack-index';

/** Published pack file names. */
export const PACK_RE = /^pack-[0-9a-f]{32}\.h5$/;
const INDEX_RE = /^pack-[0-9a-f]{32}\.idx$/;
/** Temp files this store creates in <root>/tmp (and only these are cleaned). */
const TMP_RE = /^pack-[0-9a-f]{32}\.(h5\.tmp|idx\.\d+\.[0-9a-f]+\.tmp)$/;

export interface LocalPackStoreOptions {
  /** Packs kept open at once (LRU). Default 32. */
  maxOpenPacks?: number;
  /** fsync files and directories on publication (default true; tests of throwaway data may turn it off). */
  fsync?: boolean;
  /**
   * Objects with fewer stored bytes than this are aggregated into the pack's
   * /small table instead of getting a dataset each (docs/store.md). Default
   * 16384 (DEFAULT_SMALL_OBJECT_MAX); 0 gives every object its own dataset.
   */
  smallObjectMax?: number;
}

/** Default LocalPackStoreOptions.smallObjectMax. */
export const DEFAULT_SMALL_OBJECT_MAX = 16384;

interface PackState {
  name: string;
  size: number;
  entries: PackEntry[];
  /** The index file exists and matched the pack. */
  indexed: boolean;
}

interface Location {
  pack: string;
  entry: PackEntry;
}

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

function isNativeNotFound(e: unknown): boolean {
  return e instanceof CoralError && e.code === NativeNotFoundError.code;
}

export class LocalPackStore implements ObjectStore {
  readonly kind = 'local-pack';
  readonly packsDir: string;
  readonly tmpDir: string;
  private readonly maxOpen: number;
  private readonly sync: boolean;
  private readonly smallMax: number;
  private packs = new Map<string, PackState>();
  private byId = new Map<string, Location>();
  /** Open readers in LRU order (oldest first). */
  private readers = new Map<string, PackReader>();
  /** Packs that could not be read (no usable index and HDF5 refused them), keyed by name -> size seen. */
  private broken = new Map<string, { size: number; error: unknown }>();
  /** Packs whose entries were read from the pack itself (or checked against it) by this instance. */
  private checkedPacks = new Set<string>();
  private txs = new Set<LocalTransaction>();
  private refreshChain: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly root: string,
    opts: LocalPackStoreOptions,
  ) {
    this.packsDir = path.join(root, 'objects', 'packs');
    this.tmpDir = path.join(root, 'tmp');
    const n = opts.maxOpenPacks ?? 32;
    if (!Number.isSafeInteger(n) || n < 1) throw invalidParameter('maxOpenPacks', 'positive integer', n);
    this.maxOpen = n;
    this.sync = opts.fsync ?? true;
    const sm = opts.smallObjectMax ?? DEFAULT_SMALL_OBJECT_MAX;
    if (!Number.isSafeInteger(sm) || sm < 0) throw invalidParameter('smallObjectMax', 'non-negative integer', sm);
    this.smallMax = sm;
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
    return path.join(this.packsDir, name);
  }

  /** Names of the packs currently known, sorted. */
  packNames(): string[] {
    return [...this.packs.keys()].sort();
  }

  // ---- reading ------------------------------------------------------------------------------

  async has(id: string): Promise<boolean> {
    this.checkOpen();
    return this.byId.has(id);
  }

  async stat(id: string): Promise<StoredAttrs> {
    this.checkOpen();
    checkId(id);
    const loc = await this.locate(id);
    if (!loc) throw this.notFound(id);
    return toAttrs(loc);
  }

  /**
   * Where `id` lives: the in-memory map, then a directory refresh, then (once
   * per pack) the packs themselves instead of their index sidecars, which are
   * only a cache: a damaged sidecar must never make an intact object "not found".
   */
  private async locate(id: string): Promise<Location | undefined> {
    let loc = this.byId.get(id);
    if (!loc) {
      await this.refresh();
      loc = this.byId.get(id);
    }
    if (!loc && (await this.recheckIndexes())) loc = this.byId.get(id);
    return loc;
  }

  /**
   * Lists every pack whose entries came from its sidecar and were not yet
   * checked against the pack, and repairs sidecars that disagree. Returns
   * whether any pack's entries changed.
   */
  private async recheckIndexes(): Promise<boolean> {
    let changed = false;
    for (const st of [...this.packs.values()]) {
      if (!st.indexed || this.checkedPacks.has(st.name)) continue;
      this.checkedPacks.add(st.name);
      let entries: PackEntry[];
      try {
        entries = await this.listPack(st.name);
      } catch {
        continue; // unreadable or removed: verify() reports it
      }
      if (sameEntries(entries, st.entries)) continue;
      st.entries = entries;
      changed = true;
      await this.repairIndex(st.name, st.size, entries);
    }
    if (changed) this.rebuildMap();
    return changed;
  }

  /** Rewrites a pack's sidecar from the pack's own listing. Best effort: the sidecar is a cache. */
  private async repairIndex(name: string, size: number, entries: PackEntry[]): Promise<void> {
    try {
      await writeFileAtomic(
        path.join(this.packsDir, indexNameFor(name)),
        await encodeIndex(name, size, entries),
        this.tmpDir,
        this.sync,
      );
      // A repack may have removed the pack meanwhile: never leave an index without its pack.
      if (
        !(await fsp.stat(this.packPath(name)).then(
          () => true,
          () => false,
        ))
      )
        await unlinkIfExists(path.join(this.packsDir, indexNameFor(name)));
    } catch {
      /* read-only repository, or the pack is gone: readers fall back to the pack again */
    }
  }

  async get(id: string): Promise<StoredObject> {
    this.checkOpen();
    checkId(id);
    for (let attempt = 0; ; attempt++) {
      const loc = await this.locate(id);
      if (!loc) throw this.notFound(id);
      try {
        const r = this.reader(loc.pack);
        const bytes =
          loc.entry.size >= ASYNC_THRESHOLD_BYTES ? await callAsync(() => r.read(id)) : callSync(() => r.readSync(id));
        return { bytes, attrs: toAttrs(loc) };
      } catch (e) {
        if (isNativeNotFound(e)) {
          // The pack was removed by a concurrent repack (or the index is stale): refresh and retry once.
          this.dropReader(loc.pack);
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
    const broken = [...this.broken.keys()];
    const hint =
      broken.length === 0 ? '' : ` (${broken.length} unreadable pack(s), e.g. ${broken[0]}; run \`coral fsck\`)`;
    return new ObjectNotFoundError(`object ${id} is not in the store at ${this.root}${hint}`, { id });
  }

  async *list(): AsyncIterableIterator<StoredAttrs> {
    this.checkOpen();
    await this.refresh();
    for (const loc of [...this.byId.values()]) yield toAttrs(loc);
  }

  /** Opens (or reuses) a reader for a pack, closing the least recently used beyond the limit. */
  private reader(name: string): PackReader {
    const hit = this.readers.get(name);
    if (hit) {
      this.readers.delete(name);
      this.readers.set(name, hit);
      return hit;
    }
    const r = callSync(() => new native.PackReader(this.packPath(name)));
    this.readers.set(name, r);
    while (this.readers.size > this.maxOpen) {
      const [oldName, old] = this.readers.entries().next().value as [string, PackReader];
      this.readers.delete(oldName);
      old.close();
    }
    return r;
  }

  private dropReader(name: string): void {
    const r = this.readers.get(name);
    if (r) {
      this.readers.delete(name);
      r.close();
    }
  }

  // ---- directory scan -----------------------------------------------------------------------

  /** Picks up packs published (or removed) by other processes since the last scan. */
  refresh(): Promise<void> {
    const run = this.refreshChain.then(() => this.doRefresh());
    this.refreshChain = run.catch(() => undefined);
    return run;
  }

  private async listPackFiles(): Promise<string[]> {
    try {
      return (await fsp.readdir(this.packsDir)).filter((n) => PACK_RE.test(n)).sort();
    } catch (e) {
      throw ioError(e, 'read directory', this.packsDir);
    }
  }

  private async doRefresh(): Promise<void> {
    if (this.closed) return;
    const names = await this.listPackFiles();
    const present = new Set(names);
    let removed = false;
    for (const name of [...this.packs.keys()]) {
      if (!present.has(name)) {
        this.packs.delete(name);
        this.dropReader(name);
        removed = true;
      }
    }
    for (const name of this.broken.keys()) if (!present.has(name)) this.broken.delete(name);
    const added: PackState[] = [];
    for (const name of names) {
      if (this.packs.has(name)) continue;
      const st = await this.loadPack(name);
      if (st) {
        this.packs.set(name, st);
        added.push(st);
      }
    }
    if (removed) this.rebuildMap();
    else for (const st of added) this.addToMap(st);
  }

  private addToMap(st: PackState): void {
    for (const e of st.entries) if (!this.byId.has(e.id)) this.byId.set(e.id, { pack: st.name, entry: e });
  }

  private rebuildMap(): void {
    this.byId.clear();
    for (const name of [...this.packs.keys()].sort()) this.addToMap(this.packs.get(name)!);
  }

  /** Reads a pack's index, falling back to listing the pack itself. Null when it vanished or is unreadable. */
  private async loadPack(name: string): Promise<PackState | null> {
    let size: number;
    try {
      size = (await fsp.stat(this.packPath(name))).size;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return null;
      throw ioError(e, 'stat', this.packPath(name));
    }
    const b = this.broken.get(name);
    if (b && b.size === size) return null;
    let text: Buffer | null = null;
    try {
      text = await fsp.readFile(path.join(this.packsDir, indexNameFor(name)));
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw ioError(e, 'read', indexNameFor(name));
    }
    const fromIndex = text === null ? null : parseIndex(text, name, size);
    if (fromIndex) return { name, size, entries: fromIndex, indexed: true };
    try {
      const entries = await this.listPack(name);
      this.checkedPacks.add(name);
      // An unusable sidecar is left for verify() to report and `fsck --rebuild-index` to rewrite:
      // reads already come from the pack. (A decodable but wrong one is repaired on a miss: locate().)
      return { name, size, entries, indexed: false };
    } catch (e) {
      if (isNativeNotFound(e)) return null;
      // One damaged pack must not make the whole store unusable: remember it, verify() reports it.
      this.broken.set(name, { size, error: e });
      this.dropReader(name);
      // A stale index (the pack changed size, e.g. truncated) still tells which ids lived
      // there, so reading them reports the damaged pack instead of "not found".
      const stale = text === null ? null : parseIndex(text, name, null);
      return stale ? { name, size, entries: stale, indexed: false } : null;
    }
  }

  private async listPack(name: string): Promise<PackEntry[]> {
    const r = this.reader(name);
    return callAsync(() => r.list());
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
    return this.byId.get(id);
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
    try {
      await fsp.rename(tmpPath, final);
    } catch (e) {
      throw ioError(e, 'rename', final);
    }
    await writeFileAtomic(
      path.join(this.packsDir, indexNameFor(name)),
      await encodeIndex(name, size, entries),
      this.tmpDir,
      this.sync,
    );
    if (this.sync) await fsyncDir(this.packsDir);
    if (!this.packs.has(name)) {
      const st: PackState = { name, size, entries, indexed: true };
      this.packs.set(name, st);
      this.addToMap(st);
    }
  }

  // ---- maintenance --------------------------------------------------------------------------

  /**
   * Keeps only objects with keep(id) === true. Candidate packs (older than
   * graceMs, holding garbage or all packs with `all`) are read, their kept
   * objects not present elsewhere are copied into one new pack, which is
   * published first; then each candidate whose mtime did not change meanwhile
   * (a writer reusing one of its objects freshens it) is removed, .h5 then .idx.
   */
  async repack(keep: (id: string) => boolean, opts: RepackOptions = {}): Promise<RepackResult> {
    this.checkOpen();
    if (typeof keep !== 'function') throw invalidParameter('keep', 'function', keep);
    const graceMs = opts.graceMs ?? 0;
    if (!Number.isFinite(graceMs) || graceMs < 0) throw invalidParameter('graceMs', 'non-negative number', graceMs);
    await this.refresh();
    const cutoff = Date.now() - graceMs;
    const candidates: Array<{ name: string; mtimeMs: number; entries: PackEntry[] }> = [];
    for (const name of this.packNames()) {
      const st = this.packs.get(name)!;
      let mtimeMs: number;
      try {
        mtimeMs = (await fsp.stat(this.packPath(name))).mtimeMs;
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') continue;
        throw ioError(e, 'stat', this.packPath(name));
      }
      if (graceMs > 0 && mtimeMs > cutoff) continue;
      if (opts.all || st.entries.some((e) => !keep(e.id))) candidates.push({ name, mtimeMs, entries: st.entries });
    }
    const result: RepackResult = { newPack: null, removedPacks: [], skippedPacks: [], copied: 0, dropped: 0 };
    if (
      candidates.length === 0 ||
      (opts.all && candidates.length === 1 && candidates[0].entries.every((e) => keep(e.id)))
    )
      return result;
    const candNames = new Set(candidates.map((c) => c.name));
    const elsewhere = new Set<string>();
    for (const [name, st] of this.packs) if (!candNames.has(name)) for (const e of st.entries) elsewhere.add(e.id);

    const tx = new LocalTransaction(this, true);
    this.txs.add(tx);
    const dropped = new Set<string>();
    try {
      for (const c of candidates) {
        const r = this.reader(c.name);
        for (const e of c.entries) {
          if (!keep(e.id)) {
            dropped.add(e.id);
            continue;
          }
          if (elsewhere.has(e.id) || tx.staged(e.id)) continue;
          // Verified read: a corrupted survivor aborts the repack before anything is deleted.
          const bytes =
            e.size >= ASYNC_THRESHOLD_BYTES ? await callAsync(() => r.read(e.id)) : callSync(() => r.readSync(e.id));
          await tx.put(e.id, bytes, {
            codec: e.codec,
            dtype: e.dtype,
            shape: e.shape,
            base: e.base,
            rawSize: e.rawSize,
            extra: e.extra,
          });
          result.copied++;
        }
      }
      result.newPack = await tx.commit();
    } catch (e) {
      await tx.abort();
      throw e;
    }
    for (const c of candidates) {
      const p = this.packPath(c.name);
      let mtimeMs: number;
      try {
        mtimeMs = (await fsp.stat(p)).mtimeMs;
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') continue;
        throw ioError(e, 'stat', p);
      }
      if (mtimeMs !== c.mtimeMs) {
        result.skippedPacks.push(c.name);
        continue;
      }
      this.dropReader(c.name);
      await unlinkIfExists(p);
      await unlinkIfExists(path.join(this.packsDir, indexNameFor(c.name)));
      result.removedPacks.push(c.name);
    }
    if (this.sync) await fsyncDir(this.packsDir);
    result.dropped = dropped.size;
    await this.refresh();
    return result;
  }

  /**
   * Checks every pack: readable, index present and equal to the pack's own
   * listing, every object's bytes matching its checksum.
   */
  async verify(): Promise<StoreProblem[]> {
    this.checkOpen();
    await this.refresh();
    const problems: StoreProblem[] = [];
    const code = (e: unknown) => (e instanceof CoralError ? e.code : 'CORAL_INTERNAL');
    const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));
    for (const name of await this.listPackFiles()) {
      let entries: PackEntry[];
      let r: PackReader;
      try {
        r = this.reader(name);
        entries = await callAsync(() => r.list());
      } catch (e) {
        if (isNativeNotFound(e)) continue; // removed meanwhile
        problems.push({ kind: 'pack', pack: name, code: code(e), message: msg(e) });
        continue;
      }
      let text: Buffer | null;
      try {
        text = await fsp.readFile(path.join(this.packsDir, indexNameFor(name)));
      } catch {
        text = null;
      }
      const size = (await fsp.stat(this.packPath(name)).catch(() => null))?.size ?? -1;
      if (text === null) {
        problems.push({
          kind: 'index',
          pack: name,
          code: ObjectNotFoundError.code,
          message: `pack ${name} has no index; run \`coral fsck --rebuild-index\``,
        });
      } else {
        const idx = parseIndex(text, name, size);
        if (!idx || !sameEntries(idx, entries))
          problems.push({
            kind: 'index',
            pack: name,
            code: CorruptObjectError.code,
            message: `index of pack ${name} does not match the pack; run \`coral fsck --rebuild-index\``,
          });
      }
      const max = entries.reduce((m, e) => Math.max(m, e.size), 0);
      const buf = Buffer.allocUnsafe(max);
      for (const e of entries) {
        try {
          if (e.size >= ASYNC_THRESHOLD_BYTES) await callAsync(() => r.readInto(e.id, buf));
          else callSync(() => r.readIntoSync(e.id, buf));
        } catch (err) {
          problems.push({ kind: 'object', pack: name, id: e.id, code: code(err), message: msg(err) });
        }
      }
    }
    return problems;
  }

  /**
   * Regenerates every pack's .idx from the pack's HDF5 metadata and removes
   * index files whose pack is gone. Unreadable packs are reported, not indexed.
   */
  async rebuildIndex(): Promise<{ packs: number; objects: number; problems: StoreProblem[] }> {
    this.checkOpen();
    const problems: StoreProblem[] = [];
    let packs = 0;
    let objects = 0;
    const names = await this.listPackFiles();
    for (const name of names) {
      try {
        const size = (await fsp.stat(this.packPath(name))).size;
        const entries = await this.listPack(name);
        await writeFileAtomic(
          path.join(this.packsDir, indexNameFor(name)),
          await encodeIndex(name, size, entries),
          this.tmpDir,
          this.sync,
        );
        packs++;
        objects += entries.length;
      } catch (e) {
        if (isNativeNotFound(e) || errnoOf(e) === 'ENOENT') continue;
        problems.push({
          kind: 'pack',
          pack: name,
          code: e instanceof CoralError ? e.code : 'CORAL_IO',
          message: (e as Error).message,
        });
      }
    }
    await this.removeOrphanIndexes(new Set(names));
    if (this.sync) await fsyncDir(this.packsDir);
    // Reload everything from the fresh indexes.
    this.packs.clear();
    this.byId.clear();
    this.broken.clear();
    await this.refresh();
    return { packs, objects, problems };
  }

  private async removeOrphanIndexes(packNames: Set<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const n of await fsp.readdir(this.packsDir)) {
      if (INDEX_RE.test(n) && !packNames.has(n.replace(/\.idx$/, '.h5'))) {
        // Re-check: a writer publishes the .h5 before its .idx, so an .idx without .h5 is always stale.
        const h5 = n.replace(/\.idx$/, '.h5');
        if (
          await fsp.stat(this.packPath(h5)).then(
            () => true,
            () => false,
          )
        )
          continue;
        if (await unlinkIfExists(path.join(this.packsDir, n))) removed.push(n);
      }
    }
    return removed;
  }

  /**
   * Removes leftovers of crashed writers: temp files of this store in tmp/
   * older than `olderThanMs` (default one hour; a live writer keeps touching
   * its file) and index files whose pack is gone. Returns the removed names.
   */
  async cleanTmp(olderThanMs = 3_600_000): Promise<string[]> {
    this.checkOpen();
    const removed: string[] = [];
    const now = Date.now();
    for (const n of await fsp.readdir(this.tmpDir)) {
      if (!TMP_RE.test(n)) continue;
      const p = path.join(this.tmpDir, n);
      const st = await fsp.stat(p).catch(() => null);
      if (st && now - st.mtimeMs >= olderThanMs && (await unlinkIfExists(p))) removed.push(n);
    }
    removed.push(...(await this.removeOrphanIndexes(new Set(await this.listPackFiles()))));
    return removed;
  }

  /** Problems found while scanning (packs that could not be read at all). */
  brokenPacks(): Array<{ pack: string; error: unknown }> {
    return [...this.broken].map(([pack, b]) => ({ pack, error: b.error }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const tx of [...this.txs]) await tx.abort();
    await this.refreshChain;
    this.closed = true;
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
    this.packs.clear();
    this.byId.clear();
  }
}

/** One pack being written. Puts run one after another; HDF5 serialises them anyway. */
class LocalTransaction implements PackTransaction {
  private writer: PackWriter | null = null;
  private tmpPath = '';
  private name = '';
  private written = 0;
  private stagedIds = new Set<string>();
  private reused = new Set<string>();
  private freshened = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  /** The first failed write (always an Error: a non-Error rejection is wrapped); later writes and commit rethrow it. */
  private failure: Error | null = null;
  private state: 'open' | 'committing' | 'done' = 'open';

  /** `raw`: repack's internal writer, which must not dedup against the packs it is replacing. */
  constructor(
    private readonly store: LocalPackStore,
    private readonly raw: boolean,
  ) {}

  get count(): number {
    return this.stagedIds.size;
  }

  staged(id: string): boolean {
    return this.stagedIds.has(id);
  }

  private checkOpen(): void {
    if (this.state !== 'open')
      throw new InvalidArgumentError(
        `pack transaction is already ${this.state === 'done' ? 'finished' : 'committing'}`,
      );
  }

  async reuse(id: string): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    if (this.stagedIds.has(id)) return true;
    for (let attempt = 0; attempt < 2; attempt++) {
      const loc = this.store._locate(id);
      if (!loc) return false;
      if (this.freshened.has(loc.pack) || (await this.store._freshen(loc.pack))) {
        this.freshened.add(loc.pack);
        this.reused.add(id);
        return true;
      }
      await this.store.refresh(); // its pack vanished: look again
    }
    return false;
  }

  async put(id: string, bytes: Uint8Array, attrs: ObjectAttrs): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    if (!ArrayBuffer.isView(bytes)) throw invalidParameter('bytes', 'Uint8Array', bytes);
    const a = normalizeAttrs(id, attrs);
    if (this.stagedIds.has(id)) return false;
    if (!this.raw && (await this.reuse(id))) return false;
    if (this.stagedIds.has(id)) return false; // staged by a concurrent put while we looked
    this.stagedIds.add(id);
    const run = this.chain.then(() => this.write(id, bytes, a));
    this.chain = run.catch((e: unknown) => {
      this.failure ??= e instanceof Error ? e : new InternalError(`pack write failed: ${String(e)}`);
    });
    await run;
    return true;
  }

  private async write(id: string, bytes: Uint8Array, a: ReturnType<typeof normalizeAttrs>): Promise<void> {
    if (this.failure) throw this.failure;
    try {
      await this.writeRaw(id, bytes, a);
    } catch (e) {
      throw fullDiskError(e, 'write pack', this.tmpPath);
    }
  }

  private async writeRaw(id: string, bytes: Uint8Array, a: ReturnType<typeof normalizeAttrs>): Promise<void> {
    if (!this.writer) {
      this.name = `pack-${randomHex(16)}.h5`;
      this.tmpPath = path.join(this.store.tmpDir, `${this.name}.tmp`);
      this.writer = callSync(() => new native.PackWriter(this.tmpPath, { smallObjectMax: this.store._smallMax }));
    }
    const w = this.writer;
    const pa = { codec: a.codec, dtype: a.dtype, shape: a.shape, base: a.base, rawSize: a.rawSize, extra: a.extra };
    const fault = faultPoint('pack:write');
    if (fault)
      throw new Hdf5Error(
        `pack ${this.tmpPath}: object ${id}: cannot write data (file write failed: errno = ${(osConstants.errno as Record<string, number>)[fault] ?? -1}, error message = 'injected ${fault}'; driver write request failed)`,
      );
    if (bytes.byteLength >= ASYNC_THRESHOLD_BYTES) await callAsync(() => w.putAsync(id, bytes, pa));
    else callSync(() => w.put(id, bytes, pa));
    this.written++;
  }

  async commit(): Promise<PackInfo | null> {
    this.checkOpen();
    this.state = 'committing';
    try {
      await this.chain;
      if (this.failure) throw this.failure;
      let info: PackInfo | null = null;
      if (this.writer && this.written > 0) {
        const w = this.writer;
        this.writer = null;
        // finish() reports every object with its final offset (small objects' bytes are placed then).
        let done: { size: number; entries: PackEntry[] };
        try {
          done = await callAsync(() => w.finish());
        } catch (e) {
          throw fullDiskError(e, 'write pack', this.tmpPath);
        }
        const { size, entries } = done;
        await this.store._publish(this.tmpPath, this.name, size, entries);
        info = { name: this.name, objects: entries.length, bytes: size };
      }
      if (this.reused.size > 0) {
        await this.store.refresh();
        const gone = [...this.reused].filter((id) => !this.store._locate(id));
        if (gone.length > 0)
          throw new ObjectNotFoundError(
            `${gone.length} reused object(s) (first ${gone[0]}) were removed by a concurrent repack before this ` +
              'transaction committed; write them again',
            { ids: gone },
          );
      }
      return info;
    } catch (e) {
      await this.cleanup();
      throw e;
    } finally {
      this.state = 'done';
      this.store._txDone(this);
    }
  }

  private async cleanup(): Promise<void> {
    if (this.writer) {
      this.writer.abort();
      this.writer = null;
    }
    if (this.tmpPath) await unlinkIfExists(this.tmpPath).catch(() => undefined);
  }

  async abort(): Promise<void> {
    if (this.state === 'done') return;
    this.state = 'done';
    await this.chain;
    await this.cleanup();
    this.store._txDone(this);
  }
}
