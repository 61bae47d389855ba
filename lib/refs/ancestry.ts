/**
 * Commit-graph queries over the meta store: history walks, ancestry tests and
 * merge bases with git's semantics.
 *
 * Ordering: walks pop the commit with the newest committer timestamp first;
 * ties go to the commit queued first (git's default `log` order). Merge bases
 * use git's paint-down-to-common followed by removal of redundant candidates,
 * so criss-cross histories return every best common ancestor, and clock skew
 * cannot make a non-best ancestor survive.
 *
 * @example
 * for await (const { id, commit } of walkCommits([head], meta)) console.log(id, commit.message);
 * await mergeBase(a, b, meta) // ['3fa4…']
 * await isAncestor(a, b, meta) // is a reachable from b?
 */
import { invalidParameter } from '../errors';
import type { Commit } from '../models/commit';
import { isSha256Hex } from '../models/canonical';
import type { MetaStore } from '../odb/meta-store';
import { Heap } from '../util/heap';

/** Max-heap by (timestamp desc, insertion asc). */
class DateQueue<T> {
  private heap = new Heap<{ ts: number; seq: number; v: T }>((a, b) => (a.ts !== b.ts ? a.ts > b.ts : a.seq < b.seq));
  private seq = 0;

  get size(): number {
    return this.heap.size;
  }

  push(ts: number, v: T): void {
    this.heap.push({ ts, seq: this.seq++, v });
  }

  pop(): T | undefined {
    return this.heap.pop()?.v;
  }

  values(): T[] {
    return this.heap.values().map((e) => e.v);
  }
}

function checkIds(ids: unknown[], what: string): string[] {
  for (const id of ids) if (!isSha256Hex(id)) throw invalidParameter(what, 'commit id (64 lowercase hex)', id);
  return ids as string[];
}

export interface WalkOptions {
  /** Follow only the first parent of each commit (`log --first-parent`). */
  firstParent?: boolean;
}

/**
 * Every commit reachable from `starts` (once each), newest committer time
 * first, ties by discovery order. Reads commits lazily, so callers can stop
 * early (`log -n`).
 */
export async function* walkCommits(
  starts: string | readonly string[],
  meta: MetaStore,
  opts: WalkOptions = {},
): AsyncIterable<{ id: string; commit: Commit }> {
  const list = checkIds(typeof starts === 'string' ? [starts] : [...starts], 'starts');
  const seen = new Set<string>();
  const q = new DateQueue<{ id: string; commit: Commit }>();
  for (const id of list) {
    if (seen.has(id)) continue;
    seen.add(id);
    const commit = await meta.readCommit(id);
    q.push(commit.committer.timestamp, { id, commit });
  }
  let n = 0;
  while (q.size > 0) {
    const cur = q.pop()!;
    yield cur;
    const parents = opts.firstParent ? cur.commit.parents.slice(0, 1) : cur.commit.parents;
    for (const p of parents) {
      if (seen.has(p)) continue;
      seen.add(p);
      const commit = await meta.readCommit(p);
      q.push(commit.committer.timestamp, { id: p, commit });
    }
    if (++n % 512 === 0) await new Promise<void>((r) => setImmediate(r));
  }
}

/** True if commit `a` is reachable from `b` (a commit is its own ancestor, as in `git merge-base --is-ancestor`). */
export async function isAncestor(a: string, b: string, meta: MetaStore): Promise<boolean> {
  checkIds([a, b], 'commit');
  if (a === b) return true;
  const target = await meta.readCommit(a);
  void target; // must exist: a missing `a` is an error, not "false"
  const seen = new Set<string>([b]);
  const stack = [b];
  let n = 0;
  while (stack.length > 0) {
    const id = stack.pop()!;
    const c = await meta.readCommit(id);
    for (const p of c.parents) {
      if (p === a) return true;
      if (!seen.has(p)) {
        seen.add(p);
        stack.push(p);
      }
    }
    if (++n % 512 === 0) await new Promise<void>((r) => setImmediate(r));
  }
  return false;
}

const P1 = 1;
const P2 = 2;
const STALE = 4;
const RESULT = 8;

/** git's paint_down_to_common: candidates that are reachable from `one` and from every `twos`. */
async function paintDownToCommon(one: string, twos: string[], meta: MetaStore): Promise<string[]> {
  const flags = new Map<string, number>();
  const ts = new Map<string, number>();
  const q = new DateQueue<string>();
  const enqueue = async (id: string) => {
    if (!ts.has(id)) ts.set(id, (await meta.readCommit(id)).committer.timestamp);
    q.push(ts.get(id)!, id);
  };
  flags.set(one, P1);
  await enqueue(one);
  for (const t of twos) {
    flags.set(t, (flags.get(t) ?? 0) | P2);
    await enqueue(t);
  }
  const result: string[] = [];
  const queueHasNonStale = () => q.values().some((id) => !((flags.get(id) ?? 0) & STALE));
  let n = 0;
  while (q.size > 0 && queueHasNonStale()) {
    const id = q.pop()!;
    let f = (flags.get(id) ?? 0) & (P1 | P2 | STALE);
    if (f === (P1 | P2)) {
      if (!((flags.get(id) ?? 0) & RESULT)) {
        flags.set(id, (flags.get(id) ?? 0) | RESULT);
        result.push(id);
      }
      f |= STALE;
    }
    const c = await meta.readCommit(id);
    for (const p of c.parents) {
      const pf = flags.get(p) ?? 0;
      if ((pf & f) === f) continue;
      flags.set(p, pf | f);
      await enqueue(p);
    }
    if (++n % 512 === 0) await new Promise<void>((r) => setImmediate(r));
  }
  return result;
}

/**
 * The best common ancestors of `a` and `b` (none of them an ancestor of
 * another). Usually one; several for criss-cross merges; empty when the
 * histories are unrelated. Sorted newest first, then by id.
 */
export async function mergeBase(a: string, b: string, meta: MetaStore): Promise<string[]> {
  checkIds([a, b], 'commit');
  if (a === b) {
    await meta.readCommit(a);
    return [a];
  }
  const candidates = await paintDownToCommon(a, [b], meta);
  // remove_redundant: drop candidates reachable from another candidate.
  const keep: string[] = [];
  for (const c of candidates) {
    let redundant = false;
    for (const o of candidates) {
      if (o !== c && (await isAncestor(c, o, meta))) {
        redundant = true;
        break;
      }
    }
    if (!redundant) keep.push(c);
  }
  const stamp = new Map<string, number>();
  for (const id of keep) stamp.set(id, (await meta.readCommit(id)).committer.timestamp);
  return keep.sort((x, y) => stamp.get(y)! - stamp.get(x)! || (x < y ? -1 : x > y ? 1 : 0));
}
