/**
 * Loose, sha256-addressed storage of meta objects (commits, trees, annotated
 * tags) under `.coral/objects/meta/<id[0:2]>/<id[2:]>`. Objects are immutable:
 * written once through a temp file in `.coral/tmp` + fsync + rename, and
 * verified against their id on every read.
 *
 * On disk an object is either its canonical JSON as is (first byte `{`), or
 * the 4-byte magic `\0CB1` followed by the Brotli-compressed canonical JSON.
 * Trees list every file's segments, so they compress 5-20x; the id is always
 * the sha256 of the canonical (uncompressed) bytes.
 *
 * @example
 * const meta = new MetaStore('.coral/objects/meta', '.coral/tmp');
 * const id = await meta.put(encodeCommit(c));
 * const commit = await meta.readCommit(id);
 */
import { promises as fsp, readFile } from 'node:fs';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import * as path from 'node:path';
import {
  CorruptObjectError,
  InvalidArgumentError,
  ObjectNotFoundError,
  RefNotFoundError,
  invalidParameter,
} from '../errors';
import { brotliTextOptions } from '../util/brotli';
import { ioError, mkdirp, writeFileAtomic } from '../util/fsutil';
import { isSha256Hex, sha256Hex } from '../models/canonical';
import type { Commit } from '../models/commit';
import { decodeMeta, type MetaObject, type MetaType } from '../models/meta';
import type { TagObject } from '../models/tag';
import type { Tree } from '../models/tree';

/** Shortest accepted abbreviated id. */
export const MIN_PREFIX_LENGTH = 4;
const COMMIT_CACHE_MAX = 8192;

/**
 * fs.readFile behind a promise: a meta object is small and read whole, and the callback form costs about
 * half the event-loop time of fs.promises.readFile (which opens a FileHandle and makes a separate request
 * for open, fstat, read and close); walking a long history reads thousands of them.
 */
const readWhole = promisify(readFile);

const BROTLI_MAGIC = Buffer.from([0, 0x43, 0x42, 0x31]); // "\0CB1"

/** The on-disk form of canonical meta bytes (also the form of meta objects on a remote). */
export function metaToDisk(bytes: Uint8Array): Buffer {
  const packed = zlib.brotliCompressSync(bytes, brotliTextOptions(bytes.byteLength, 9));
  return packed.length + BROTLI_MAGIC.length < bytes.byteLength
    ? Buffer.concat([BROTLI_MAGIC, packed])
    : Buffer.from(bytes);
}

/** Canonical bytes from the on-disk form; null when the container is damaged. */
export function metaFromDisk(buf: Buffer): Buffer | null {
  if (buf.length >= 4 && buf.subarray(0, 4).equals(BROTLI_MAGIC)) {
    try {
      return zlib.brotliDecompressSync(buf.subarray(4), { maxOutputLength: 256 * 1024 * 1024 });
    } catch {
      return null;
    }
  }
  return buf;
}

export class MetaStore {
  readonly dir: string;
  readonly tmpDir: string;
  private tmpReady = false;
  // Commits are immutable and walked repeatedly (log, merge-base): cache the decoded form.
  private readonly commitCache = new Map<string, Commit>();

  /** @param dir `.coral/objects/meta`  @param tmpDir `.coral/tmp` (same filesystem) */
  constructor(dir: string, tmpDir: string) {
    if (typeof dir !== 'string' || !dir) throw invalidParameter('dir', 'non-empty string', dir);
    if (typeof tmpDir !== 'string' || !tmpDir) throw invalidParameter('tmpDir', 'non-empty string', tmpDir);
    this.dir = dir;
    this.tmpDir = tmpDir;
  }

  /** Path of the loose file of `id`. */
  pathOf(id: string): string {
    checkId(id);
    return path.join(this.dir, id.slice(0, 2), id.slice(2));
  }

  /**
   * Stores meta bytes and returns their id (sha256 hex). The bytes must decode
   * as a commit, tree or tag (CorruptObjectError otherwise). Already present and
   * intact objects are not rewritten; a present but damaged copy is replaced.
   */
  async put(bytes: Uint8Array): Promise<string> {
    if (!(bytes instanceof Uint8Array)) throw invalidParameter('bytes', 'Uint8Array', bytes);
    decodeMeta(bytes);
    const id = sha256Hex(bytes);
    const file = this.pathOf(id);
    try {
      const cur = metaFromDisk(await fsp.readFile(file));
      if (cur && sha256Hex(cur) === id) return id;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(e, 'read', file);
    }
    if (!this.tmpReady) {
      await mkdirp(this.tmpDir);
      this.tmpReady = true;
    }
    await mkdirp(path.dirname(file));
    await writeFileAtomic(file, metaToDisk(bytes), { tmpDir: this.tmpDir, mode: 0o444 });
    return id;
  }

  /** The verified bytes of `id`. ObjectNotFoundError if absent, CorruptObjectError if damaged. */
  async get(id: string): Promise<Buffer> {
    const file = this.pathOf(id);
    let buf: Buffer;
    try {
      buf = await readWhole(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new ObjectNotFoundError(`meta object ${id} not found`, { id });
      throw ioError(e, 'read', file);
    }
    const raw = metaFromDisk(buf);
    if (!raw)
      throw new CorruptObjectError(`meta object ${id} is corrupt: its compressed container does not decode`, {
        id,
        path: file,
      });
    buf = raw;
    const got = sha256Hex(buf);
    if (got !== id)
      throw new CorruptObjectError(`meta object ${id} is corrupt: its content hashes to ${got}`, {
        id,
        actual: got,
        path: file,
      });
    return buf;
  }

  async has(id: string): Promise<boolean> {
    try {
      await fsp.access(this.pathOf(id));
      return true;
    } catch {
      return false;
    }
  }

  /** Every stored id (unordered). Temp and foreign files are skipped. */
  async *list(): AsyncIterable<string> {
    let fans: string[];
    try {
      fans = await fsp.readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw ioError(e, 'list', this.dir);
    }
    for (const fan of fans.sort()) {
      if (!/^[0-9a-f]{2}$/.test(fan)) continue;
      let names: string[];
      try {
        names = await fsp.readdir(path.join(this.dir, fan));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        throw ioError(e, 'list', path.join(this.dir, fan));
      }
      for (const n of names.sort()) if (/^[0-9a-f]{62}$/.test(n)) yield fan + n;
    }
  }

  /** Removes `id`; returns false if it was not there. (Used by gc only.) */
  async delete(id: string): Promise<boolean> {
    this.commitCache.delete(id);
    const file = this.pathOf(id);
    try {
      await fsp.unlink(file);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw ioError(e, 'delete', file);
    }
  }

  /** Reads and decodes any meta object. */
  async read(id: string): Promise<MetaObject> {
    const bytes = await this.get(id);
    try {
      return decodeMeta(bytes);
    } catch (e) {
      if (e instanceof CorruptObjectError) throw new CorruptObjectError(`meta object ${id}: ${e.message}`, { id });
      throw e;
    }
  }

  /** Type of a stored object. */
  async typeOf(id: string): Promise<MetaType> {
    return (await this.read(id)).type;
  }

  /** Reads a commit; InvalidArgumentError if `id` is another type. Returns a fresh copy. */
  async readCommit(id: string): Promise<Commit> {
    const hit = this.commitCache.get(id);
    if (hit) return structuredClone(hit);
    const c = this.expect(id, await this.read(id), 'commit');
    if (this.commitCache.size >= COMMIT_CACHE_MAX) this.commitCache.delete(this.commitCache.keys().next().value!);
    this.commitCache.set(id, c);
    return structuredClone(c);
  }

  /** Reads a tree; InvalidArgumentError if `id` is another type. */
  async readTree(id: string): Promise<Tree> {
    return this.expect(id, await this.read(id), 'tree');
  }

  /** Reads an annotated tag; InvalidArgumentError if `id` is another type. */
  async readTag(id: string): Promise<TagObject> {
    return this.expect(id, await this.read(id), 'tag');
  }

  /**
   * Expands an abbreviated id (>= 4 hex chars, any case) to the unique full id.
   * RefNotFoundError when nothing matches; InvalidArgumentError naming the
   * candidates when several do.
   */
  async resolvePrefix(prefix: string): Promise<string> {
    if (
      typeof prefix !== 'string' ||
      !/^[0-9a-fA-F]+$/.test(prefix) ||
      prefix.length < MIN_PREFIX_LENGTH ||
      prefix.length > 64
    )
      throw invalidParameter('prefix', `${MIN_PREFIX_LENGTH} to 64 hex characters`, prefix);
    const p = prefix.toLowerCase();
    if (p.length === 64) {
      if (await this.has(p)) return p;
      throw new RefNotFoundError(`no object ${p}`, { prefix: p });
    }
    const fan = path.join(this.dir, p.slice(0, 2));
    let names: string[] = [];
    try {
      names = await fsp.readdir(fan);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw ioError(e, 'list', fan);
    }
    const rest = p.slice(2);
    const hits = names
      .filter((n) => /^[0-9a-f]{62}$/.test(n) && n.startsWith(rest))
      .sort()
      .map((n) => p.slice(0, 2) + n);
    if (hits.length === 0) throw new RefNotFoundError(`no object matches the abbreviated id ${p}`, { prefix: p });
    if (hits.length > 1)
      throw new InvalidArgumentError(
        `abbreviated id ${p} is ambiguous; candidates: ${hits.slice(0, 10).join(', ')}${hits.length > 10 ? ', …' : ''}`,
        { prefix: p, candidates: hits },
      );
    return hits[0];
  }

  private expect<T extends MetaType>(id: string, m: MetaObject, type: T): MetaValue[T] {
    if (m.type !== type)
      throw new InvalidArgumentError(`object ${id} is a ${m.type}, not a ${type}`, {
        id,
        expected: type,
        actual: m.type,
      });
    return m.value as MetaValue[T];
  }
}

interface MetaValue {
  commit: Commit;
  tree: Tree;
  tag: TagObject;
}

function checkId(id: unknown): asserts id is string {
  if (!isSha256Hex(id)) throw invalidParameter('id', '64 lowercase hex characters', id);
}
