/**
 * Small, boring filesystem helpers used by every on-disk structure of a
 * repository: atomic replace (temp file + fsync + rename + directory fsync),
 * directory fsync, existence checks and strict JSON reading.
 *
 * Why the directory fsync: rename(2) is atomic, but the new directory entry is
 * only durable once the directory itself is flushed (ext4/xfs semantics).
 *
 * @example
 * await writeFileAtomic('.coral/HEAD', 'ref: refs/heads/main\n');
 * const cfg = await readJsonFile<Record<string, unknown>>('.coral/config');
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CorruptObjectError, IoError, invalidParameter } from '../errors';

export interface WriteAtomicOptions {
  /** File mode of the published file (default 0o644, subject to umask). */
  mode?: number;
  /** fsync the file and its directory (default true). Turn off only for throwaway data. */
  fsync?: boolean;
  /**
   * Directory for the temp file; must be on the same filesystem as the target
   * (e.g. `.coral/tmp`). Defaults to the target's directory.
   */
  tmpDir?: string;
  /**
   * With fsync on, also fsync the target directory (default true). Callers that
   * publish several files into one directory pass false and fsync it once.
   */
  fsyncDir?: boolean;
}

let tmpCounter = 0;

/** A temp file name unique across processes and calls: `.<base>.<pid>.<n>.<rand>.tmp`. */
export function uniqueTmpName(base: string): string {
  tmpCounter = (tmpCounter + 1) % 0x7fffffff;
  return `.${base}.${process.pid}.${tmpCounter}.${randomBytes(6).toString('hex')}.tmp`;
}

/** Wraps a Node fs error into an IoError naming the operation and path (CoralErrors pass through). */
export function ioError(e: unknown, op: string, p: string): Error {
  const code = (e as { code?: unknown } | null)?.code;
  if (e instanceof Error && typeof code === 'string' && !code.startsWith('CORAL_')) {
    return new IoError(`${op} ${p} failed: ${e.message}`, { path: p, op, errno: code });
  }
  return e as Error;
}

/**
 * Directory fsync is not possible here (some filesystems and platforms refuse
 * it: EINVAL on some network/FUSE filesystems, ENOTSUP/EOPNOTSUPP, EISDIR or
 * EPERM on Windows). Nothing more can be done there; every other error (EIO,
 * ENOSPC, EACCES...) surfaces.
 */
function fsyncUnsupported(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return (
    code === 'EINVAL' ||
    code === 'ENOTSUP' ||
    code === 'EOPNOTSUPP' ||
    (process.platform === 'win32' && (code === 'EISDIR' || code === 'EPERM'))
  );
}

/**
 * fsync a directory so that entries created, renamed or removed in it are
 * durable. Errors surface as IoError, except "directory fsync unsupported"
 * (see fsyncUnsupported).
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch (e) {
    if (fsyncUnsupported(e)) return;
    throw ioError(e, 'fsync directory', dir);
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Synchronous fsyncDir, for code that must not yield (the similarity index, materialize). */
export function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    if (fsyncUnsupported(e)) return;
    throw ioError(e, 'fsync directory', dir);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function checkWriteArgs(file: unknown, data: unknown): void {
  if (typeof file !== 'string' || file.length === 0) throw invalidParameter('path', 'non-empty string', file);
  if (typeof data !== 'string' && !(data instanceof Uint8Array))
    throw invalidParameter('data', 'Uint8Array or string', data);
}

/**
 * Replaces `file` atomically: readers see the old content or the new content,
 * never a mix, and after a crash either is present in full. Steps: write a
 * unique temp file (same directory, or `opts.tmpDir` on the same filesystem),
 * fsync it, rename it over the target, fsync the target directory.
 */
export async function writeFileAtomic(
  file: string,
  data: Uint8Array | string,
  opts: WriteAtomicOptions = {},
): Promise<void> {
  checkWriteArgs(file, data);
  return writeFileAtomicWith(file, (fh) => fh.writeFile(data), opts);
}

/**
 * writeFileAtomic with the content written by `fn` into the open temp file
 * (streaming writers: checkpoint formats). Same steps and guarantees.
 */
export async function writeFileAtomicWith(
  file: string,
  fn: (fh: fsp.FileHandle) => Promise<void>,
  opts: WriteAtomicOptions = {},
): Promise<void> {
  if (typeof file !== 'string' || file.length === 0) throw invalidParameter('path', 'non-empty string', file);
  const doSync = opts.fsync !== false;
  const dir = path.dirname(file);
  const tmp = path.join(opts.tmpDir ?? dir, uniqueTmpName(path.basename(file)));
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, 'wx', opts.mode ?? 0o644);
    await fn(fh);
    if (doSync) await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, file);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fsp.unlink(tmp).catch(() => undefined);
    throw ioError(e, 'atomic write of', file);
  }
  if (doSync && opts.fsyncDir !== false) await fsyncDir(dir);
}

/** Synchronous writeFileAtomic (same steps, options and errors). */
export function writeFileAtomicSync(file: string, data: Uint8Array | string, opts: WriteAtomicOptions = {}): void {
  checkWriteArgs(file, data);
  const doSync = opts.fsync !== false;
  const dir = path.dirname(file);
  const tmp = path.join(opts.tmpDir ?? dir, uniqueTmpName(path.basename(file)));
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', opts.mode ?? 0o644);
    fs.writeFileSync(fd, data);
    if (doSync) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    fs.rmSync(tmp, { force: true });
    throw ioError(e, 'atomic write of', file);
  }
  if (doSync && opts.fsyncDir !== false) fsyncDirSync(dir);
}

/** True if `p` exists (any type). Other errors than ENOENT/ENOTDIR are raised as IoError. */
export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw ioError(e, 'stat', p);
  }
}

/** `mkdir -p`. */
export async function mkdirp(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (e) {
    throw ioError(e, 'mkdir', dir);
  }
}

/**
 * Reads and parses a JSON file. Invalid UTF-8 or JSON is a CorruptObjectError
 * naming the file; a missing file is the raw ENOENT wrapped as IoError with
 * `data.errno === 'ENOENT'` (use `exists` first when absence is normal).
 */
export async function readJsonFile<T = unknown>(file: string): Promise<T> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(file);
  } catch (e) {
    throw ioError(e, 'read', file);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new CorruptObjectError(`${file} is not valid UTF-8`, { path: file });
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new CorruptObjectError(`${file} is not valid JSON: ${(e as Error).message}`, { path: file });
  }
}

/** sha256 (hex) of a file's bytes, streamed. */
export async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    fs.createReadStream(p, { highWaterMark: 4 << 20 })
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve());
  });
  return h.digest('hex');
}
