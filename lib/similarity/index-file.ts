/**
 * The persisted similarity index: one snapshot plus one append-only log per
 * writer session, in a directory (a repository's `.coral/simindex/`).
 *
 *   index.csx                    snapshot: header + absorbed-log offsets + SimIndex bytes
 *   log-<t>-<host>-<pid>-<r>.csl one per writer session, append-only, never rewritten
 *   compact.lock                 held while a snapshot is replaced
 *
 * Concurrency: writers never share a file. Each session appends its inserts and
 * removes to its own log (one write() per record, each record checksummed), so
 * concurrent writers cannot interleave bytes. Readers load the snapshot and
 * replay every log from the offset the snapshot says it absorbed, ordering
 * records by (time, log name, position). A crash can only tear the tail of a log
 * (a session never reopens its log), and a torn tail is ignored. Compaction
 * (under compact.lock) writes a new snapshot via temp file + fsync + rename,
 * recording how many bytes of each log it absorbed; logs are deleted only when
 * absorbed and sealed (closed cleanly) or absorbed and owned by a dead process
 * on this host. The index is a cache: `rebuild()` recreates it from the stored
 * fingerprints. Details in docs/similarity.md.
 *
 * This file holds the store (open/insert/remove/query/compact/rebuild/close);
 * the snapshot format is in snapshot.ts and the writer logs (records, replay,
 * ownership and cleanup) in writer-log.ts.
 *
 * @example
 * const store = await SimilarityStore.open('.coral/simindex');
 * await store.insert(id, fp);
 * store.query(fp2, { minSimilarity: 0.98 });
 * await store.close();
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptIndexError, InvalidArgumentError, LockedError, invalidParameter } from '../errors';
import { parseScheme, type Fingerprint } from './fingerprint';
import {
  SimilarityIndex,
  type EntryMeta,
  type IndexOptions,
  type IndexRecord,
  type QueryOptions,
  type SimilarityHit,
} from './lsh-index';
import { writeFileAtomicSync } from '../util/fsutil';
import { SNAPSHOT, encodeSnapshot, readSnapshot, snapshotStamp, type SnapshotHeader } from './snapshot';
import { ioError } from './store-common';
import {
  OP_INSERT,
  OP_REMOVE,
  OP_SEAL,
  applyRecords,
  encodeRecord,
  logHeader,
  newLogName,
  parseLog,
  removeFinishedLogs,
  safeHost,
  type LogRecord,
} from './writer-log';

const LOCK = 'compact.lock';
/** A compaction lock older than this is considered abandoned. */
const STALE_LOCK_MS = 10 * 60 * 1000;
/**
 * close() compacts once this many logs hold records the snapshot lacks (or their bytes pass
 * max(1 MiB, half the snapshot)). Every `add` leaves one small sealed log, and opening the index
 * reads each log not yet absorbed: without a count bound a repository of many small commits
 * would read thousands of files per command.
 */
const COMPACT_LOGS = 32;

export interface StoreOptions extends IndexOptions {
  /** fsync the log after every record (default false: on flush() and close()). */
  durable?: boolean;
}

/** Atomic replace (lib/util/fsutil.ts); kept under this name for the public similarity API. */
export function writeFileAtomic(file: string, data: Uint8Array): void {
  writeFileAtomicSync(file, data);
}

// ---- the store -----------------------------------------------------------------------------

export class SimilarityStore {
  /** The in-memory index (snapshot + every log replayed). */
  readonly index: SimilarityIndex;
  readonly dir: string;
  private generation = 0;
  private absorbed: Record<string, number> = {};
  /** Per log: bytes already applied to `index`. */
  private applied = new Map<string, number>();
  /** Logs applied through their seal record: they never grow again, so refresh() skips them. */
  private sealed = new Set<string>();
  /** The snapshot file `index` was loaded from (snapshotStamp); another process's compaction changes it. */
  private snapStamp = '';
  private logName: string | null = null;
  private logFd: number | null = null;
  private logIno = 0;
  private lastTime = 0;
  private closed = false;
  private readonly durable: boolean;

  private constructor(dir: string, index: SimilarityIndex, durable: boolean) {
    this.dir = dir;
    this.index = index;
    this.durable = durable;
  }

  /**
   * Opens (creating if needed) the index in `dir`. An existing snapshot's
   * scheme wins; options only matter for a new directory. Corrupt files throw
   * CorruptIndexError (callers may then rebuild()).
   */
  static async open(dir: string, options: StoreOptions = {}): Promise<SimilarityStore> {
    const { durable, ...indexOpts } = options;
    if (durable !== undefined && typeof durable !== 'boolean') throw invalidParameter('durable', 'boolean', durable);
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw ioError(e, `cannot create ${dir}`);
    }
    const snap = path.join(dir, SNAPSHOT);
    if (!fs.existsSync(snap)) {
      // Racing creators each write a complete empty snapshot; the last rename wins, harmlessly.
      writeFileAtomic(snap, encodeSnapshot({ generation: 0, absorbed: {} }, SimilarityIndex.create(indexOpts)));
    }
    const { header, index, stamp } = readSnapshot(dir);
    const store = new SimilarityStore(dir, index, durable ?? false);
    store.adopt(header, stamp);
    store.refresh();
    return store;
  }

  /** Reloads the snapshot into the same SimilarityIndex object (callers may hold it). */
  private loadSnapshot(): void {
    const { header, index, stamp } = readSnapshot(this.dir);
    this.index.replaceWith(index);
    this.adopt(header, stamp);
  }

  private adopt(header: SnapshotHeader, stamp: string): void {
    this.snapStamp = stamp;
    this.generation = header.generation;
    this.absorbed = { ...header.absorbed };
    this.applied = new Map(Object.entries(header.absorbed));
    this.sealed.clear();
  }

  private listLogs(): string[] {
    try {
      return fs
        .readdirSync(this.dir)
        .filter((n) => n.startsWith('log-') && n.endsWith('.csl'))
        .sort();
    } catch (e) {
      throw ioError(e, `cannot list ${this.dir}`);
    }
  }

  /**
   * Applies records other writers appended since the last load or refresh. When another process
   * compacted meanwhile, the logs it absorbed may be gone: the new snapshot is loaded first.
   */
  refresh(): void {
    let now: fs.BigIntStats | undefined;
    try {
      now = fs.statSync(path.join(this.dir, SNAPSHOT), { bigint: true, throwIfNoEntry: false });
    } catch (e) {
      throw ioError(e, `cannot stat ${path.join(this.dir, SNAPSHOT)}`);
    }
    if (now && snapshotStamp(now) !== this.snapStamp) this.loadSnapshot();
    const records: LogRecord[] = [];
    for (const name of this.listLogs()) {
      if (this.sealed.has(name)) continue;
      let b: Buffer;
      try {
        b = fs.readFileSync(path.join(this.dir, name));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // compacted away meanwhile
        throw ioError(e, `cannot read log ${name}`);
      }
      const from = this.applied.get(name) ?? 0;
      if (b.length <= from) continue;
      const parsed = parseLog(name, b, from, this.index.scheme, this.index.bits);
      records.push(...parsed.records);
      this.applied.set(name, Math.max(from, parsed.end));
      if (parsed.sealed) this.sealed.add(name);
    }
    applyRecords(this.index, records);
  }

  private checkOpen(): void {
    if (this.closed) throw new InvalidArgumentError('similarity store is closed');
  }

  private nextTime(): number {
    this.lastTime = Math.max(Date.now(), this.lastTime + 1e-3);
    return this.lastTime;
  }

  /** Appends one record to this session's log, starting a new log if ours vanished. */
  private append(rec: Buffer): void {
    if (this.logFd !== null) {
      // A compactor may have deleted our log (only if it judged us dead): start a new one.
      let gone: boolean;
      try {
        gone = fs.statSync(path.join(this.dir, this.logName!)).ino !== this.logIno;
      } catch {
        gone = true;
      }
      if (gone) {
        fs.closeSync(this.logFd);
        this.logFd = null;
      }
    }
    if (this.logFd === null) {
      const name = newLogName();
      try {
        const fd = fs.openSync(path.join(this.dir, name), 'wx');
        const h = logHeader(this.index.scheme);
        fs.writeSync(fd, h);
        this.logFd = fd;
        this.logName = name;
        this.logIno = fs.fstatSync(fd).ino;
        this.applied.set(name, h.length);
      } catch (e) {
        throw ioError(e, `cannot create a similarity log in ${this.dir}`);
      }
    }
    try {
      const n = fs.writeSync(this.logFd, rec);
      if (n !== rec.length) throw new Error(`short write (${n} of ${rec.length} bytes)`);
      if (this.durable) fs.fsyncSync(this.logFd);
      this.applied.set(this.logName!, (this.applied.get(this.logName!) ?? 0) + rec.length);
    } catch (e) {
      // Never append after a failed write: the next record goes to a fresh log.
      try {
        fs.closeSync(this.logFd);
      } catch {
        /* already broken */
      }
      this.logFd = null;
      throw ioError(e, `cannot append to similarity log ${this.logName}`);
    }
  }

  /** Adds or replaces `id` (logged, then applied in memory). */
  async insert(id: string, fp: Fingerprint, meta?: EntryMeta): Promise<void> {
    this.checkOpen();
    this.index.insert(id, fp, meta); // validates first, so the log only holds valid records
    this.append(encodeRecord(OP_INSERT, this.nextTime(), id, fp, meta));
  }

  async remove(id: string): Promise<boolean> {
    this.checkOpen();
    const had = this.index.remove(id);
    this.append(encodeRecord(OP_REMOVE, this.nextTime(), id));
    return had;
  }

  query(fp: Fingerprint, options?: QueryOptions): SimilarityHit[] {
    return this.index.query(fp, options);
  }

  /** fsyncs this session's log. */
  async flush(): Promise<void> {
    if (this.logFd !== null) fs.fsyncSync(this.logFd);
  }

  /** Bytes of logs not yet absorbed by the snapshot, and how many logs hold them. */
  pendingLogs(): { bytes: number; logs: number } {
    let bytes = 0;
    let logs = 0;
    for (const name of this.listLogs()) {
      try {
        const n = fs.statSync(path.join(this.dir, name)).size - (this.absorbed[name] ?? 0);
        if (n <= 0) continue;
        bytes += n;
        logs++;
      } catch {
        /* vanished */
      }
    }
    return { bytes, logs };
  }

  private withLock<T>(fn: () => T): T | null {
    const lock = path.join(this.dir, LOCK);
    let fd: number;
    try {
      fd = fs.openSync(lock, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(e, `cannot create ${lock}`);
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs < STALE_LOCK_MS) return null;
        fs.rmSync(lock, { force: true });
        fd = fs.openSync(lock, 'wx');
      } catch {
        return null;
      }
    }
    try {
      fs.writeSync(fd, `${process.pid} ${safeHost()} ${new Date().toISOString()}\n`);
      fs.closeSync(fd);
      return fn();
    } finally {
      fs.rmSync(lock, { force: true });
    }
  }

  /**
   * Writes a new snapshot holding the current snapshot plus every log, then
   * deletes logs that are absorbed and sealed (or whose writer is gone).
   * Returns false when another process holds the compaction lock.
   */
  async compact(): Promise<boolean> {
    this.checkOpen();
    const ok = this.withLock(() => {
      // Reloads the snapshot only when another compactor replaced it (its stamp changed); else the
      // index in memory already is the snapshot plus every log up to `applied` (our own appends
      // included), so it is written as it stands. Reloading it unconditionally held two copies of
      // the index at once, at the close of every add that compacts.
      this.refresh();
      this.writeSnapshot(this.index, this.generation, new Map(this.applied));
      return true;
    });
    return ok ?? false;
  }

  /**
   * Replaces the index with `records` (authoritative: the fingerprints stored
   * with the objects). Log records written after the rebuild started are kept.
   * Throws LockedError if a compaction is running.
   */
  async rebuild(records: Iterable<IndexRecord> | AsyncIterable<IndexRecord>): Promise<void> {
    this.checkOpen();
    // Offsets taken before reading the records: anything appended later is replayed on top.
    const cut = new Map<string, number>();
    for (const name of this.listLogs()) {
      try {
        cut.set(name, fs.statSync(path.join(this.dir, name)).size);
      } catch {
        /* vanished */
      }
    }
    const fresh = SimilarityIndex.create({ ...parseScheme(this.index.scheme), bandBits: this.index.bandBits });
    await fresh.rebuild(records);
    // Only whole records may be marked absorbed: trim each cut back to a record boundary.
    for (const [name, size] of cut) {
      try {
        const b = fs.readFileSync(path.join(this.dir, name)).subarray(0, size);
        cut.set(name, parseLog(name, b, 0, this.index.scheme, this.index.bits).end);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') cut.delete(name);
        else if (e instanceof CorruptIndexError)
          cut.set(name, size); // a rebuild supersedes a corrupt log
        else throw e;
      }
    }
    const done = this.withLock(() => {
      this.writeSnapshot(fresh, this.generation + 1, cut);
      this.loadSnapshot();
      this.refresh();
      return true;
    });
    if (!done) throw new LockedError(`similarity index in ${this.dir} is being compacted; retry`);
  }

  private writeSnapshot(index: SimilarityIndex, generation: number, absorbedMap: Map<string, number>): void {
    const absorbed: Record<string, number> = {};
    for (const [name, off] of absorbedMap) absorbed[name] = off;
    const file = path.join(this.dir, SNAPSHOT);
    writeFileAtomic(file, encodeSnapshot({ generation, absorbed }, index));
    // Written under compact.lock, so no other snapshot can replace it before this stat.
    this.snapStamp = snapshotStamp(fs.statSync(file, { bigint: true }));
    this.generation = generation;
    this.absorbed = absorbed;
    // Delete logs that are fully absorbed and finished.
    removeFinishedLogs(this.dir, absorbed, this.logName, index.scheme, index.bits);
  }

  /**
   * Seals and closes this session's log. Compacts first when the logs have grown
   * past COMPACT_LOGS files or max(1 MiB, half the snapshot) and `compact` is not false.
   */
  async close(options: { compact?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    if (this.logFd !== null) {
      // Not fsynced (use flush() for that): the log is a rebuildable cache whose records were
      // never fsynced as they were appended either, so a power cut could already tear it
      // (handled: docs/similarity.md); the fsync on the event loop only narrowed that window.
      try {
        this.append(encodeRecord(OP_SEAL, this.nextTime(), ''));
      } finally {
        if (this.logFd !== null) fs.closeSync(this.logFd);
        this.logFd = null;
      }
    }
    if (options.compact !== false) {
      let snapSize = 0;
      try {
        snapSize = fs.statSync(path.join(this.dir, SNAPSHOT)).size;
      } catch {
        /* missing: compaction recreates it */
      }
      const pending = this.pendingLogs();
      if (pending.logs >= COMPACT_LOGS || pending.bytes > Math.max(1 << 20, snapSize / 2)) await this.compact();
    }
    this.logName = null;
    this.closed = true;
  }
}
