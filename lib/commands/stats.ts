/**
 * `stats`: what the repository holds and how well it packs.
 *
 * @example
 * const s = await stats(ctx); // s.ratio, s.deltaObjects, s.codecs…
 */
import { headCommit, treeOf, type RepoContext } from '../context';
import { dirBytes, reach } from './reach';

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
  /** Objects stored as a cast of a base of another float dtype (codec CAST). */
  castObjects: number;
  /** Objects stored against a base with another first dimension (codec ROWS: rows added or removed). */
  resizedObjects: number;
  codecs: Record<string, { objects: number; rawBytes: number; storedBytes: number }>;
}

export async function stats(repo: RepoContext): Promise<StatsReport> {
  const r = await reach(repo, { followBases: false });
  const codecs: StatsReport['codecs'] = {};
  let objects = 0;
  let deltaObjects = 0;
  let maxChainDepth = 0;
  let deltaRatioSum = 0;
  const chainDepths: Record<string, number> = {};
  let deltaRawBytes = 0;
  let deltaStoredBytes = 0;
  let castObjects = 0;
  let resizedObjects = 0;
  for await (const a of repo.store.list()) {
    objects++;
    const c = (codecs[a.codec] ??= { objects: 0, rawBytes: 0, storedBytes: 0 });
    c.objects++;
    c.rawBytes += a.rawSize;
    c.storedBytes += a.storedSize ?? 0;
    if (a.codec === 'CAST') castObjects++;
    if (a.codec === 'ROWS') resizedObjects++;
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
  const head = await headCommit(repo);
  if (head) {
    const t = await treeOf(repo, 'HEAD');
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
    castObjects,
    resizedObjects,
    codecs,
  };
}
