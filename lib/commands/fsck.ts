/**
 * `fsck`: checks the store, HEAD and refs (fsck-refs.ts), and every link from
 * the roots down to the tensor objects (reach.ts).
 *
 * @example
 * const { ok, problems } = await fsck(ctx, { full: false });
 */
import type { RepoContext } from '../context';
import { checkRefs } from './fsck-refs';
import { reach, type FsckProblem, type Reach } from './reach';

export type { FsckProblem } from './reach';

export interface FsckReport {
  ok: boolean;
  commits: number;
  trees: number;
  objects: number;
  problems: FsckProblem[];
}

/**
 * Checks the store, HEAD and refs, and every link. One damaged object is one
 * problem: objects that `verify()` already reported (or whose pack it could not
 * read), and objects whose delta chain runs through one, are not decoded again.
 */
export async function fsck(repo: RepoContext, opts: { full?: boolean } = {}): Promise<FsckReport> {
  const problems: FsckProblem[] = [];
  const badObjects = new Set<string>();
  const badPacks = new Set<string>();
  for (const p of await repo.store.verify()) {
    problems.push({ kind: 'object', id: p.id ?? p.pack ?? '', message: p.message });
    if (p.id) badObjects.add(p.id);
    else if (p.kind === 'pack' && p.pack) badPacks.add(p.pack);
  }
  problems.push(...(await checkRefs(repo.layout.coral, repo.meta)));
  let r: Reach;
  try {
    r = await reach(repo, { followBases: true });
  } catch (e) {
    // HEAD or a ref unreadable: already reported above; nothing more can be walked.
    if (problems.some((p) => p.kind === 'ref')) return { ok: false, commits: 0, trees: 0, objects: 0, problems };
    throw e;
  }
  /** Is `id`, or any object of its delta chain, already reported as damaged? */
  const damaged = async (id: string): Promise<boolean> => {
    for (let cur: string | null = id, n = 0; cur && n < 10_000; n++) {
      if (badObjects.has(cur)) return true;
      let info;
      try {
        info = await repo.store.stat(cur);
      } catch {
        return false;
      }
      if (info.location && badPacks.has(info.location)) return true;
      cur = info.base || null;
    }
    return false;
  };
  for (const m of r.missing) if (!(m.kind === 'object' && (await damaged(m.id)))) problems.push(m);
  for (const id of r.objects) {
    if (!(await repo.store.has(id))) {
      problems.push({ kind: 'link', id, message: `object ${id} is referenced but not stored` });
      continue;
    }
    if (opts.full !== false && !(await damaged(id))) {
      try {
        // Decoding verifies the content id end to end (and the whole delta chain).
        await repo.reader.tensor(id);
      } catch (e) {
        problems.push({ kind: 'object', id, message: (e as Error).message });
      }
    }
  }
  return { ok: problems.length === 0, commits: r.commits.size, trees: r.treesSeen, objects: r.objects.size, problems };
}
