/**
 * Remotes in the repository config (`.coral/config`, JSON; docs/config.md):
 * ```
 * "remote": { "origin": { "url": "/srv/m.coral", "endpoint": "http://127.0.0.1:7480",
 *                         "promisor": true, "partialCloneFilter": ["*.safetensors"] } },
 * "branch": { "main": { "remote": "origin", "merge": "refs/heads/main" } }
 * ```
 * `url` is required; `endpoint` is for S3-compatible servers; `promisor` and `partialCloneFilter` are
 * written by `clone --filter` (the remote promises every object the clone left out). A branch's
 * upstream (`branch.<b>.remote` / `branch.<b>.merge`) is set by `clone` and `push -u`.
 *
 * @example
 * const origin = remoteConfig(ctx.config, 'origin'); // { name: 'origin', url: '…', promisor: false, filter: [] }
 */
import { InvalidArgumentError, RefNotFoundError, invalidParameter } from '../errors';
import { isValidRefName } from '../models/refname';
import type { Config, ConfigValue } from '../refs/config';

export interface RemoteConfig {
  name: string;
  url: string;
  /** S3 endpoint (`--endpoint`). */
  endpoint?: string;
  /** Bearer token for an http(s) remote (`coral serve`); CORAL_TOKEN wins over it. */
  token?: string;
  /** The remote promises the objects this (partial) clone left out. */
  promisor: boolean;
  /** The globs of `clone --filter` (empty: no filter). */
  filter: string[];
}

export interface Upstream {
  remote: string;
  /** Full ref on the remote, e.g. refs/heads/main. */
  merge: string;
}

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;

/** A remote name: letters, digits, `_` and `-` (it is a config key part and a ref component). */
export function checkRemoteName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_RE.test(name) || !isValidRefName(`refs/remotes/${name}/x`))
    throw invalidParameter('remote name', 'letters, digits, _ and - (not starting with -)', name);
  return name;
}

function isObj(v: ConfigValue | undefined): v is { [k: string]: ConfigValue } {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Names of the configured remotes, sorted. */
export function remoteNames(config: Config): string[] {
  const r = config.toJSON().remote; // the whole free-form section (remote names are not schema keys)
  return isObj(r)
    ? Object.keys(r)
        .filter((k) => NAME_RE.test(k) && isObj(r[k]))
        .sort()
    : [];
}

/** The config of remote `name`, or null when there is none. */
export function remoteConfig(config: Config, name: string): RemoteConfig | null {
  checkRemoteName(name);
  const r = config.get(`remote.${name}`);
  if (!isObj(r)) return null;
  if (typeof r.url !== 'string' || !r.url)
    throw new InvalidArgumentError(`remote.${name}.url is not set (or not a string); fix it with \`coral remote\``, {
      remote: name,
    });
  const filter = Array.isArray(r.partialCloneFilter)
    ? r.partialCloneFilter.filter((g): g is string => typeof g === 'string')
    : [];
  return {
    name,
    url: r.url,
    ...(typeof r.endpoint === 'string' && r.endpoint ? { endpoint: r.endpoint } : {}),
    ...(typeof r.token === 'string' && r.token ? { token: r.token } : {}),
    promisor: r.promisor === true,
    filter,
  };
}

/** Like remoteConfig, but RefNotFoundError when the remote is not configured. */
export function requireRemote(config: Config, name: string): RemoteConfig {
  const r = remoteConfig(config, name);
  if (!r)
    throw new RefNotFoundError(`no remote named '${name}'; add one with \`coral remote add ${name} <url>\``, {
      remote: name,
    });
  return r;
}

/** The remote promising missing objects (the first with `promisor: true`), or null. */
export function promisorRemote(config: Config): RemoteConfig | null {
  for (const n of remoteNames(config)) {
    const r = remoteConfig(config, n);
    if (r?.promisor) return r;
  }
  return null;
}

/**
 * The `branch` section, keyed by branch names as they are (`team/exp` included, which a dotted config key
 * cannot spell), as a table without a prototype.
 */
function branchSection(config: Config): Record<string, ConfigValue> {
  const b = config.toJSON().branch;
  const out = Object.create(null) as Record<string, ConfigValue>;
  if (isObj(b)) for (const k of Object.keys(b)) out[k] = b[k];
  return out;
}

/** Rewrites the `branch` section with `fn` (re-read first, so only that change is made). */
async function editBranches(config: Config, fn: (t: Record<string, ConfigValue>) => void): Promise<void> {
  await config.reload();
  const t = branchSection(config);
  fn(t);
  if (Object.keys(t).length) await config.set('branch', { ...t });
  else await config.unset('branch');
}

/** The upstream of local branch `branch` (short name), or null. */
export function upstreamOf(config: Config, branch: string): Upstream | null {
  const b = branchSection(config)[branch];
  if (!isObj(b) || typeof b.remote !== 'string' || typeof b.merge !== 'string') return null;
  return { remote: b.remote, merge: b.merge };
}

/** Records `remote`/`merge` as the upstream of local branch `branch` (`branch.<b>.remote`, `.merge`). */
export async function setUpstream(config: Config, branch: string, up: Upstream): Promise<void> {
  if (!isValidRefName(`refs/heads/${branch}`)) throw invalidParameter('branch', 'a branch name', branch);
  await editBranches(config, (t) => {
    t[branch] = { ...(isObj(t[branch]) ? t[branch] : {}), remote: up.remote, merge: up.merge };
  });
}

/** Removes the upstream of every branch that tracks `remote` (`coral remote remove`). */
export async function dropUpstreams(config: Config, remote: string): Promise<void> {
  await editBranches(config, (t) => {
    for (const k of Object.keys(t)) if (upstreamOf(config, k)?.remote === remote) delete t[k];
  });
}

/** The remote-tracking ref of a remote branch: refs/heads/main of origin is refs/remotes/origin/main. */
export function trackingRef(remote: string, ref: string): string {
  return `refs/remotes/${remote}/${ref.replace(/^refs\/heads\//, '')}`;
}
