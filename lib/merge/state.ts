/**
 * `.coral/MERGE_STATE`: the merge in progress (after `--no-commit`, unresolved
 * conflicts, or a crash between writing the state and committing). One JSON
 * document, written atomically; gc keeps `orig`, `theirs` and the inline tree
 * alive (lib/commands/reach.ts).
 *
 * @example
 * const s = readMergeState(ctx); // null when no merge is in progress
 * if (s) openConflicts(s);
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { CoralError } from '../errors';
import type { RepoContext } from '../context';
import { fileTable, type Tree } from '../models';
import { writeFileAtomic } from '../util/fsutil';
import type { MergeConflict } from './planner';

export interface MergeStateFile {
  version: 1;
  /** HEAD before the merge (ORIG_HEAD). */
  orig: string;
  /** The merged heads (gc roots). */
  theirs: string[];
  base: string | null;
  branch: string | null;
  message: string;
  metadata: Record<string, unknown>;
  /** The merged tree, inline (gc keeps its objects). */
  tree: Tree;
  /** True once the worktree and index hold `tree`. */
  applied: boolean;
  unresolved: MergeConflict[];
  /** Files of `unresolved` that `coral add` staged since (the user's resolution). */
  resolvedFiles?: string[];
}

/** The merge in progress, or null; a state that cannot be read throws (CORAL_CORRUPT_OBJECT). */
export function readMergeState(ctx: Pick<RepoContext, 'layout'>): MergeStateFile | null {
  let text: string;
  try {
    text = fs.readFileSync(ctx.layout.mergeState, 'utf8');
  } catch {
    return null;
  }
  try {
    const s = JSON.parse(text) as MergeStateFile;
    if (
      s &&
      s.version === 1 &&
      typeof s.orig === 'string' &&
      Array.isArray(s.theirs) &&
      s.tree &&
      typeof s.tree.files === 'object' &&
      s.tree.files
    )
      return { ...s, tree: { files: fileTable(Object.entries(s.tree.files)) } }; // null-prototype: any file name is a plain key
  } catch {
    /* fall through */
  }
  throw new CoralError(
    `${ctx.layout.mergeState} is unreadable; remove it to forget the merge in progress`,
    undefined,
    'CORAL_CORRUPT_OBJECT',
  );
}

export async function writeMergeState(ctx: Pick<RepoContext, 'layout'>, s: MergeStateFile): Promise<void> {
  await writeFileAtomic(ctx.layout.mergeState, JSON.stringify(s));
}

/** Ends the merge in progress (after its commit, or on abort). */
export async function removeMergeState(ctx: Pick<RepoContext, 'layout'>): Promise<void> {
  await fsp.rm(ctx.layout.mergeState, { force: true });
}

/** The conflicts of a merge in progress that `coral add` has not marked resolved. */
export function openConflicts(s: MergeStateFile): MergeConflict[] {
  const done = new Set(s.resolvedFiles ?? []);
  return s.unresolved.filter((c) => !done.has(c.file));
}

/** `coral add` during a merge: the staged files count as resolved (git's "mark resolution"). */
export async function markResolved(ctx: Pick<RepoContext, 'layout'>, files: Iterable<string>): Promise<void> {
  let s: MergeStateFile | null;
  try {
    s = readMergeState(ctx);
  } catch {
    return; // an unreadable state is reported by merge --continue/--abort and status, not by add
  }
  if (!s || !s.unresolved.length) return;
  const conflicted = new Set(s.unresolved.map((c) => c.file));
  const done = new Set(s.resolvedFiles ?? []);
  let changed = false;
  for (const f of files)
    if (conflicted.has(f) && !done.has(f)) {
      done.add(f);
      changed = true;
    }
  if (!changed) return;
  s.resolvedFiles = [...done].sort();
  await writeMergeState(ctx, s);
}
