/**
 * PackView: the packs under `<root>/objects/packs/` as one LocalPackStore
 * instance sees them (local.ts has the store's file layout and concurrency
 * contract). It owns the in-memory id -> pack map, the open pack readers
 * (LRU), the packs that could not be read, and the directory refresh that
 * keeps them current, including the repair of index sidecars that disagree
 * with their pack. Packs are refreshed from the directory on open, on
 * `refresh()`, and lazily when a lookup misses (`locate`).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { PackEntry, PackReader } from '../../binding';
import { CoralError, NativeNotFoundError } from '../errors';
import { callAsync, callSync, native } from '../native';
import { errnoOf, ioError, unlinkIfExists, writeFileAtomic } from './fs';
import { encodeIndex, indexNameFor, parseIndex, sameEntries } from './pack-index';

/** Published pack file names. */
export const PACK_RE = /^pack-[0-9a-f]{32}\.h5$/;

export interface PackState {
  name: string;
  size: number;
  entries: PackEntry[];
  /** The index file exists and matched the pack. */
  indexed: boolean;
}

export interface Location {
  pack: string;
  entry: PackEntry;
}

export function isNativeNotFound(e: unknown): boolean {
  return e instanceof CoralError && e.code === NativeNotFoundError.code;
}

/** What probe() read of a pack: its size (null: gone) and index sidecar (null: none), or the error to report. */
interface Probe {
  size: number | null;
  text: Buffer | null;
  statError?: Error;
  readError?: Error;
}

/** Index sidecars read at once by a refresh (each is a stat and a small file; the libuv pool has 4 threads). */
const PROBE_PARALLEL = 8;

/** Starts `fn` on every item, at most `limit` at a time, in order; one promise per item (none rejects unseen). */
function readAhead<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R>[] {
  const out: Promise<R>[] = new Array<Promise<R>>(items.length);
  const slots: Promise<unknown>[] = [];
  for (let i = 0; i < items.length; i++) {
    const wait = i >= limit ? slots[i - limit] : Promise.resolve();
    out[i] = wait.then(() => fn(items[i]));
    slots.push(out[i].catch(() => undefined));
  }
  return out;
}

export class PackView {
  readonly packs = new Map<string, PackState>();
  readonly byId = new Map<string, Location>();
  /** Open readers in LRU order (oldest first). */
  private readonly readers = new Map<string, PackReader>();
  /** Packs that could not be read (no usable index and HDF5 refused them), keyed by name -> size seen. */
  readonly broken = new Map<string, { size: number; error: unknown }>();
  /** Packs whose entries were read from the pack itself (or checked against it) by this instance. */
  private readonly checkedPacks = new Set<string>();
  private refreshChain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    readonly packsDir: string,
    readonly tmpDir: string,
    /** fsync files and directories on publication. */
    readonly sync: boolean,
    private readonly maxOpen: number,
  ) {}

  packPath(name: string): string {
    return path.join(this.packsDir, name);
  }

  /** Names of the packs currently known, sorted. */
  packNames(): string[] {
    return [...this.packs.keys()].sort();
  }

  /**
   * Where `id` lives: the in-memory map, then a directory refresh, then (once
   * per pack) the packs themselves instead of their index sidecars, which are
   * only a cache: a damaged sidecar must never make an intact object "not found".
   */
  async locate(id: string): Promise<Location | undefined> {
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

  /** Opens (or reuses) a reader for a pack, closing the least recently used beyond the limit. */
  reader(name: string): PackReader {
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

  dropReader(name: string): void {
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

  /** Settles when the refreshes started so far have (never rejects). */
  idle(): Promise<void> {
    return this.refreshChain;
  }

  async listPackFiles(): Promise<string[]> {
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
    const todo = names.filter((n) => !this.packs.has(n));
    // The stat and sidecar reads of new packs run a few at a time ahead of the loop, which then takes
    // them in name order as before: opening a store of 150 packs one read after another took 80 ms.
    const reads = readAhead(todo, PROBE_PARALLEL, (n) => this.probe(n));
    for (let i = 0; i < todo.length; i++) {
      const st = await this.loadPack(todo[i], await reads[i]);
      if (st) {
        this.packs.set(todo[i], st);
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

  /**
   * A pack's size and its index sidecar's bytes, or what went wrong reading them. Only reads:
   * loadPack decides, so a refresh may read ahead without changing what it does.
   */
  private async probe(name: string): Promise<Probe> {
    let size: number;
    try {
      size = (await fsp.stat(this.packPath(name))).size;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return { size: null, text: null };
      return { size: null, text: null, statError: ioError(e, 'stat', this.packPath(name)) };
    }
    try {
      return { size, text: await fsp.readFile(path.join(this.packsDir, indexNameFor(name))) };
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return { size, text: null };
      return { size, text: null, readError: ioError(e, 'read', indexNameFor(name)) };
    }
  }

  /** Reads a pack's index, falling back to listing the pack itself. Null when it vanished or is unreadable. */
  private async loadPack(name: string, probe: Probe): Promise<PackState | null> {
    if (probe.statError) throw probe.statError;
    const { size, text } = probe;
    if (size === null) return null;
    const b = this.broken.get(name);
    if (b && b.size === size) return null;
    if (probe.readError) throw probe.readError;
    const fromIndex = text === null ? null : parseIndex(text, name, size);
    if (fromIndex) return { name, size, entries: fromIndex, indexed: true };
    try {
      const entries = await this.listPack(name);
      this.checkedPacks.add(name);
      // No sidecar at all is the state a writer killed between publishing its pack and its index
      // leaves (docs/store.md, "Crash safety"), or a writer between the two right now: the sidecar
      // is written as that writer would have (the same bytes), so a crash there leaves nothing for
      // fsck to report. An unusable sidecar is left for verify() to report and `fsck
      // --rebuild-index` to rewrite: reads already come from the pack. (A decodable but wrong one is
      // repaired on a miss: locate().)
      if (text === null) await this.repairIndex(name, size, entries);
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

  async listPack(name: string): Promise<PackEntry[]> {
    const r = this.reader(name);
    return callAsync(() => r.list());
  }

  /** Adds a pack this instance just published (with a matching index), unless a refresh already found it. */
  addPublished(name: string, size: number, entries: PackEntry[]): void {
    if (!this.packs.has(name)) {
      const st: PackState = { name, size, entries, indexed: true };
      this.packs.set(name, st);
      this.addToMap(st);
    }
  }

  /** Forgets every pack (not the checked set), so the next refresh reloads them all from their indexes. */
  forget(): void {
    this.packs.clear();
    this.byId.clear();
    this.broken.clear();
  }

  /** Closes every reader; later refreshes do nothing. Call after `idle()` settles. */
  close(): void {
    this.closed = true;
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
    this.packs.clear();
    this.byId.clear();
  }
}
