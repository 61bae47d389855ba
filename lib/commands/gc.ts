/**
 * `gc`: removes what no root reaches (lib/commands/reach.ts). gc holds the gc
 * lock, which waits out live writer sessions and keeps new ones from starting
 * (lib/odb/session.ts), so an object a concurrent writer is about to reference
 * is never removed.
 *
 * @example
 * const report = await gc(ctx, { pruneExpireMs: 0 });
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { RepoContext } from '../context';
import { CorruptObjectError, invalidParameter } from '../errors';
import { GcLock } from '../odb/session';
import { CastIndex } from '../similarity/cast-index';
import { dirBytes, reach, walkFiles } from './reach';

export interface GcReport {
  reachableCommits: number;
  reachableObjects: number;
  removedObjects: number;
  removedMeta: number;
  /** Cast-id index entries dropped because their base is no longer stored (lib/similarity/cast-index.ts). */
  removedCastIds: number;
  bytesBefore: number;
  bytesAfter: number;
}

async function metaAgeMs(repo: RepoContext, id: string): Promise<number> {
  const st = await fsp.stat(repo.meta.pathOf(id)).catch(() => null);
  return st ? Date.now() - st.mtimeMs : Infinity;
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

export async function gc(repo: RepoContext, opts: GcOptions = {}): Promise<GcReport> {
  const graceMs =
    opts.pruneExpireMs ?? (repo.config.getNumber('gc.pruneExpire') ?? DEFAULT_PRUNE_EXPIRE_SECONDS) * 1000;
  const packLimit = repo.config.getNumber('gc.packLimit') ?? DEFAULT_PACK_LIMIT;
  const lock = await GcLock.acquire(repo.layout, opts.timeoutMs);
  try {
    const bytesBefore = await dirBytes(repo.layout.objects);
    const r = await reach(repo, { followBases: true });
    if (r.missing.length)
      throw new CorruptObjectError(
        `gc stopped: the repository has missing objects (${r.missing[0].message}); run \`coral fsck\``,
        { problems: r.missing.slice(0, 20) },
      );
    const packs = (await fsp.readdir(repo.layout.packs).catch(() => [] as string[])).filter((f) =>
      f.endsWith('.h5'),
    ).length;
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
    // Cast-id index entries whose base went: compacted away (the index is a hint either way).
    let removedCastIds = 0;
    if (fs.existsSync(repo.layout.castindex)) {
      const casts = await CastIndex.open(repo.layout.castindex);
      const before = casts.size;
      if (await casts.compact((e) => repo.store.has(e.base))) removedCastIds = Math.max(0, before - casts.size);
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
      removedCastIds,
      bytesBefore,
      bytesAfter: await dirBytes(repo.layout.objects),
    };
  } finally {
    lock.release();
  }
}
