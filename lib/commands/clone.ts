/**
 * `clone`: a new repository holding a remote's history, with `origin` set, the remote's branches as
 * remote-tracking refs, one local branch (the remote's HEAD branch, or `branch`) tracking its remote
 * counterpart, and that branch checked out byte for byte (or, when `branch` names a tag and no branch,
 * that tag's commit on a detached HEAD, as `git clone --branch <tag>` does). With `filter` (globs over file paths or tensor
 * names) only the matching objects are fetched: the clone records `origin` as its promisor remote, and
 * reading any other object later fetches it on demand (lib/remote/promisor.ts).
 *
 * A clone that fails removes what it created.
 *
 * @example
 * const r = await clone('/srv/models/llama.coral', '/data/llama');
 * const r2 = await clone('s3://models/llama', undefined, { filter: ['*.safetensors'], endpoint });
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { contextAt } from '../context';
import { AlreadyExistsError, RefNotFoundError, invalidParameter } from '../errors';
import { checkShortRefName } from '../models';
import { checkout } from './checkout';
import { Config } from '../refs/config';
import { checkRemoteName, remoteConfig, setUpstream, trackingRef } from '../remote/config';
import { openRemote, transportOf } from '../remote/open';
import { fetchFrom, type FetchReport } from './fetch';
import { init } from './init';
import { resetTo } from './reset';

export interface CloneOptions {
  /** The branch to check out (default: the one the remote's HEAD names); a tag's name detaches HEAD at it. */
  branch?: string;
  /** Partial clone: only objects whose file path or tensor name matches one of these globs. */
  filter?: string[];
  /** S3 endpoint (recorded as `remote.origin.endpoint`). */
  endpoint?: string;
  /** Set up the branch but write no files (`git clone --no-checkout`; `coral reset --hard` checks out later). */
  noCheckout?: boolean;
  /** Name of the remote (default origin). */
  origin?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface CloneReport {
  /** Absolute path of the new worktree. */
  worktree: string;
  /** The branch checked out; null for an empty remote, or when a tag was checked out. */
  branch: string | null;
  /** The tag checked out on a detached HEAD (`branch` option naming a tag). */
  tag?: string;
  /** The remote's tags (short names): what a remote without branches (a publish registry) holds. */
  tags?: string[];
  head: string | null;
  fetch: FetchReport;
  /** Files written by the checkout. */
  written: string[];
}

/** The directory `git clone <url>` would pick: the URL's last component without `.coral`. */
export function cloneDirName(url: string): string {
  const t = transportOf(url);
  const p = t === 'file' ? url.replace(/^file:\/\//i, '') : url.replace(/^[a-z0-9+.-]+:\/\/[^/]*/i, '');
  const last =
    p
      .replace(/[\\/]+$/, '')
      .split(/[\\/]/)
      .pop() ?? '';
  const name = last.replace(/\.coral$/, '');
  if (!name || name === '.' || name === '..')
    throw invalidParameter('dir', 'a directory (none can be derived from the URL)', url);
  return name;
}

/** `coral clone <url> [<dir>] [--branch <b>] [--filter <glob>]…`. */
export async function clone(url: string, dir?: string, opts: CloneOptions = {}): Promise<CloneReport> {
  const origin = checkRemoteName(opts.origin ?? 'origin');
  const filter = opts.filter ?? [];
  if (!Array.isArray(filter) || filter.some((g) => typeof g !== 'string' || !g))
    throw invalidParameter('filter', 'array of non-empty globs', filter);
  if (opts.branch !== undefined) checkShortRefName(opts.branch);
  const worktree = path.resolve(dir ?? cloneDirName(url));
  let existed = true;
  try {
    if (fs.readdirSync(worktree).length > 0)
      throw new AlreadyExistsError(`destination path '${worktree}' already exists and is not an empty directory`, {
        path: worktree,
      });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') existed = false;
    else throw e;
  }
  const endpoint = opts.endpoint;
  const remote = await openRemote(url, endpoint ? { endpoint } : {});
  let created = false;
  try {
    const [refs, remoteHead] = await Promise.all([remote.listRefs(), remote.headBranch()]);
    const names = [...refs.keys()];
    const heads = names.filter((n) => n.startsWith('refs/heads/'));
    const tags = names.filter((n) => n.startsWith('refs/tags/')).map((n) => n.slice('refs/tags/'.length));
    let branch: string | null = opts.branch ?? null;
    let tag: string | null = null;
    if (branch !== null && !heads.includes(`refs/heads/${branch}`)) {
      if (!tags.includes(branch)) throw new RefNotFoundError(`remote branch ${branch} not found in ${url}`, { branch });
      tag = branch;
      branch = null;
    }
    if (branch === null && tag === null && heads.length)
      branch =
        remoteHead && heads.includes(`refs/heads/${remoteHead}`)
          ? remoteHead
          : heads.includes('refs/heads/main')
            ? 'main'
            : heads[0].slice('refs/heads/'.length);
    await init(worktree, { branch: branch ?? remoteHead ?? 'main' });
    created = true;
    const config = await Config.load(path.join(worktree, '.coral'));
    await config.set(`remote.${origin}`, {
      url,
      ...(endpoint ? { endpoint } : {}),
      ...(filter.length ? { promisor: true, partialCloneFilter: filter } : {}),
    });
    const ctx = await contextAt(worktree);
    try {
      const rc = remoteConfig(ctx.config, origin)!;
      const f = await fetchFrom(
        ctx,
        { name: origin, url, endpoint, config: rc },
        remote,
        { onProgress: opts.onProgress },
        { refs, head: remoteHead },
      );
      let written: string[] = [];
      let head: string | null = null;
      if (branch && opts.noCheckout) {
        head = f.heads[branch];
        await ctx.refs.updateRef(`refs/heads/${branch}`, head, { expectedOld: null, message: `clone: from ${url}` });
        await setUpstream(ctx.config, branch, { remote: origin, merge: `refs/heads/${branch}` });
      } else if (branch) {
        const r = await resetTo(ctx, { mode: 'hard', rev: trackingRef(origin, `refs/heads/${branch}`) });
        written = r.written;
        head = r.head;
        await setUpstream(ctx.config, branch, { remote: origin, merge: `refs/heads/${branch}` });
      } else if (tag !== null) {
        if (!opts.noCheckout) {
          const r = await checkout(ctx, `refs/tags/${tag}`, { detach: true });
          written = r.written;
          head = r.head;
        }
      }
      return { worktree, branch, head, fetch: f, written, ...(tag !== null ? { tag } : {}), tags };
    } finally {
      await ctx.store.close();
    }
  } catch (e) {
    if (created) {
      if (existed) {
        for (const n of fs.readdirSync(worktree)) fs.rmSync(path.join(worktree, n), { recursive: true, force: true });
      } else fs.rmSync(worktree, { recursive: true, force: true });
    }
    throw e;
  } finally {
    await remote.close();
  }
}
