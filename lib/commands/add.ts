/**
 * `add`: stores files as skeleton + tensor objects and stages them. Files
 * whose stat matches the index are skipped; paths that no longer exist are
 * staged as deletions. Delta bases come from the parent version of each file
 * and, unless disabled, the similarity index (lib/ingest/bases.ts).
 *
 * @example
 * const { files } = await add(ctx, ['ckpt/model.safetensors']);
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { absPath, headCommit, relPath, treeOf, withWriter, type RepoContext } from '../context';
import { InvalidArgumentError, invalidParameter } from '../errors';
import { baseRelation } from '../codec';
import { openIngestPolicy } from '../ingest/bases';
import { parseLossySpec } from '../ingest/lossy';
import type { LossySpec } from '../odb/objects';
import { SKELETON_NAME, ingestFile, segmentNames, type FindBase, type IngestReport } from '../ingest/ingest';
import { fileTable, type FileEntry, type Tree } from '../models';
import type { DType } from '../tensor/dtype';
import { crashPoint } from '../util/crash';
import { checkNotBeyondSymlink, lstatWorktree } from '../worktree/files';
import { walkWorktree } from '../worktree/ignore';
import { readIndex, sameStat, statOf, updateIndex } from '../worktree/staging';
import { ingestSymlink, isSymlinkEntry } from '../worktree/symlink';
import { ignoreRules, status } from './status';

export interface AddReport {
  /** One report per file stored; `plainFile` says why a checkpoint-looking file was stored unparsed. */
  files: IngestReport[];
}

export interface AddOptions {
  onFile?: (rel: string, report: IngestReport) => void;
  /** Refuse (throw the parser's error) instead of storing an unparsable checkpoint as a plain file. */
  strict?: boolean;
  /** Add ignored paths too (`coral add -f`). */
  force?: boolean;
  /**
   * Called once the index holds the new entries, with every path staged or
   * deleted (Repository uses it to mark merge conflicts resolved).
   */
  onStaged?: (paths: string[]) => Promise<void>;
  /**
   * Store float tensors with a lossy codec (`coral add --lossy QUANT_INT8:block=256`;
   * lib/ingest/lossy.ts). The file entries are marked lossy with their measured error.
   */
  lossy?: string | LossySpec;
}

/** Base proposals for delta encoding: the same-named tensor of the file's parent version. */
export async function parentBases(ctx: RepoContext): Promise<FindBase | null> {
  if (ctx.config.getBool('core.deltaAgainstParent') === false) return null;
  const head = await headCommit(ctx);
  if (!head) return null;
  return treeBases(await treeOf(ctx, head));
}

/**
 * Base proposals from one tree (the parent's): the same-named tensor of the same path; for a skeleton,
 * the same path's or any file's skeleton of the same length. Used by `add` and by server-side ingestion
 * (lib/server/ingest), whose parent is the branch head it ingests into.
 */
export function treeBases(tree: Tree): FindBase {
  const perFile = new Map<string, Map<string, { object: string; dtype: string; shape: number[] }>>();
  // Skeletons (headers, pickles) of one architecture are near-identical across files: any
  // parent file whose skeleton has the same length is a good base, the same path first.
  const skeletonLength = (e: FileEntry) => e.size - e.segments.reduce((n, s) => n + s.length, 0);
  return async (q) => {
    if (q.name === SKELETON_NAME) {
      const same = tree.files[q.path];
      const hit =
        same && skeletonLength(same) === q.shape[0]
          ? same
          : Object.values(tree.files).find((e) => skeletonLength(e) === q.shape[0]);
      return hit ? { id: hit.skeleton } : null;
    }
    const entry = tree.files[q.path];
    if (!entry) return null;
    let names = perFile.get(q.path);
    if (!names) perFile.set(q.path, (names = segmentNames(entry)));
    const s = names.get(q.name);
    // The same dtype and shape, a float cast of it (CAST) or a resize of its first dimension (ROWS).
    if (!s || baseRelation(q, { dtype: s.dtype as DType, shape: s.shape }) === null) return null;
    return { id: s.object };
  };
}

/** The files to store and the tracked paths gone from disk, for the user's paths. */
async function collect(
  ctx: RepoContext,
  paths: string[],
  tracked: Set<string>,
  force: boolean | undefined,
): Promise<{ files: Set<string>; gone: Set<string> }> {
  const files = new Set<string>();
  const gone = new Set<string>();
  const rules = force ? null : ignoreRules(ctx);
  const ignored: string[] = [];
  for (const p of paths) {
    const abs = path.resolve(p);
    const rel = abs === ctx.worktree ? '' : relPath(ctx, abs);
    if (rel) await checkNotBeyondSymlink(ctx.layout, rel);
    // lstat: a symlink is recorded as a link, never followed (lib/worktree/symlink.ts).
    const st = await fsp.lstat(abs).catch(() => null);
    const under = (f: string) => rel === '' || f === rel || f.startsWith(`${rel}/`);
    if (!st) {
      const gonePaths = [...tracked].filter(under);
      if (!gonePaths.length) throw new InvalidArgumentError(`pathspec '${p}' did not match any files`);
      gonePaths.forEach((f) => gone.add(f));
      continue;
    }
    // Like git: naming an ignored, untracked path is refused unless forced.
    if (
      rel &&
      rules &&
      !tracked.has(rel) &&
      ![...tracked].some(under) &&
      (await rules.ignores(rel, st.isDirectory()))
    ) {
      ignored.push(rel);
      continue;
    }
    if (st.isDirectory()) {
      for (const f of await walkWorktree(ctx.worktree, abs, { rules, tracked })) files.add(f);
      for (const f of tracked) if (under(f) && !(await lstatWorktree(ctx.layout, f))) gone.add(f);
    } else {
      files.add(rel);
    }
  }
  if (ignored.length)
    throw new InvalidArgumentError(
      `the following paths are ignored by a .coralignore or .gitignore file: ${ignored.join(', ')}; use -f (force: true) to add them anyway`,
      { ignored },
    );
  return { files, gone };
}

/** Stages files (or every file under the given directories). */
export async function add(ctx: RepoContext, paths: string[], opts: AddOptions = {}): Promise<AddReport> {
  if (!Array.isArray(paths) || paths.length === 0) throw invalidParameter('paths', 'non-empty array of paths', paths);
  const lossy = opts.lossy === undefined ? undefined : parseLossySpec(opts.lossy);
  const idx0 = readIndex(ctx.layout);
  const { files, gone } = await collect(ctx, paths, new Set(Object.keys(idx0.files)), opts.force);
  const policy = await openIngestPolicy(ctx, await parentBases(ctx));
  const report: AddReport = { files: [] };
  try {
    await withWriter(ctx, 'add', async (writer) => {
      const staged = fileTable<{ entry: FileEntry; stat: ReturnType<typeof statOf> }>();
      for (const rel of [...files].sort()) {
        const abs = absPath(ctx, rel);
        const st = await fsp.lstat(abs);
        const prev = idx0.files[rel];
        if (prev && sameStat(prev.stat, st) && isSymlinkEntry(prev.entry) === st.isSymbolicLink()) continue;
        const { entry, report: r } = st.isSymbolicLink()
          ? await ingestSymlink(writer, abs, rel)
          : await ingestFile(writer, abs, rel, policy.findBase, policy.hooks, { strict: opts.strict, lossy });
        staged[rel] = { entry, stat: statOf(st) };
        report.files.push(r);
        opts.onFile?.(rel, r);
      }
      // Objects must be durable before the index names them: the pack is published while the new
      // index is synced beside its lock, and the index is renamed into place after both.
      await updateIndex(
        ctx.layout,
        (idx) => {
          for (const [rel, s] of Object.entries(staged)) idx.files[rel] = s;
          for (const rel of gone) delete idx.files[rel];
        },
        {
          durableFirst: async () => {
            await writer.flush();
            crashPoint('add:after-pack');
          },
        },
      );
    });
  } finally {
    await policy.close();
  }
  await opts.onStaged?.([...files, ...gone]);
  return report;
}

/** Stages every tracked file whose worktree copy was modified or deleted (`commit -a`, `add -u`). */
export async function stageTracked(ctx: RepoContext, opts: Pick<AddOptions, 'onStaged'> = {}): Promise<string[]> {
  const changed = (await status(ctx)).files.filter((f) => f.unstaged !== null).map((f) => f.path);
  if (changed.length)
    await add(
      ctx,
      changed.map((p) => absPath(ctx, p)),
      opts,
    );
  return changed;
}
