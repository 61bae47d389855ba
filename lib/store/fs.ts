/**
 * Filesystem steps of the pack store's publication protocol, kept local to
 * lib/store so the store's crash-safety argument can be read in one place
 * (docs/store.md): write temp -> fsync file -> rename -> fsync directory.
 */
import { randomBytes } from 'node:crypto';
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
