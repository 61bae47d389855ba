/**
 * Filesystem steps of the pack store's publication protocol, kept local to
 * lib/store so the store's crash-safety argument can be read in one place
 * (docs/store.md): write temp -> fsync file -> rename -> fsync directory.
 */
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { CoralError, IoError } from '../errors';
import { promises as fsp } from 'node:fs';
import { ioError, writeFileAtomic as writeAtomic } from '../util/fsutil';

// The general helpers live in lib/util/fsutil; the store adds the publication
// variant below, whose caller fsyncs the directory once for several renames.
export { fsyncDir, ioError } from '../util/fsutil';

export function errnoOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

/** Random lowercase hex, `bytes` bytes long. */
export function randomHex(bytes = 16): string {
  return randomBytes(bytes).toString('hex');
}

/**
 * Writes `data` to `file` atomically via a temp file in `tmpDir` (same
 * filesystem): write, fsync, rename. The caller fsyncs the target directory
 * (so several publications can share one directory fsync).
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, tmpDir: string, sync: boolean): Promise<void> {
  return writeAtomic(file, data, { tmpDir, fsync: sync, fsyncDir: false });
}

/** unlink that ignores a missing file; returns whether something was removed. */
export async function unlinkIfExists(file: string): Promise<boolean> {
  try {
    await fsp.unlink(file);
    return true;
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return false;
    throw ioError(e, 'unlink', file);
  }
}

/** "The disk is full" conditions: no space, or the user's quota exhausted. */
const FULL: Record<string, string> = { ENOSPC: 'no space left on device', EDQUOT: 'disk quota exceeded' };

/**
 * The errno name of a full disk inside any error, or null: a Node fs error's
 * `code`, or libhdf5's driver text ("errno = 28, error message = 'No space
 * left on device'") inside a CORAL_HDF5 / CORAL_IO message from the pack writer.
 */
export function fullDiskErrno(e: unknown): 'ENOSPC' | 'EDQUOT' | null {
  const code = errnoOf(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') return code;
  const data = e instanceof CoralError ? (e.data as { errno?: unknown } | undefined) : undefined;
  if (data?.errno === 'ENOSPC' || data?.errno === 'EDQUOT') return data.errno;
  const msg = e instanceof Error ? e.message : '';
  const n = /errno = (\d+)/.exec(msg);
  if (/No space left on device/i.test(msg) || (n && Number(n[1]) === osConstants.errno.ENOSPC)) return 'ENOSPC';
  if (/Disk quota exceeded/i.test(msg) || (n && Number(n[1]) === osConstants.errno.EDQUOT)) return 'EDQUOT';
  return null;
}

/**
 * Maps a full-disk failure while writing `file` to an IoError that names the
 * file and the condition in a line (CORAL_IO, `data.errno` ENOSPC/EDQUOT), as
 * every other coral write reports it; any other error passes through.
 */
export function fullDiskError(e: unknown, op: string, file: string): Error {
  const errno = fullDiskErrno(e);
  if (!errno || (e instanceof IoError && (e.data as { path?: unknown } | undefined)?.path === file)) return e as Error;
  return new IoError(`${op} ${file} failed: ${FULL[errno]} (${errno})`, { path: file, op, errno });
}
