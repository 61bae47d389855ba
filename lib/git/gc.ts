/**
 * `coral git gc`: drops payload objects that no pointer reachable in git
 * reaches: every ref (branches, tags, remote-tracking refs, the stash),
 * every reflog entry, and the index of every worktree (including the stages
 * of a conflicted merge); delta bases of kept objects are kept. Runs under
 * the payload store's gc lock, which waits out writer sessions (a clean in
 * progress), and keeps packs younger than the grace period alone.
 */
import { GcLock } from '../odb/session';
import { blobsOf, readPointers } from './transfer';
import { entryObjects, type Payloads } from './payloads';

export interface GitGcReport {
  pointers: number;
  keptObjects: number;
  removedObjects: number;
}

/** Default grace period (config `gc.pruneExpire` of the payload store, seconds). */
const DEFAULT_GRACE_S = 3600;

export async function gcPayloads(
  ps: Payloads,
  cwd: string,
  opts: { pruneExpireMs?: number } = {},
): Promise<GitGcReport> {
  const graceMs = opts.pruneExpireMs ?? (ps.config.getNumber('gc.pruneExpire') ?? DEFAULT_GRACE_S) * 1000;
  const lock = await GcLock.acquire(ps.layout);
  try {
    await ps.store.refresh();
    const pointers = await readPointers(cwd, await blobsOf(cwd, ['--all', '--reflog', '--indexed-objects']));
    const keep = new Set<string>();
    const todo = pointers.flatMap((p) => entryObjects(p.entry));
    while (todo.length) {
      const id = todo.pop()!;
      if (keep.has(id)) continue;
      keep.add(id);
      if (!(await ps.store.has(id))) continue;
      const a = await ps.store.stat(id);
      if (a.base) todo.push(a.base);
    }
    const r = await ps.store.repack((id) => keep.has(id), { graceMs });
    return { pointers: pointers.length, keptObjects: keep.size, removedObjects: r.dropped };
  } finally {
    lock.release();
  }
}
