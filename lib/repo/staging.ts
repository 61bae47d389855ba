/**
 * The staging area (`.coral/index`): the tree the next commit will record,
 * plus a stat cache per file so status need not rehash unchanged files.
 * Always replaced whole and atomically, under `.coral/index.lock`.
 *
 * On disk: the magic `\0CI1` then Brotli-compressed JSON (it repeats every
 * file's segment list, so it compresses ~10x). Plain JSON is read too.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { CorruptObjectError } from '../errors';
import type { FileEntry } from '../models/tree';
import { LockFile } from '../refs/lock';
import type { RepoLayout } from './layout';
import { lockTimeoutMs } from '../util/waits';

export interface StatCache {
  size: number;
  mtimeMs: number;
  ino: number;
}

export interface StagedFile {
  entry: FileEntry;
  stat: StatCache | null;
}

export interface StagingIndex {
  version: 1;
  files: Record<string, StagedFile>;
}

export function emptyIndex(): StagingIndex {
  return { version: 1, files: {} };
}

const INDEX_MAGIC = Buffer.from([0, 0x43, 0x49, 0x31]); // "\0CI1"

export function encodeIndexFile(idx: StagingIndex): Buffer {
  const json = Buffer.from(JSON.stringify(idx));
  return Buffer.concat([
    INDEX_MAGIC,
    zlib.brotliCompressSync(json, {
      params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: json.length },
    }),
  ]);
}

export function readIndex(layout: RepoLayout): StagingIndex {
  let text: string;
  try {
    const raw = fs.readFileSync(layout.index);
    text = raw.subarray(0, 4).equals(INDEX_MAGIC)
      ? zlib.brotliDecompressSync(raw.subarray(4), { maxOutputLength: 1 << 30 }).toString('utf8')
      : raw.toString('utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyIndex();
    if ((e as NodeJS.ErrnoException).code?.startsWith('ERR_')) throw new CorruptObjectError(`staging index ${layout.index} does not decompress; restore it with \`coral reset\``);
    throw e;
  }
  let v: StagingIndex;
  try {
    v = JSON.parse(text) as StagingIndex;
  } catch {
    throw new CorruptObjectError(`staging index ${layout.index} is not valid JSON; restore it with \`coral reset\``);
  }
  if (!v || v.version !== 1 || typeof v.files !== 'object')
    throw new CorruptObjectError(`staging index ${layout.index} has an unknown format`);
  return v;
}

/**
 * Read-modify-write of the index under its lock. `fn` may be async; the lock
 * is held throughout, so concurrent `add`s never drop each other's entries.
 */
export async function updateIndex<T>(
  layout: RepoLayout,
  fn: (idx: StagingIndex) => Promise<T> | T,
): Promise<T> {
  const lock = await LockFile.acquire(layout.index, { timeoutMs: lockTimeoutMs(layout.coral) });
  try {
    const idx = readIndex(layout);
    const out = await fn(idx);
    await lock.write(encodeIndexFile(idx));
    await lock.commit();
    return out;
  } catch (e) {
    await lock.release();
    throw e;
  }
}

export function statOf(st: fs.Stats): StatCache {
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
}

export function sameStat(a: StatCache | null, st: fs.Stats): boolean {
  return !!a && a.size === st.size && a.mtimeMs === st.mtimeMs && a.ino === st.ino;
}
