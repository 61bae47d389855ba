/**
 * gc, fsck and stats.
 *
 * gc roots: every ref (branches, tags, remotes), HEAD, every id in the reflogs,
 * the staging index and an in-progress merge. gc holds the gc lock, which waits
 * out live writer sessions and keeps new ones from starting (session.ts), so
 * an object a concurrent writer is about to reference is never removed.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { invalidParameter } from '../errors';
import { decodeMeta } from '../models/meta';
import { fileTable, type Tree } from '../models/tree';
import { readIndex } from '../worktree/staging';
import { checkRefs } from './fsck-refs';
import { GcLock } from '../odb/session';
import type { Repository } from '../repository';

export interface GcReport {
  reachableCommits: number;
  reachableObjects: number;
  removedObjects: number;
  removedMeta: number;
  bytesBefore: number;
  bytesAfter: number;
}

export interface FsckProblem {
  kind: 'object' | 'meta' | 'ref' | 'link';
  id: string;
  message: string;
}

export interface FsckReport {
  ok: boolean;
  commits: number;
  trees: number;
  objects: number;
  problems: FsckProblem[];
}

export interface StatsReport {
  commits: number;
  branches: number;
  tags: number;
  files: number;
  tensors: number;
  /** Sum of sizes of every distinct file version reachable from any ref. */
  logicalBytes: number;
  /** Bytes on disk: packs plus meta objects. */
  storedBytes: number;
  ratio: number;
  objects: number;
  deltaObjects: number;
  maxChainDepth: number;
  avgDeltaRatio: number;
  /** Delta objects per chain depth (1 = delta against a standalone base). */
  chainDepths: Record<string, number>;
  /** Decoded and stored bytes of the delta objects. */
  deltaRawBytes: number;
  deltaStoredBytes: number;
  codecs: Record<string, { objects: number; rawBytes: number; storedBytes: number }>;
}

const ZERO = /^0+$/;

async function walkFiles(dir: string): Promise<string[]> {
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

async function metaAgeMs(repo: Repository, id: string): Promise<number> {
  const st = await fsp.stat(repo.meta.pathOf(id)).catch(() => null);
  return st ? Date.now() - st.mtimeMs : Infinity;
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await walkFiles(dir)) n += (await fsp.stat(f)).size;
  return n;
}

/** Ids named by refs, HEAD, reflogs, the index and merge state (commits, tags, or tree entries). */
async function roots(repo: Repository): Promise<{ commits: Set<string>; trees: Tree[] }> {
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
    const ms = JSON.parse(await fsp.readFile(repo.layout.mergeState, 'utf8')) as { theirs?: string[]; orig?: string; tree?: Tree };
    for (const x of [...(ms.theirs ?? []), ms.orig]) if (x) commits.add(x);
    // The merged tree of a merge in progress (inline; lib/repo/merge.ts) keeps its objects.
    if (ms.tree && typeof ms.tree === 'object' && ms.tree.files) trees.push(ms.tree);
  } catch {
    /* no merge in progress */
  }
  const idx = readIndex(repo.layout);
  trees.push({ files: fileTable(Object.entries(idx.files).map(([p, s]) => [p, s.entry] as const)) });
  return { commits, trees };
}

interface Reach {
  commits: Set<string>;
  metas: Set<string>;
  objects: Set<string>;
  fileVersions: Map<string, number>;
  treesSeen: number;
  missing: FsckProblem[];
}

async function reach(repo: Repository, opts: { followBases: boolean }): Promise<Reach> {
  const r = await roots(repo);
  const out: Reach = {
    commits: new Set(), metas: new Set(), objects: new Set(), fileVersions: new Map(), treesSeen: 0, missing: [],
  };
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
          out.missing.push({ kind: 'link', id: obj.value.tree, message: `tree of commit ${id}: ${(e as Error).message}` });
        }
      }
    }
  }
  if (opts.followBases) {
    const queue = [...out.objects];
    while (queue.length) {
      const id = queue.pop()!;
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

/** Default age below which unreachable objects are kept (config `gc.pruneExpire`, seconds). */
export const DEFAULT_PRUNE_EXPIRE_SECONDS = 3600;
/** More packs than this and gc also consolidates them into one (config `gc.packLimit`). */
export const DEFAULT_PACK_LIMIT = 16;

export interface GcOptions {
  timeoutMs?: number;
  /**
   * Unreachable objects in packs written or reused within this many ms are
   * kept (a writer that does not use coral's session protocol may be about to
   * reference them). 0 = prune everything unreachable now (`--prune=now`).
   */
  pruneExpireMs?: number;
  /** Rewrite every pack into one, whatever their number. */
  aggressive?: boolean;
}

/** Parses `now`, `never`, or a duration such as `90s`, `30m`, `2h`, `14d` into ms. */
export function parsePruneExpire(s: string): number {
  if (s === 'now') return 0;
  if (s === 'never') return Number.MAX_SAFE_INTEGER;
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?$/.exec(s.trim());
  if (!m) throw invalidParameter('prune', "'now', 'never' or a duration like 30m, 2h, 14d", s);
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[(m[2] ?? 's') as 's'];
  return Math.round(Number(m[1]) * unit);
}

export async function gc(repo: Repository, opts: GcOptions = {}): Promise<GcReport> {
  const graceMs = opts.pruneExpireMs ?? (repo.config.getNumber('gc.pruneExpire') ?? DEFAULT_PRUNE_EXPIRE_SECONDS) * 1000;
  const packLimit = repo.config.getNumber('gc.packLimit') ?? DEFAULT_PACK_LIMIT;
  const lock = await GcLock.acquire(repo.layout, opts.timeoutMs);
  try {
    const bytesBefore = (await dirBytes(repo.layout.objects));
    const r = await reach(repo, { followBases: true });
    if (r.missing.length)
      throw new (await import('../errors')).CorruptObjectError(
        `gc stopped: the repository has missing objects (${r.missing[0].message}); run \`coral fsck\``,
        { problems: r.missing.slice(0, 20) },
      );
    const packs = (await fsp.readdir(repo.layout.packs).catch(() => [] as string[])).filter((f) => f.endsWith('.h5')).length;
    const repack = await repo.store.repack((id) => r.objects.has(id), {
      graceMs,
      all: !!opts.aggressive || packs > packLimit,
    });
    let removedMeta = 0;
    for await (const id of repo.meta.list()) {
      if (!r.metas.has(id) && (graceMs === 0 || (await metaAgeMs(repo, id)) > graceMs)) {
        await repo.meta.delete(id);
        removedMeta++;
      }
    }
    // Temp files of crashed writers: only old ones (a ref update may be mid-flight).
    for (const f of await walkFiles(repo.layout.tmp)) {
      const st = await fsp.stat(f).catch(() => null);
      if (st && Date.now() - st.mtimeMs > 3600_000) await fsp.rm(f, { force: true });
    }
    return {
      reachableCommits: r.commits.size,
      reachableObjects: r.objects.size,
      removedObjects: repack.dropped,
      removedMeta,
      bytesBefore,
      bytesAfter: await dirBytes(repo.layout.objects),
    };
  } finally {
    lock.release();
  }
}

/**
 * Checks the store, HEAD and refs, and every link. One damaged object is one
 * problem: objects that `verify()` already reported (or whose pack it could not
 * read), and objects whose delta chain runs through one, are not decoded again.
 */
export async function fsck(repo: Repository, opts: { full?: boolean } = {}): Promise<FsckReport> {
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

export async function stats(repo: Repository): Promise<StatsReport> {
  const r = await reach(repo, { followBases: false });
  const codecs: StatsReport['codecs'] = {};
  let objects = 0;
  let deltaObjects = 0;
  let maxChainDepth = 0;
  let deltaRatioSum = 0;
  const chainDepths: Record<string, number> = {};
  let deltaRawBytes = 0;
  let deltaStoredBytes = 0;
  for await (const a of repo.store.list()) {
    objects++;
    const c = (codecs[a.codec] ??= { objects: 0, rawBytes: 0, storedBytes: 0 });
    c.objects++;
    c.rawBytes += a.rawSize;
    c.storedBytes += a.storedSize ?? 0;
    if (a.base) {
      deltaObjects++;
      deltaRatioSum += a.rawSize / Math.max(1, a.storedSize ?? 1);
      const depth = Number(a.extra?.depth ?? 1);
      maxChainDepth = Math.max(maxChainDepth, depth);
      chainDepths[depth] = (chainDepths[depth] ?? 0) + 1;
      deltaRawBytes += a.rawSize;
      deltaStoredBytes += a.storedSize ?? 0;
    }
  }
  const logicalBytes = [...r.fileVersions.values()].reduce((x, y) => x + y, 0);
  const storedBytes = (await dirBytes(repo.layout.packs)) + (await dirBytes(repo.layout.meta));
  let files = 0;
  let tensors = 0;
  const head = await repo.headCommit();
  if (head) {
    const t = await repo.treeOf('HEAD');
    files = Object.keys(t.files).length;
    tensors = Object.values(t.files).reduce((n, e) => n + e.tensors.length, 0);
  }
  return {
    commits: r.commits.size,
    branches: (await repo.refs.listRefs('refs/heads/')).length,
    tags: (await repo.refs.listRefs('refs/tags/')).length,
    files,
    tensors,
    logicalBytes,
    storedBytes,
    ratio: storedBytes ? logicalBytes / storedBytes : 0,
    objects,
    deltaObjects,
    maxChainDepth,
    avgDeltaRatio: deltaObjects ? deltaRatioSum / deltaObjects : 0,
    chainDepths,
    deltaRawBytes,
    deltaStoredBytes,
    codecs,
  };
}
