/**
 * What `coral show` prints, as data: the annotated tag a name points to, the
 * stored form of a file's tensors (codec, delta base, chain depth), and the
 * bytes of a file coral stores as an ordinary file.
 *
 * @example
 * const t = await annotatedTag(repo, 'v1');            // { name, id, tag: { tagger, message, metadata } } | null
 * const info = await showFile(repo, 'HEAD', 'model.safetensors');   // { path, format, tensors: [{ codec, base, depth, storedSize }] }
 * const c = await showCommit(repo, 'v1');                           // { id, ...commit, changes, tag? }
 * if (isPlainFile(entry)) process.stdout.write(await readFileBytes(repo, 'HEAD', 'README.md'));
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { commitTree, readCommit, readTree, relPath, resolve, treeOf, type RepoContext } from '../context';
import { inspectObject } from '../codec';
import { ChecksumMismatchError, InvalidArgumentError, RefNotFoundError } from '../errors';
import { checkTreePath, fileTable, type Commit, type TensorEntry } from '../models';
import { isSymlinkEntry, symlinkTarget } from '../worktree/symlink';
import { diffSides, type FileChange } from '../diff/tensor-diff';
import type { TagObject } from '../models/tag';
import type { FileEntry, LossyMark } from '../models/tree';
import type { ObjectReader } from '../odb/objects';
import { checkNotInCoral, materializeWorktreeFile } from '../worktree/files';
import { fileChunks, materializeFile, readFileTensor } from '../worktree/materialize';

/** The annotated tag `spec` names (`v1` or `refs/tags/v1`), or null (no such tag, or a lightweight one). */
export async function annotatedTag(
  ctx: Pick<RepoContext, 'refs' | 'meta'>,
  spec: string,
): Promise<{ name: string; id: string; tag: TagObject } | null> {
  const name = spec.startsWith('refs/tags/') ? spec.slice('refs/tags/'.length) : spec;
  if (!name || /[~^:]/.test(name)) return null;
  let id: string | null;
  try {
    id = await ctx.refs.readRef(`refs/tags/${name}`);
  } catch {
    return null; // not a valid ref name: not a tag
  }
  if (!id) return null;
  try {
    return { name, id, tag: await ctx.meta.readTag(id) };
  } catch {
    return null; // a lightweight tag points at a commit
  }
}

/** A file coral stores as an ordinary file (no tensors parsed), whose contents `show` prints as they are. */
export function isPlainFile(e: Pick<FileEntry, 'format'>): boolean {
  return e.format === 'raw';
}

export interface StoredTensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  object: string;
  codec: string;
  base: string | null;
  depth: number;
  storedSize: number;
  /**
   * Derived deltas (codecs CAST and ROWS): a cast of a base of another float dtype
   * (`rounding` RNE/RTZ, `baseDtype`), or rows shared with a base of another first
   * dimension (`sharedRows` of `baseRows`); `residual` counts the elements that
   * differ from the cast / from the shared base rows.
   */
  derived?: {
    kind: 'cast' | 'rows';
    residual: number;
    rounding?: string;
    baseDtype?: string;
    baseRows?: number;
    sharedRows?: number;
  };
}

/** The CAST / ROWS parameters of a stored object (read from its header). */
async function derivedInfo(reader: ObjectReader, id: string): Promise<StoredTensorInfo['derived']> {
  const h = inspectObject((await reader.store.get(id)).bytes);
  const p = h.params;
  if (h.codec === 'CAST')
    return { kind: 'cast', residual: Number(p.residual), rounding: String(p.rounding), baseDtype: String(p.baseDtype) };
  return { kind: 'rows', residual: Number(p.residual), baseRows: Number(p.baseRows), sharedRows: Number(p.sharedRows) };
}

/** Each tensor of a file entry with how it is stored. */
export async function storedTensors(reader: ObjectReader, e: FileEntry): Promise<StoredTensorInfo[]> {
  const out: StoredTensorInfo[] = [];
  for (const t of e.tensors) {
    const seg = e.segments[t.segment];
    const info = await reader.info(seg.object);
    out.push({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      object: seg.object,
      codec: info.codec,
      base: info.base ?? null,
      depth: info.depth,
      storedSize: info.storedSize,
      ...(info.codec === 'CAST' || info.codec === 'ROWS' ? { derived: await derivedInfo(reader, seg.object) } : {}),
    });
  }
  return out;
}

async function entryAt(ctx: Pick<RepoContext, 'refs' | 'meta'>, rev: string, rel: string): Promise<FileEntry> {
  const files = (await treeOf(ctx, rev)).files;
  if (!Object.prototype.hasOwnProperty.call(files, rel))
    throw new RefNotFoundError(`path '${rel}' does not exist in '${rev}'`, { path: rel, rev });
  return files[rel];
}

/** The whole bytes of a committed file, checked against its sha256 before they are returned. */
export async function readFileBytes(
  ctx: Pick<RepoContext, 'refs' | 'meta' | 'reader'>,
  rev: string,
  rel: string,
): Promise<Buffer> {
  const e = await entryAt(ctx, rev, rel);
  const parts: Uint8Array[] = [];
  for await (const c of fileChunks(ctx.reader, e)) parts.push(c);
  const buf = Buffer.concat(parts);
  const got = crypto.createHash('sha256').update(buf).digest('hex');
  if (buf.byteLength !== e.size || got !== e.sha256)
    throw new ChecksumMismatchError(`re-assembled ${rel} does not match its committed sha256 (${e.sha256})`, {
      path: rel,
      expected: e.sha256,
      actual: got,
    });
  return buf;
}

/** Writes a committed file to an arbitrary destination (e.g. `coral show rev:path > f`). */
export async function exportFile(ctx: RepoContext, rev: string, rel: string, dest: string): Promise<void> {
  const tree = await treeOf(ctx, rev);
  const e = tree.files[checkTreePath(rel)];
  if (!e) throw new RefNotFoundError(`path '${rel}' does not exist in ${rev}`);
  const abs = path.resolve(dest);
  const inTree = path.relative(ctx.worktree, abs);
  if (!inTree.startsWith('..') && !path.isAbsolute(inTree))
    await materializeWorktreeFile(ctx.reader, ctx.layout, relPath(ctx, abs), e);
  else {
    await checkNotInCoral(ctx.layout, abs);
    await materializeFile(ctx.reader, e, abs);
  }
}

/** One tensor of a committed file, decoded and verified. */
export async function readTensor(
  ctx: Pick<RepoContext, 'refs' | 'meta' | 'reader'>,
  rev: string,
  file: string,
  name: string,
) {
  const e = (await treeOf(ctx, rev)).files[checkTreePath(file)];
  if (!e) throw new RefNotFoundError(`path '${file}' does not exist in ${rev}`);
  const te = e.tensors.find((t) => t.name === name);
  if (!te) throw new RefNotFoundError(`tensor '${name}' does not exist in ${rev}:${file}`);
  return readFileTensor(ctx.reader, e, te);
}

/** `show <rev>:<path>` as data: a symlink's target, or a file's tensors with how each is stored. */
export type ShowFileReport =
  | { path: string; format: string; size: number; sha256: string; target: string; tensors: [] }
  | {
      path: string;
      format: string;
      size: number;
      sha256: string;
      metadata: Record<string, unknown>;
      tensors: Array<TensorEntry & StoredTensorInfo>;
      /** Set when the file is stored lossy: checkout writes its decoded tensors, not the bytes added. */
      lossy?: LossyMark;
    };

/**
 * One committed file, as `coral show <rev>:<path> --json` prints it. A file
 * stored as an ordinary file (`isPlainFile`) has no tensors; its bytes come from
 * `readFileBytes`.
 *
 * @example
 * const f = await showFile(repo, 'HEAD', 'model.safetensors');
 * f.tensors[0].codec; f.tensors[0].storedSize;
 */
export async function showFile(
  ctx: Pick<RepoContext, 'refs' | 'meta' | 'reader'>,
  rev: string,
  rel: string,
): Promise<ShowFileReport> {
  const tree = await treeOf(ctx, rev);
  const e = Object.prototype.hasOwnProperty.call(tree.files, rel) ? tree.files[rel] : undefined;
  if (!e) throw new InvalidArgumentError(`path '${rel}' does not exist in '${rev}'`);
  if (isSymlinkEntry(e)) {
    const target = (await symlinkTarget(ctx.reader, e)).toString();
    return { path: rel, format: e.format, size: e.size, sha256: e.sha256, target, tensors: [] };
  }
  const stored = await storedTensors(ctx.reader, e);
  const tensors = e.tensors.map((t, i) => ({ ...t, ...stored[i] }));
  return {
    path: rel,
    format: e.format,
    size: e.size,
    sha256: e.sha256,
    metadata: e.metadata ?? {},
    tensors,
    ...(e.lossy ? { lossy: e.lossy } : {}),
  };
}

/** `show <rev>` as data: the commit, its changes against its first parent, and the annotated tag `rev` names. */
export type ShowCommitReport = { id: string } & Commit & {
    /** Every file of the commit's tree with its stored tensors (with `files: true`). */
    files?: Record<
      string,
      { format: string; size: number; sha256: string; tensors: StoredTensorInfo[]; lossy?: LossyMark }
    >;
    changes: FileChange[];
    tag?: { name: string; id: string } & TagObject;
  };

/**
 * A commit as `coral show <rev>` prints it (`--json` is this document with
 * `files: true`): its fields, the tensor-aware diff against its first parent
 * (with metrics), and, when `rev` names an annotated tag, that tag.
 *
 * @example
 * const c = await showCommit(repo, 'v1', { files: true });
 * c.tag?.metadata.metrics; c.changes.length; c.files?.['model.safetensors'].tensors;
 */
export async function showCommit(
  ctx: Pick<RepoContext, 'refs' | 'meta' | 'reader'>,
  rev: string,
  opts: { files?: boolean } = {},
): Promise<ShowCommitReport> {
  const id = await resolve(ctx, rev);
  const c = await readCommit(ctx, id);
  const tree = await readTree(ctx, c.tree);
  const atag = await annotatedTag(ctx, rev);
  const parentTree = await commitTree(ctx, c.parents[0] ?? null);
  const changes = await diffSides(ctx.reader, parentTree, { kind: 'tree', tree }, { metrics: true });
  let files: ShowCommitReport['files'];
  if (opts.files) {
    files = fileTable<{
      format: string;
      size: number;
      sha256: string;
      tensors: StoredTensorInfo[];
      lossy?: LossyMark;
    }>();
    for (const [p, e] of Object.entries(tree.files))
      files[p] = {
        format: e.format,
        size: e.size,
        sha256: e.sha256,
        tensors: await storedTensors(ctx.reader, e),
        ...(e.lossy ? { lossy: e.lossy } : {}),
      };
  }
  return {
    id,
    ...c,
    ...(files ? { files } : {}),
    changes,
    ...(atag ? { tag: { name: atag.name, id: atag.id, ...atag.tag } } : {}),
  };
}
