/**
 * `fetch`: brings a remote's branches and tags home. Objects first (one pack), then meta objects, then
 * the remote-tracking refs (`refs/remotes/<remote>/<branch>`) and new tags, so a fetch killed at any
 * point leaves the repository consistent and a rerun sends only what did not arrive whole
 * (lib/remote/negotiate.ts). In a partial clone the clone's filter applies to new commits too; with
 * `allObjects`, every object the remote promised is fetched and the clone becomes a full one.
 *
 * @example
 * const r = await fetch(ctx, 'origin');
 * r.updates // [{ ref: 'refs/remotes/origin/main', old, new, status: 'updated' }]
 */
import type { RepoContext } from '../context';
import { RefConflictError } from '../errors';
import { WriterSession } from '../odb/session';
import { isAncestor } from '../refs/ancestry';
import { trackingRef } from '../remote/config';
import { globFilter, transfer, type TransferReport } from '../remote/negotiate';
import { openRemote } from '../remote/open';
import { localObjects } from '../remote/promisor';
import type { RemoteRefValue, RemoteRepo } from '../remote/transport';
import { remoteOpenOptions, remoteTarget, type RemoteTarget } from './remote';

/** One ref a fetch or push considered. */
export interface RefUpdate {
  /** The ref written on the receiving side (local tracking ref or tag for a fetch; remote ref for a push). */
  ref: string;
  /** The ref on the sending side. */
  source: string;
  old: string | null;
  new: string | null;
  status: 'new' | 'updated' | 'forced' | 'up-to-date' | 'rejected';
  /** Why a ref was rejected. */
  reason?: string;
}

export interface FetchOptions {
  /** Fetch every object the remote promised (completes a partial clone). */
  allObjects?: boolean;
  /** S3 endpoint for this run (else `remote.<name>.endpoint`). */
  endpoint?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface FetchReport extends TransferReport {
  remote: string | null;
  url: string;
  updates: RefUpdate[];
  /** The branch the remote's HEAD names. */
  remoteHead: string | null;
  /** The remote's branches as fetched: short name -> commit id. */
  heads: Record<string, string>;
}

/** The heads and tags a fetch takes from a remote's listing. */
function wanted(refs: Map<string, RemoteRefValue>): Array<[string, string]> {
  return [...refs]
    .filter(([n]) => n.startsWith('refs/heads/') || n.startsWith('refs/tags/'))
    .map(([n, v]) => [n, v.id] as [string, string])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Fetch over an already open remote (clone and sync use it). */
export async function fetchFrom(
  ctx: RepoContext,
  target: RemoteTarget,
  remote: RemoteRepo,
  opts: FetchOptions = {},
): Promise<FetchReport> {
  const refs = wanted(await remote.listRefs());
  const remoteHead = await remote.headBranch();
  const rc = target.config;
  const filter = rc?.promisor && rc.filter.length && !opts.allObjects ? globFilter(rc.filter) : null;
  const tips = refs.map(([, id]) => id);
  if (opts.allObjects) for (const r of await ctx.refs.listRefs('refs/')) tips.push(r.id);
  const session = await WriterSession.begin(ctx.layout, 'fetch');
  let t: TransferReport;
  try {
    await ctx.store.refresh();
    t = await transfer(remote, { meta: ctx.meta, objects: localObjects(ctx.store) }, [...new Set(tips)], {
      filter,
      complete: !!opts.allObjects,
      what: 'fetch',
      local: 'dst',
      onProgress: opts.onProgress,
    });
  } finally {
    session.end();
  }
  const updates: RefUpdate[] = [];
  const msg = `fetch: from ${target.url}`;
  for (const [source, id] of refs) {
    let ref: string;
    if (source.startsWith('refs/heads/')) {
      if (target.name === null) continue; // a URL fetch records no tracking refs
      ref = trackingRef(target.name, source);
    } else ref = source;
    const old = await ctx.refs.readRef(ref);
    if (old === id) {
      updates.push({ ref, source, old, new: id, status: 'up-to-date' });
      continue;
    }
    if (old !== null && ref.startsWith('refs/tags/')) {
      updates.push({ ref, source, old, new: id, status: 'rejected', reason: 'would clobber existing tag' });
      continue;
    }
    try {
      await ctx.refs.updateRef(ref, id, { expectedOld: old, message: msg });
    } catch (e) {
      // Another fetch moved it meanwhile: fine when it holds what this one fetched.
      if (!(e instanceof RefConflictError) || (await ctx.refs.readRef(ref)) !== id) throw e;
    }
    const ff = old === null || (await isAncestorSafe(ctx, old, id));
    updates.push({ ref, source, old, new: id, status: old === null ? 'new' : ff ? 'updated' : 'forced' });
  }
  if (opts.allObjects && rc?.promisor && target.name) {
    // Every object is here now: the repository is no longer partial.
    await ctx.config.unset(`remote.${target.name}.promisor`);
    await ctx.config.unset(`remote.${target.name}.partialCloneFilter`);
  }
  const heads: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [n, id] of refs) if (n.startsWith('refs/heads/')) heads[n.slice('refs/heads/'.length)] = id;
  return { ...t, remote: target.name, url: target.url, updates, remoteHead, heads };
}

async function isAncestorSafe(ctx: RepoContext, a: string, b: string): Promise<boolean> {
  try {
    return await isAncestor(a, b, ctx.meta);
  } catch {
    return false;
  }
}

/** `coral fetch [<remote>] [--all-objects]`. */
export async function fetch(ctx: RepoContext, remoteArg?: string, opts: FetchOptions = {}): Promise<FetchReport> {
  const target = await remoteTarget(ctx, remoteArg, { endpoint: opts.endpoint });
  const remote = await openRemote(target.url, remoteOpenOptions(target));
  try {
    return await fetchFrom(ctx, target, remote, opts);
  } finally {
    await remote.close();
  }
}
