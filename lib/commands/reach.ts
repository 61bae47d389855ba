/**
 * What gc keeps and what fsck and stats walk: the roots of a repository and
 * everything they reach.
 *
 * gc roots: every ref (branches, tags, remotes), HEAD, every id in the reflogs,
 * the staging index and an in-progress merge (its parents and its inline tree).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { RepoContext } from '../context';
import { decodeMeta } from '../models/meta';
import type { Tree } from '../models/tree';
import { isPromised, localObjects } from '../remote/promisor';
import { readIndex, treeOfIndex } from '../worktree/staging';

export interface FsckProblem {
  kind: 'object' | 'meta' | 'ref' | 'link';
  id: string;
  message: string;
}

const ZERO = /^0+$/;

export async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  let ents: fs.Dirent[];
  try {
    ents = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of ents) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walkFiles(p)));
    else out.push(p);
  }
  return out;
}

export async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await walkFiles(dir)) n += (await fsp.stat(f)).size;
  return n;
}

/** Ids named by refs, HEAD, reflogs, the index and merge state (commits, tags, or tree entries). */
export async function gcRoots(
  repo: Pick<RepoContext, 'refs' | 'layout'>,
): Promise<{ commits: Set<string>; trees: Tree[] }> {
  const commits = new Set<string>();
  const trees: Tree[] = [];
  for (const r of await repo.refs.listRefs('refs/')) {
    commits.add(r.id);
  }
  const head = await repo.refs.readHead();
  if (head.kind === 'detached') commits.add(head.id);
  for (const f of await walkFiles(repo.layout.logs)) {
    const text = await fsp.readFile(f, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const [a, b] = line.split(' ');
      for (const x of [a, b]) if (x && /^[0-9a-f]{64}$/.test(x) && !ZERO.test(x)) commits.add(x);
    }
  }
  try {
    const ms = JSON.parse(await fsp.readFile(repo.layout.mergeState, 'utf8')) as {
      theirs?: string[];
      orig?: string;
      tree?: Tree;
    };
    for (const x of [...(ms.theirs ?? []), ms.orig]) if (x) commits.add(x);
    // The merged tree of a merge in progress (inline; lib/commands/merge.ts) keeps its objects.
    if (ms.tree && typeof ms.tree === 'object' && ms.tree.files) trees.push(ms.tree);
  } catch {
    /* no merge in progress */
  }
  trees.push(treeOfIndex(readIndex(repo.layout)));
  return { commits, trees };
}

export interface Reach {
  commits: Set<string>;
  /** Objects a partial clone's promisor remote holds for it (not here, not missing). */
  promised: Set<string>;
  metas: Set<string>;
  objects: Set<string>;
  fileVersions: Map<string, number>;
  treesSeen: number;
  missing: FsckProblem[];
}

export async function reach(
  repo: Pick<RepoContext, 'refs' | 'layout' | 'meta' | 'reader'>,
  opts: { followBases: boolean },
): Promise<Reach> {
  const r = await gcRoots(repo);
  const out: Reach = {
    commits: new Set(),
    metas: new Set(),
    objects: new Set(),
    fileVersions: new Map(),
    treesSeen: 0,
    missing: [],
    promised: new Set(),
  };
  // A partial clone: objects it does not hold are promised by its remote, not missing, and gc or fsck
  // must not fetch them (the store would, on a read), so presence is asked of the local store.
  const partial = isPromised(repo.reader.store) !== null;
  const local = localObjects(repo.reader.store);
  const addTree = (t: Tree) => {
    for (const e of Object.values(t.files)) {
      out.fileVersions.set(e.sha256, e.size);
      out.objects.add(e.skeleton);
      for (const s of e.segments) out.objects.add(s.object);
    }
  };
  r.trees.forEach(addTree);
  const stack = [...r.commits];
  while (stack.length) {
    const id = stack.pop()!;
    if (out.metas.has(id)) continue;
    out.metas.add(id);
    let obj;
    try {
      obj = decodeMeta(await repo.meta.get(id));
    } catch (e) {
      out.missing.push({ kind: 'meta', id, message: (e as Error).message });
      continue;
    }
    if (obj.type === 'tag') {
      stack.push(obj.value.object);
    } else if (obj.type === 'commit') {
      out.commits.add(id);
      stack.push(...obj.value.parents);
      if (!out.metas.has(obj.value.tree)) {
        out.metas.add(obj.value.tree);
        try {
          addTree(await repo.meta.readTree(obj.value.tree));
          out.treesSeen++;
        } catch (e) {
          out.missing.push({
            kind: 'link',
            id: obj.value.tree,
            message: `tree of commit ${id}: ${(e as Error).message}`,
          });
        }
      }
    }
  }
  if (opts.followBases) {
    const queue = [...out.objects];
    while (queue.length) {
      const id = queue.pop()!;
      if (partial && !(await local.has(id))) {
        out.promised.add(id);
        continue;
      }
      try {
        const info = await repo.reader.info(id);
        if (info.base && !out.objects.has(info.base)) {
          out.objects.add(info.base);
          queue.push(info.base);
        }
      } catch (e) {
        out.missing.push({ kind: 'object', id, message: (e as Error).message });
      }
    }
  }
  return out;
}
