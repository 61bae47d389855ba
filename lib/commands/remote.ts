/**
 * `remote`: the named remotes of a repository (`remote.<name>.*` in its config; lib/remote/config.ts),
 * and how the other remote commands pick theirs: a configured name, or a URL given directly.
 *
 * @example
 * await remoteAdd(ctx, 'origin', '/srv/models/llama.coral');
 * await remotes(ctx) // [{ name: 'origin', url: '/srv/models/llama.coral', promisor: false, filter: [] }]
 */
import type { RepoContext } from '../context';
import { AlreadyExistsError, RefNotFoundError, invalidParameter } from '../errors';
import {
  checkRemoteName,
  dropUpstreams,
  remoteConfig,
  remoteNames,
  upstreamOf,
  type RemoteConfig,
} from '../remote/config';
import { transportOf } from '../remote/open';

export type { RemoteConfig } from '../remote/config';

/** Every configured remote, sorted by name. */
export async function remotes(ctx: Pick<RepoContext, 'config'>): Promise<RemoteConfig[]> {
  return remoteNames(ctx.config).map((n) => remoteConfig(ctx.config, n)!);
}

/** Adds remote `name` at `url` (a path, file://, s3:// …); `endpoint` for an S3-compatible server. */
export async function remoteAdd(
  ctx: Pick<RepoContext, 'config'>,
  name: string,
  url: string,
  opts: { endpoint?: string } = {},
): Promise<RemoteConfig> {
  checkRemoteName(name);
  transportOf(url);
  if (opts.endpoint !== undefined && (typeof opts.endpoint !== 'string' || !/^https?:\/\//.test(opts.endpoint)))
    throw invalidParameter('endpoint', 'an http:// or https:// URL', opts.endpoint);
  if (remoteConfig(ctx.config, name)) throw new AlreadyExistsError(`remote ${name} already exists`, { remote: name });
  await ctx.config.set(`remote.${name}`, { url, ...(opts.endpoint ? { endpoint: opts.endpoint } : {}) });
  return remoteConfig(ctx.config, name)!;
}

/**
 * Removes remote `name`, its remote-tracking refs (refs/remotes/<name>/*) and the upstream settings of
 * branches that tracked it, as `git remote remove` does.
 */
export async function remoteRemove(ctx: Pick<RepoContext, 'config' | 'refs'>, name: string): Promise<void> {
  checkRemoteName(name);
  if (!remoteConfig(ctx.config, name)) throw new RefNotFoundError(`no remote named '${name}'`, { remote: name });
  for (const r of await ctx.refs.listRefs(`refs/remotes/${name}/`)) await ctx.refs.deleteRef(r.name, r.id);
  await dropUpstreams(ctx.config, name);
  await ctx.config.unset(`remote.${name}`);
}

/** A remote as the remote commands use it: configured (`name` set) or a bare URL (`name` null). */
export interface RemoteTarget {
  name: string | null;
  url: string;
  endpoint?: string;
  /** http(s) remotes: `remote.<name>.token` (CORAL_TOKEN wins). */
  token?: string;
  config: RemoteConfig | null;
}

/** What `openRemote` needs of a target: its S3 endpoint, its http token (CORAL_TOKEN wins over the config). */
export function remoteOpenOptions(t: Pick<RemoteTarget, 'endpoint' | 'token'>): { endpoint?: string; token?: string } {
  const token = process.env.CORAL_TOKEN || t.token;
  return { ...(t.endpoint ? { endpoint: t.endpoint } : {}), ...(token ? { token } : {}) };
}

/**
 * The remote a command argument names: a configured remote, else a URL or path (no tracking refs then).
 * Absent: the current branch's upstream remote, else `origin`.
 */
export async function remoteTarget(
  ctx: Pick<RepoContext, 'config' | 'refs'>,
  arg: string | undefined,
  opts: { endpoint?: string } = {},
): Promise<RemoteTarget> {
  let name = arg;
  if (name === undefined) {
    const cur = await ctx.refs.currentBranch();
    name = (cur && upstreamOf(ctx.config, cur.replace(/^refs\/heads\//, ''))?.remote) || 'origin';
  }
  let rc: RemoteConfig | null = null;
  try {
    rc = remoteConfig(ctx.config, name);
  } catch (e) {
    if (!/[/\\:.]/.test(name)) throw e;
  }
  if (rc)
    return {
      name,
      url: rc.url,
      endpoint: opts.endpoint ?? rc.endpoint,
      ...(rc.token ? { token: rc.token } : {}),
      config: rc,
    };
  if (/[/\\:.]/.test(name)) {
    transportOf(name);
    return { name: null, url: name, ...(opts.endpoint ? { endpoint: opts.endpoint } : {}), config: null };
  }
  throw new RefNotFoundError(`no remote named '${name}'; add one with \`coral remote add ${name} <url>\``, {
    remote: name,
  });
}
