/**
 * `fsck`: checks the store, HEAD and refs (fsck-refs.ts), and every link from
 * the roots down to the tensor objects (reach.ts).
 *
 * @example
 * const { ok, problems } = await fsck(ctx, { full: false });
 */
import type { RepoContext } from '../context';
import { isPromised, localObjects } from '../remote/promisor';
import { checkRefs } from './fsck-refs';
import { reach, type FsckProblem, type Reach } from './reach';

export type { FsckProblem } from './reach';

export interface FsckReport {
  ok: boolean;
  commits: number;
  trees: number;
  objects: number;
  /** Objects of a partial clone that its promisor remote holds (`coral fetch --all-objects` fetches them). */
  promised: number;
  /** The promisor remote of a partial clone, else null. */
  promisor: string | null;
  problems: FsckProblem[];
}

/**
 * Checks the store, HEAD and refs, and every link. One damaged object is one
 * problem: objects that `verify()` already reported (or whose pack it could not
 * read), and objects whose delta chain runs through one, are not decoded again.
 */
export async function fsck(repo: RepoContext, opts: { full?: boolean } = {}): Promise<FsckReport> {
  const problems: FsckProblem[] = [];
  const promisor = isPromised(repo.store);
  const store = localObjects(repo.store);
  const badObjects = new Set<string>();
  const badPacks = new Set<string>();
  for (const p of await store.verify()) {
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
    if (problems.some((p) => p.kind === 'ref'))
      return { ok: false, commits: 0, trees: 0, objects: 0, promised: 0, promisor, problems };
    throw e;
  }
  /** Is `id`, or any object of its delta chain, already reported as damaged? */
  const damaged = async (id: string): Promise<boolean> => {
    for (let cur: string | null = id, n = 0; cur && n < 10_000; n++) {
      if (badObjects.has(cur)) return true;
      let info;
      try {
        if (!(await store.has(cur))) return false;
        info = await store.stat(cur);
      } catch {
        return false;
      }
      if (info.location && badPacks.has(info.location)) return true;
      cur = info.base || null;
    }
    return false;
  };
  /** Does the delta chain of `id` run through an object only the promisor remote has? (Not decoded then.) */
  const chainPromised = async (id: string): Promise<boolean> => {
    if (!promisor) return false;
    for (let cur: string | null = id, n = 0; cur && n < 10_000; n++) {
      if (!(await store.has(cur))) return true;
      cur = (await store.stat(cur)).base || null;
    }
    return false;
  };
  for (const m of r.missing) if (!(m.kind === 'object' && (await damaged(m.id)))) problems.push(m);
  for (const id of r.objects) {
    if (r.promised.has(id)) continue;
    if (!(await store.has(id))) {
      problems.push({ kind: 'link', id, message: `object ${id} is referenced but not stored` });
      continue;
    }
    if (opts.full !== false && !(await damaged(id)) && !(await chainPromised(id))) {
      try {
        // Decoding verifies the content id end to end (and the whole delta chain).
        await repo.reader.tensor(id);
      } catch (e) {
        problems.push({ kind: 'object', id, message: (e as Error).message });
      }
    }
  }
  return {
    ok: problems.length === 0,
    commits: r.commits.size,
    trees: r.treesSeen,
    objects: r.objects.size,
    promised: r.promised.size,
    promisor,
    problems,
  };
}
