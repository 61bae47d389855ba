/**
 * Symlinks are versioned as symlinks, as git does: `add` records the link
 * target, never the file it points to; checkout recreates the link, never
 * writing through it.
 *
 * Tree encoding (backward compatible: no new field, old trees decode
 * unchanged): a FileEntry with `format: 'symlink'`, no segments and no
 * tensors, whose skeleton object holds the target's bytes exactly as
 * readlink(2) returns them; `size` and `sha256` are those of the target bytes,
 * like git's blob of a link. A reader that does not know the format would
 * restore a small regular file holding the target path (what git does where
 * symlinks are unsupported).
 *
 * @example
 * const { entry } = await ingestSymlink(writer, '/w/latest.pt', 'latest.pt'); // latest.pt -> runs/7/model.pt
 * await writeSymlink(reader, entry, '/w/latest.pt');
 */
import * as crypto from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ChecksumMismatchError, CorruptObjectError } from '../errors';
import type { IngestReport } from '../ingest/ingest';
import type { FileEntry } from '../models/tree';
import { tensor } from '../tensor/tensor';
import type { ObjectReader, ObjectWriter } from '../odb/objects';

/** FileEntry.format of a symbolic link. */
export const SYMLINK_FORMAT = 'symlink';

/** Longest link target recorded (Linux PATH_MAX). */
export const MAX_LINK_TARGET = 4096;

export function isSymlinkEntry(e: { format: string } | undefined | null): boolean {
  return !!e && e.format === SYMLINK_FORMAT;
}

function sha256(b: Uint8Array): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** The link's target bytes (not decoded: a target need not be valid UTF-8). */
export async function readLinkBytes(abs: string): Promise<Buffer> {
  return fsp.readlink(abs, { encoding: 'buffer' });
}

/** Stores the link at `absPath` (its target bytes) and returns its tree entry. */
export async function ingestSymlink(
  writer: ObjectWriter,
  absPath: string,
  relPath: string,
): Promise<{ entry: FileEntry; report: IngestReport }> {
  const target = await readLinkBytes(absPath);
  const r = await writer.put(tensor('U8', [target.length], target), null, undefined, undefined, { owned: true });
  const entry: FileEntry = {
    format: SYMLINK_FORMAT,
    size: target.length,
    sha256: sha256(target),
    skeleton: r.id,
    segments: [],
    tensors: [],
  };
  const report: IngestReport = {
    path: relPath,
    bytes: target.length,
    segments: 0,
    storedObjects: r.stored ? 1 : 0,
    dedupedObjects: r.stored ? 0 : 1,
    deltaObjects: 0,
    storedBytes: r.stored ? r.storedSize : 0,
  };
  return { entry, report };
}

/** The committed target of a symlink entry, verified against its sha256. */
export async function symlinkTarget(reader: ObjectReader, entry: FileEntry): Promise<Buffer> {
  const data = Buffer.from((await reader.tensor(entry.skeleton)).data);
  if (data.length !== entry.size || sha256(data) !== entry.sha256)
    throw new ChecksumMismatchError(
      `symlink target object ${entry.skeleton} does not match its committed sha256 (${entry.sha256})`,
      {
        expected: entry.sha256,
        actual: sha256(data),
      },
    );
  return data;
}

/** Does the link at `abs` point where the entry says? null when nothing is there. */
export async function symlinkMatches(abs: string, entry: FileEntry): Promise<boolean | null> {
  let target: Buffer;
  try {
    target = await readLinkBytes(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    if (code === 'EINVAL') return false; // a regular file or directory now stands there
    throw e;
  }
  return target.length === entry.size && sha256(target) === entry.sha256;
}

/**
 * Recreates the link at `dest`: a new link is made beside it under a temp
 * name and renamed over `dest`, so whatever stood there (file or link) is
 * replaced as an entry and never written through.
 */
export async function writeSymlink(reader: ObjectReader, entry: FileEntry, dest: string): Promise<void> {
  if (!isSymlinkEntry(entry)) throw new CorruptObjectError(`entry for ${dest} is not a symlink`);
  const target = await symlinkTarget(reader, entry);
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.coral-${crypto.randomBytes(6).toString('hex')}`);
  await fsp.symlink(target, tmp);
  try {
    await fsp.rename(tmp, dest);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}
