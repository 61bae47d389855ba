/**
 * The cast-id index (`.coral/castindex/`): for each stored F32/F64 tensor, the
 * content ids its round-to-nearest-even casts would have (F32 -> BF16 and F16,
 * F64 -> F32; computed in the same native pass as its own id, lib/hash.ts
 * `contentIdWithCasts`), mapped to the stored tensor. When a new tensor's
 * content id is in it, ingest writes a pure CAST object against that base
 * without reading the base (lib/ingest/bases.ts, lib/odb/objects.ts).
 *
 *   casts.ccx                     snapshot: magic, version, count, entries, CRC-32
 *   log-<t>-<host>-<pid>-<r>.ccl  one per writer session, append-only
 *   compact.lock                  held while the snapshot is replaced
 *
 * A hint, never trusted for content: an entry only names a candidate. The
 * writer checks the base is still stored (and of the expected dtype and
 * shape) and within the chain-depth limit, else takes the ordinary path; the
 * object's header carries the new tensor's content id, which decode verifies
 * as for every object. Crash safety follows the similarity index
 * (index-file.ts): writers append to their own log only, one write per batch,
 * every entry checksummed (a torn or damaged entry is skipped, never applied);
 * a session seals its log on close, and once the logs pass 16 files or 1 MiB,
 * compaction (under compact.lock) folds the snapshot and the logs into a new
 * snapshot via temp file + fsync + rename, and deletes only logs it absorbed
 * whose writer is finished (sealed, or a dead process on this host). An
 * unreadable snapshot counts as empty. `gc` drops entries whose base is gone
 * (`prune`), `fsck --rebuild-index` recreates the index (`rebuild`). Entries a
 * live writer's log still holds come back on replay until that log is
 * absorbed; the writer's checks make them harmless.
 *
 * @example
 * const ix = await CastIndex.open(layout.castindex);
 * await ix.add([{ castId, base: f32Id, dtype: 'BF16', rounding: 'RNE' }]);
 * ix.get(bf16Id); // { base: f32Id, dtype: 'BF16', rounding: 'RNE', castId }
 * await ix.close();
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DTYPES, dtypeFromCode, type DType } from '../tensor/dtype';
import { writeFileAtomicSync } from '../util/fsutil';
import { pidAlive } from '../util/process';
import { crc32, ioError } from './store-common';

export interface CastEntry {
  /** Content id of the cast (the narrow tensor). */
  castId: string;
  /** Content id of the stored tensor it is a cast of. */
  base: string;
  /** The cast's dtype. */
  dtype: DType;
  rounding: 'RNE' | 'RTZ';
}

const VERSION = 1;
const SNAPSHOT = 'casts.ccx';
const LOCK = 'compact.lock';
const SNAP_MAGIC = Buffer.from('CORALCCX');
const LOG_MAGIC = Buffer.from('CORALCCL');
const HEAD = 12; // magic + u32 version
/** Entry body: u8 op, u8 dtype code, u8 rounding, u8 0, 16 B cast id, 16 B base id. */
const BODY = 36;
/** A log record: the body, then the CRC-32 of the body. */
const REC = BODY + 4;
const OP_ADD = 1;
const OP_SEAL = 2;
const HEX = /^[0-9a-f]{32}$/;
/** close() compacts once there are this many logs, or this many bytes of them. */
const COMPACT_LOGS = 16;
const COMPACT_LOG_BYTES = 1 << 20;
const LOG_NAME = /^log-[0-9a-z]+-(.+)-(\d+)-[0-9a-f]+\.ccl$/;

/** Writes the entry body of `op` (and `e`) at `at` in `b`. */
function putBody(b: Buffer, at: number, op: number, e?: CastEntry): void {
  b.fill(0, at, at + BODY);
  b[at] = op;
  if (e) {
    b[at + 1] = DTYPES[e.dtype].code;
    b[at + 2] = e.rounding === 'RTZ' ? 1 : 0;
    b.write(e.castId, at + 4, 'hex');
    b.write(e.base, at + 20, 'hex');
  }
}

function parseBody(b: Buffer): CastEntry | null {
  if (b[0] !== OP_ADD || b[2] > 1 || b[3] !== 0) return null;
  let dtype: DType;
  try {
    dtype = dtypeFromCode(b[1]);
  } catch {
    return null;
  }
  return {
    castId: b.toString('hex', 4, 20),
    base: b.toString('hex', 20, 36),
    dtype,
    rounding: b[2] === 1 ? 'RTZ' : 'RNE',
  };
}

/** Log records of `op` for `entries` (one record of `op` alone when there are none), in one buffer. */
function records(op: number, entries: readonly (CastEntry | undefined)[]): Buffer {
  // One allocation for every record: a buffer per record, each given a backing store of its own by
  // the hex writes, is an allocation per tensor that V8 answers with young-generation collections.
  const r = Buffer.allocUnsafe(REC * entries.length);
  entries.forEach((e, i) => {
    putBody(r, i * REC, op, e);
    r.writeUInt32LE(crc32(r.subarray(i * REC, i * REC + BODY)), i * REC + BODY);
  });
  return r;
}

/** Entries of a log (checksummed records; damaged ones and a torn tail are skipped) and whether it is sealed. */
function parseLog(b: Buffer): { entries: CastEntry[]; sealed: boolean } {
  const entries: CastEntry[] = [];
  let sealed = false;
  if (b.length < HEAD || !b.subarray(0, 8).equals(LOG_MAGIC) || b.readUInt32LE(8) !== VERSION)
    return { entries, sealed };
  for (let o = HEAD; o + REC <= b.length; o += REC) {
    const rb = b.subarray(o, o + BODY);
    if (crc32(rb) !== b.readUInt32LE(o + BODY)) continue;
    if (rb[0] === OP_SEAL) sealed = true;
    const e = parseBody(rb);
    if (e) entries.push(e);
  }
  return { entries, sealed };
}

function encodeSnapshot(entries: readonly CastEntry[]): Buffer {
  // Written in place into one buffer: a snapshot holds every cast id of the repository.
  const n = entries.length;
  const b = Buffer.allocUnsafe(HEAD + 4 + n * BODY + 4);
  SNAP_MAGIC.copy(b, 0);
  b.writeUInt32LE(VERSION, 8);
  b.writeUInt32LE(n, 12);
  for (let i = 0; i < n; i++) putBody(b, HEAD + 4 + i * BODY, OP_ADD, entries[i]);
  b.writeUInt32LE(crc32(b.subarray(0, b.length - 4)), b.length - 4);
  return b;
}

/** Snapshot entries; an unreadable or damaged snapshot counts as empty (the index is a hint). */
function readSnapshot(dir: string): CastEntry[] {
  let b: Buffer;
  try {
    b = fs.readFileSync(path.join(dir, SNAPSHOT));
  } catch {
    return [];
  }
  if (b.length < HEAD + 8 || !b.subarray(0, 8).equals(SNAP_MAGIC) || b.readUInt32LE(8) !== VERSION) return [];
  const n = b.readUInt32LE(12);
  if (b.length !== HEAD + 4 + n * BODY + 4 || crc32(b.subarray(0, b.length - 4)) !== b.readUInt32LE(b.length - 4))
    return [];
  const out: CastEntry[] = [];
  for (let i = 0; i < n; i++) {
    const e = parseBody(b.subarray(HEAD + 4 + i * BODY, HEAD + 4 + (i + 1) * BODY));
    if (e) out.push(e);
  }
  return out;
}

function safeHost(): string {
  return (
    os
      .hostname()
      .replace(/[^A-Za-z0-9_.]/g, '_')
      .slice(0, 64) || 'host'
  );
}

function listLogs(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir)
      .filter((n) => LOG_NAME.test(n))
      .sort();
  } catch {
    return [];
  }
}

/** Takes compact.lock (false when another live process holds it). */
function tryLock(dir: string): boolean {
  const file = path.join(dir, LOCK);
  const mine = `${process.pid} ${safeHost()}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, mine, { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return false;
      let holder: string[];
      try {
        holder = fs.readFileSync(file, 'utf8').trim().split(' ');
      } catch {
        continue; // released meanwhile
      }
      const pid = Number(holder[0]);
      if (holder[1] !== safeHost() || pidAlive(pid)) return false;
      fs.rmSync(file, { force: true }); // left by a dead process on this host
    }
  }
  return false;
}

/** The persisted cast-id index of one repository (see the file comment). */
export class CastIndex {
  private entries = new Map<string, CastEntry>();
  private log: { name: string; fd: number } | null = null;

  private constructor(readonly dir: string) {}

  /** Loads the snapshot and replays every writer log. Never fails on damaged index files. */
  static open(dir: string): Promise<CastIndex> {
    const ix = new CastIndex(dir);
    ix.load();
    return Promise.resolve(ix);
  }

  private load(): void {
    this.entries.clear();
    for (const e of readSnapshot(this.dir)) this.entries.set(e.castId, e);
    for (const name of listLogs(this.dir)) {
      let b: Buffer;
      try {
        b = fs.readFileSync(path.join(this.dir, name));
      } catch {
        continue;
      }
      for (const e of parseLog(b).entries) this.entries.set(e.castId, e);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entry whose cast has content id `id`, if any (a candidate only: see the file comment). */
  get(id: string): CastEntry | undefined {
    return this.entries.get(id);
  }

  all(): CastEntry[] {
    return [...this.entries.values()];
  }

  /** Records entries: appended to this session's log in one write. */
  add(entries: readonly CastEntry[]): Promise<void> {
    const fresh = entries.filter((e) => {
      if (!HEX.test(e.castId) || !HEX.test(e.base)) return false;
      const cur = this.entries.get(e.castId);
      return !cur || cur.base !== e.base || cur.dtype !== e.dtype || cur.rounding !== e.rounding;
    });
    if (!fresh.length) return Promise.resolve();
    try {
      const log = this.openLog();
      fs.writeSync(log.fd, records(OP_ADD, fresh));
    } catch (e) {
      return Promise.reject(ioError(e, `cannot append to the cast-id index in ${this.dir}`));
    }
    for (const e of fresh) this.entries.set(e.castId, e);
    return Promise.resolve();
  }

  private openLog(): { name: string; fd: number } {
    if (this.log) return this.log;
    fs.mkdirSync(this.dir, { recursive: true });
    const name = `log-${Date.now().toString(36)}-${safeHost()}-${process.pid}-${crypto.randomBytes(4).toString('hex')}.ccl`;
    const fd = fs.openSync(path.join(this.dir, name), 'ax');
    const head = Buffer.alloc(HEAD);
    LOG_MAGIC.copy(head, 0);
    head.writeUInt32LE(VERSION, 8);
    fs.writeSync(fd, head);
    this.log = { name, fd };
    return this.log;
  }

  /**
   * Seals this session's log (not fsynced: a lost tail only loses hints) and compacts when the
   * logs have grown past COMPACT_LOGS files or COMPACT_LOG_BYTES (and no other process is
   * compacting), so a small `add` pays no snapshot rewrite.
   */
  close(): Promise<void> {
    if (!this.log) return Promise.resolve();
    try {
      fs.writeSync(this.log.fd, records(OP_SEAL, [undefined]));
    } finally {
      fs.closeSync(this.log.fd);
      this.log = null;
    }
    const logs = listLogs(this.dir);
    let bytes = 0;
    for (const name of logs) bytes += fs.statSync(path.join(this.dir, name), { throwIfNoEntry: false })?.size ?? 0;
    if (logs.length < COMPACT_LOGS && bytes < COMPACT_LOG_BYTES) return Promise.resolve();
    return this.compact().then(() => undefined);
  }

  /**
   * Folds the snapshot and the logs into a new snapshot, keeping the entries `keep` accepts,
   * and deletes absorbed logs of finished writers. False when another process holds the lock.
   */
  async compact(keep?: (e: CastEntry) => Promise<boolean>): Promise<boolean> {
    if (!fs.existsSync(this.dir) || !tryLock(this.dir)) return false;
    try {
      const merged = new Map<string, CastEntry>();
      for (const e of readSnapshot(this.dir)) merged.set(e.castId, e);
      const finished: string[] = [];
      const host = safeHost();
      for (const name of listLogs(this.dir)) {
        let parsed: ReturnType<typeof parseLog>;
        try {
          parsed = parseLog(fs.readFileSync(path.join(this.dir, name)));
        } catch {
          continue;
        }
        for (const e of parsed.entries) merged.set(e.castId, e);
        const m = LOG_NAME.exec(name)!;
        const own = this.log?.name === name;
        if (!own && (parsed.sealed || (m[1] === host && !pidAlive(Number(m[2]))))) finished.push(name);
      }
      if (keep) for (const [k, e] of merged) if (!(await keep(e))) merged.delete(k);
      try {
        writeFileAtomicSync(path.join(this.dir, SNAPSHOT), encodeSnapshot([...merged.values()]));
      } catch (e) {
        throw ioError(e, `cannot write the cast-id index snapshot in ${this.dir}`);
      }
      for (const name of finished) fs.rmSync(path.join(this.dir, name), { force: true });
      // `merged` is what load() would read back (the new snapshot, and the logs it kept fold into
      // it again): adopted instead of a second read that would hold two copies of the index at once.
      this.entries = merged;
      return true;
    } finally {
      fs.rmSync(path.join(this.dir, LOCK), { force: true });
    }
  }

  /** Replaces the whole index with `entries` (fsck --rebuild-index); logs of live writers are kept. */
  async rebuild(entries: readonly CastEntry[]): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    if (!tryLock(this.dir)) throw ioError('another process is compacting it', `cannot rebuild ${this.dir}`);
    try {
      writeFileAtomicSync(path.join(this.dir, SNAPSHOT), encodeSnapshot(entries));
      const host = safeHost();
      for (const name of listLogs(this.dir)) {
        const m = LOG_NAME.exec(name)!;
        let sealed = false;
        try {
          sealed = parseLog(fs.readFileSync(path.join(this.dir, name))).sealed;
        } catch {
          sealed = true;
        }
        if (this.log?.name !== name && (sealed || (m[1] === host && !pidAlive(Number(m[2])))))
          fs.rmSync(path.join(this.dir, name), { force: true });
      }
    } finally {
      fs.rmSync(path.join(this.dir, LOCK), { force: true });
    }
    await Promise.resolve();
    this.load();
  }
}

/** The cast-id attribute of a stored F32/F64 object (kept with `similarity.storeFingerprints`). */
export const CAST_ATTR = 'castids';

/** `BF16:<id>,F16:<id>` for the attribute. */
export function encodeCastAttr(casts: ReadonlyArray<{ dtype: DType; id: string }>): string {
  return casts.map((c) => `${c.dtype}:${c.id}`).join(',');
}

/** Parses the attribute; null when malformed. */
export function decodeCastAttr(s: string): Array<{ dtype: DType; id: string }> | null {
  const out: Array<{ dtype: DType; id: string }> = [];
  for (const part of s.split(',')) {
    const [d, id] = part.split(':');
    if (!(d in DTYPES) || !id || !HEX.test(id)) return null;
    out.push({ dtype: d as DType, id });
  }
  return out;
}
