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
 * @example
 * const store = await SimilarityStore.open('.coral/simindex');
 * await store.insert(id, fp);
 * store.query(fp2, { minSimilarity: 0.98 });
 * await store.close();
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { CorruptIndexError, InvalidArgumentError, IoError, LockedError, invalidParameter } from '../errors';
import { DTYPES, dtypeFromCode } from '../tensor/dtype';
import { parseScheme, type Fingerprint } from './fingerprint';
import {
  SimilarityIndex,
  type EntryMeta,
  type IndexOptions,
  type IndexRecord,
  type QueryOptions,
  type SimilarityHit,
} from './lsh-index';
import { pidAlive } from '../util/process';
import { writeFileAtomicSync } from '../util/fsutil';

const SNAPSHOT = 'index.csx';
const LOCK = 'compact.lock';
const SNAP_MAGIC = Buffer.from('CORALSIX');
const LOG_MAGIC = Buffer.from('CORALSIL');
const FORMAT_VERSION = 1;
const OP_INSERT = 1;
const OP_REMOVE = 2;
const OP_SEAL = 3;
/** Record header: u32 body length, u32 its complement, u32 CRC-32 of the body. */
const REC_HEAD = 12;
const MAX_RECORD = 1 << 20;
/** A compaction lock older than this is considered abandoned. */
const STALE_LOCK_MS = 10 * 60 * 1000;

const crc32: (b: Uint8Array) => number = (zlib as unknown as { crc32: (b: Uint8Array) => number }).crc32;

interface SnapshotHeader {
  generation: number;
  /** Log file name -> bytes of it already contained in the snapshot. */
  absorbed: Record<string, number>;
}

interface LogRecord {
  time: number;
  log: string;
  seq: number;
  op: number;
  id: string;
  fp?: Fingerprint;
  meta?: EntryMeta & { rms: number };
}

export interface StoreOptions extends IndexOptions {
  /** fsync the log after every record (default false: on flush() and close()). */
  durable?: boolean;
}

function ioError(e: unknown, what: string): IoError {
  const msg = e instanceof Error ? e.message : String(e);
  return new IoError(`${what}: ${msg}`, { cause: msg });
}

/** Atomic replace (lib/util/fsutil.ts); kept under this name for the public similarity API. */
export function writeFileAtomic(file: string, data: Uint8Array): void {
  writeFileAtomicSync(file, data);
}

// ---- snapshot ------------------------------------------------------------------------------

function encodeSnapshot(h: SnapshotHeader, index: SimilarityIndex): Buffer {
  const json = Buffer.from(JSON.stringify({ v: FORMAT_VERSION, ...h }), 'utf8');
  const head = Buffer.alloc(8 + 4 + 4);
  SNAP_MAGIC.copy(head, 0);
  head.writeUInt32LE(FORMAT_VERSION, 8);
  head.writeUInt32LE(json.length, 12);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(Buffer.concat([head, json])), 0);
  return Buffer.concat([head, json, crc, index.serialize()]);
}

function decodeSnapshot(file: string, b: Buffer): { header: SnapshotHeader; index: SimilarityIndex } {
  const bad = (why: string) => new CorruptIndexError(`similarity snapshot ${file} is corrupt: ${why}`, { file });
  if (b.length < 20 || !b.subarray(0, 8).equals(SNAP_MAGIC)) throw bad('bad magic');
  const version = b.readUInt32LE(8);
  if (version !== FORMAT_VERSION) throw bad(`unsupported version ${version}`);
  const jlen = b.readUInt32LE(12);
  if (16 + jlen + 4 > b.length) throw bad('truncated header');
  if (crc32(b.subarray(0, 16 + jlen)) !== b.readUInt32LE(16 + jlen)) throw bad('header checksum mismatch');
  let header: SnapshotHeader;
  try {
    const j = JSON.parse(b.toString('utf8', 16, 16 + jlen)) as unknown;
    if (typeof j !== 'object' || j === null) throw new Error();
    const { generation, absorbed } = j as { generation?: unknown; absorbed?: unknown };
    if (
      typeof generation !== 'number' ||
      !Number.isInteger(generation) ||
      typeof absorbed !== 'object' ||
      absorbed === null
    )
      throw new Error();
    for (const v of Object.values(absorbed))
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error();
    header = { generation, absorbed: absorbed as Record<string, number> };
  } catch {
    throw bad('header is not valid JSON of the expected form');
  }
  let index: SimilarityIndex;
  try {
    index = SimilarityIndex.deserialize(b.subarray(16 + jlen + 4));
  } catch (e) {
    if (e instanceof CorruptIndexError) throw bad(e.message);
    throw e;
  }
  return { header, index };
}

// ---- logs ----------------------------------------------------------------------------------

function logHeader(scheme: string): Buffer {
  const s = Buffer.from(scheme, 'utf8');
  const b = Buffer.alloc(8 + 4 + 4 + s.length + 4);
  LOG_MAGIC.copy(b, 0);
  b.writeUInt32LE(FORMAT_VERSION, 8);
  b.writeUInt32LE(s.length, 12);
  s.copy(b, 16);
  b.writeUInt32LE(crc32(b.subarray(0, 16 + s.length)), 16 + s.length);
  return b;
}

function encodeRecord(op: number, time: number, id: string, fp?: Fingerprint, meta?: EntryMeta): Buffer {
  const idb = Buffer.from(id, 'utf8');
  const shape = meta?.shape ?? fp?.shape ?? [];
  const sig = fp?.signature ?? new Uint8Array(0);
  const bodyLen = 1 + 8 + 2 + idb.length + (op === OP_INSERT ? 1 + 1 + 8 * shape.length + 8 + sig.byteLength : 0);
  const b = Buffer.alloc(REC_HEAD + bodyLen);
  b.writeUInt32LE(bodyLen, 0);
  b.writeUInt32LE(~bodyLen >>> 0, 4);
  let o = REC_HEAD;
  o = b.writeUInt8(op, o);
  o = b.writeDoubleLE(time, o);
  o = b.writeUInt16LE(idb.length, o);
  o += idb.copy(b, o);
  if (op === OP_INSERT && fp) {
    o = b.writeUInt8(DTYPES[meta?.dtype ?? fp.dtype].code, o);
    o = b.writeUInt8(shape.length, o);
    for (const d of shape) o = b.writeDoubleLE(d, o);
    o = b.writeDoubleLE(meta?.rms ?? fp.rms, o);
    b.set(sig, o);
  }
  b.writeUInt32LE(crc32(b.subarray(REC_HEAD)), 8);
  return b;
}

interface ParsedLog {
  records: LogRecord[];
  /** Bytes consumed (header + whole valid records). */
  end: number;
  sealed: boolean;
}

/**
 * Parses log bytes from `start`. A short or bad record that reaches the end of
 * the file is a torn tail (ignored); a bad record followed by more data is corruption.
 */
function parseLog(name: string, b: Buffer, start: number, scheme: string, bits: number): ParsedLog {
  const bad = (why: string) => new CorruptIndexError(`similarity log ${name} is corrupt: ${why}`, { file: name });
  const hlen = logHeader(scheme).length;
  if (b.length < hlen) return { records: [], end: 0, sealed: false }; // header torn: writer died at once
  if (!b.subarray(0, 8).equals(LOG_MAGIC)) throw bad('bad magic');
  if (b.readUInt32LE(8) !== FORMAT_VERSION) throw bad('unsupported version');
  const slen = b.readUInt32LE(12);
  if (16 + slen + 4 > b.length || crc32(b.subarray(0, 16 + slen)) !== b.readUInt32LE(16 + slen))
    throw bad('header checksum mismatch');
  const logScheme = b.toString('utf8', 16, 16 + slen);
  if (logScheme !== scheme) throw bad(`scheme ${logScheme} differs from the index scheme ${scheme}; rebuild the index`);
  let o = Math.max(start, hlen);
  const records: LogRecord[] = [];
  let sealed = false;
  let seq = 0;
  while (o < b.length) {
    if (b.length - o < REC_HEAD) break; // torn
    const len = b.readUInt32LE(o);
    if (len !== ~b.readUInt32LE(o + 4) >>> 0 || len > MAX_RECORD) throw bad(`bad record length at byte ${o}`);
    if (len > b.length - o - REC_HEAD) break; // torn
    const body = b.subarray(o + REC_HEAD, o + REC_HEAD + len);
    if (crc32(body) !== b.readUInt32LE(o + 8)) {
      if (o + REC_HEAD + len === b.length) break; // torn last record
      throw bad(`record checksum mismatch at byte ${o}`);
    }
    try {
      let p = 0;
      const op = body.readUInt8(p++);
      const time = body.readDoubleLE(p);
      p += 8;
      const idLen = body.readUInt16LE(p);
      p += 2;
      const id = body.toString('utf8', p, p + idLen);
      p += idLen;
      if (op === OP_INSERT) {
        const dtype = dtypeFromCode(body.readUInt8(p++));
        const nd = body.readUInt8(p++);
        const shape: number[] = [];
        for (let i = 0; i < nd; i++, p += 8) shape.push(body.readDoubleLE(p));
        const rms = body.readDoubleLE(p);
        p += 8;
        if (len - p !== bits / 8) throw new Error('signature length');
        const numel = shape.reduce((a, d) => a * d, 1);
        const fp: Fingerprint = {
          scheme,
          bits,
          signature: new Uint8Array(body.subarray(p)),
          dtype,
          shape,
          numel,
          samples: 0,
          exact: false,
          small: false,
          nonfinite: 0,
          mean: 0,
          rms,
        };
        records.push({ time, log: name, seq: seq++, op, id, fp, meta: { dtype, shape, rms } });
      } else if (op === OP_REMOVE) {
        records.push({ time, log: name, seq: seq++, op, id });
      } else if (op === OP_SEAL) {
        sealed = true;
      } else {
        throw new Error(`unknown op ${op}`);
      }
    } catch (e) {
      throw bad(`malformed record at byte ${o} (${e instanceof Error ? e.message : String(e)})`);
    }
    o += REC_HEAD + len;
  }
  return { records, end: o, sealed };
}

function applyRecords(index: SimilarityIndex, records: LogRecord[]): void {
  records.sort((a, b) => a.time - b.time || (a.log < b.log ? -1 : a.log > b.log ? 1 : a.seq - b.seq));
  for (const r of records) {
    if (r.op === OP_INSERT) index.insert(r.id, r.fp!, r.meta);
    else index.remove(r.id);
  }
}

function logOwner(name: string): { host: string; pid: number } | null {
  const m = /^log-[0-9a-z]+-(.+)-(\d+)-[0-9a-f]+\.csl$/.exec(name);
  return m ? { host: m[1], pid: Number(m[2]) } : null;
}

function safeHost(): string {
  return (
    os
      .hostname()
      .replace(/[^A-Za-z0-9_.]/g, '_')
      .slice(0, 64) || 'host'
  );
}

function readSnapshot(dir: string): { header: SnapshotHeader; index: SimilarityIndex } {
  const file = path.join(dir, SNAPSHOT);
  let b: Buffer;
  try {
    b = fs.readFileSync(file);
  } catch (e) {
    throw ioError(e, `cannot read ${file}`);
  }
  return decodeSnapshot(file, b);
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
    const { header, index } = readSnapshot(dir);
    const store = new SimilarityStore(dir, index, durable ?? false);
    store.adopt(header);
    store.refresh();
    return store;
  }

  /** Reloads the snapshot into the same SimilarityIndex object (callers may hold it). */
  private loadSnapshot(): void {
    const { header, index } = readSnapshot(this.dir);
    this.index.replaceWith(index);
    this.adopt(header);
  }

  private adopt(header: SnapshotHeader): void {
    this.generation = header.generation;
    this.absorbed = { ...header.absorbed };
    this.applied = new Map(Object.entries(header.absorbed));
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

  /** Applies records other writers appended since the last load or refresh. */
  refresh(): void {
    const records: LogRecord[] = [];
    for (const name of this.listLogs()) {
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
      const name = `log-${Date.now().toString(36)}-${safeHost()}-${process.pid}-${crypto.randomBytes(4).toString('hex')}.csl`;
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

  /** Total bytes of logs not yet absorbed by the snapshot. */
  pendingLogBytes(): number {
    let n = 0;
    for (const name of this.listLogs()) {
      try {
        n += Math.max(0, fs.statSync(path.join(this.dir, name)).size - (this.absorbed[name] ?? 0));
      } catch {
        /* vanished */
      }
    }
    return n;
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
      this.loadSnapshot(); // another compactor may have moved on
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
    writeFileAtomic(path.join(this.dir, SNAPSHOT), encodeSnapshot({ generation, absorbed }, index));
    this.generation = generation;
    this.absorbed = absorbed;
    // Delete logs that are fully absorbed and finished.
    const host = safeHost();
    for (const name of Object.keys(absorbed)) {
      if (name === this.logName) continue;
      const file = path.join(this.dir, name);
      let size: number;
      try {
        size = fs.statSync(file).size;
      } catch {
        continue;
      }
      if (size !== absorbed[name]) continue;
      let finished: boolean;
      try {
        finished = parseLog(name, fs.readFileSync(file), 0, index.scheme, index.bits).sealed;
      } catch {
        finished = true; // corrupt and absorbed (a rebuild superseded it)
      }
      const owner = logOwner(name);
      if (!finished && owner) {
        // A writer on another host cannot be checked from here: its log stays (pidAlive says alive).
        finished = owner.host === host && !pidAlive(owner.pid);
      }
      if (finished) fs.rmSync(file, { force: true });
    }
  }

  /**
   * Seals and closes this session's log. Compacts first when the logs have
   * grown past max(1 MiB, half the snapshot) and `compact` is not false.
   */
  async close(options: { compact?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    if (this.logFd !== null) {
      try {
        this.append(encodeRecord(OP_SEAL, this.nextTime(), ''));
        fs.fsyncSync(this.logFd);
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
      if (this.pendingLogBytes() > Math.max(1 << 20, snapSize / 2)) await this.compact();
    }
    this.logName = null;
    this.closed = true;
  }
}
