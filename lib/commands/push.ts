/**
 * `push`: sends local branches (and tags) to a remote. Each ref is checked first (a branch only
 * fast-forwards unless forced; an existing tag is not moved unless forced), then everything the remote
 * lacks goes up (lib/remote/negotiate.ts: objects in one pack, then meta objects), and only then does
 * each remote ref move, by compare-and-swap against the value read at the start. So a ref on the remote
 * never points at an object that is not there, a push killed anywhere is completed by a rerun that
 * resends nothing that arrived whole, and of two concurrent pushes to one branch one lands and the other
 * is refused as non-fast-forward. `force` skips the ancestry check, not the compare-and-swap.
 *
 * @example
 * const r = await push(ctx, 'origin', { refspecs: ['main'], setUpstream: true });
 * r.objects, r.bytes   // what was sent
 */
import { currentBranch, type RepoContext } from '../context';
import { InvalidArgumentError, NonFastForwardError, RefConflictError, RefNotFoundError } from '../errors';
import { checkRefName } from '../models/refname';
import { isAncestor } from '../refs/ancestry';
import { setUpstream, trackingRef } from '../remote/config';
import { transfer, type TransferReport } from '../remote/negotiate';
import { openRemote } from '../remote/open';
import type { RemoteRepo } from '../remote/transport';
import { crashPoint } from '../util/crash';
import type { RefUpdate } from './fetch';
import { remoteOpenOptions, remoteTarget, type RemoteTarget } from './remote';

export interface PushOptions {
  /** `<branch>`, `<local>:<remote>`, a `+` prefix forces that one; default: the current branch. */
  refspecs?: string[];
  /** Also push every tag. */
  tags?: boolean;
  /** Allow non-fast-forward updates (still a compare-and-swap against the value read). */
  force?: boolean;
  /** Record the remote branch as the upstream of each pushed branch (`-u`). */
  setUpstream?: boolean;
  /** S3 endpoint for this run (else `remote.<name>.endpoint`). */
  endpoint?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface PushReport extends TransferReport {
  remote: string | null;
  url: string;
  updates: RefUpdate[];
  /** Everything sent: object bytes plus meta bytes. */
  bytes: number;
}

interface Planned {
  local: string;
  remote: string;
  id: string;
  force: boolean;
}

async function plan(ctx: RepoContext, opts: PushOptions): Promise<Planned[]> {
  const specs = [...(opts.refspecs ?? [])];
  const out: Planned[] = [];
  if (!specs.length && !opts.tags) {
    const cur = await currentBranch(ctx);
    if (!cur)
      throw new InvalidArgumentError('HEAD is detached: name the branch to push (`coral push origin <branch>`)');
    specs.push(cur);
  }
  const full = (s: string, kind: 'heads' | 'tags') => (s.startsWith('refs/') ? s : `refs/${kind}/${s}`);
  for (let spec of specs) {
    const force = spec.startsWith('+');
    if (force) spec = spec.slice(1);
    let [src, dst = src] = spec.split(':');
    if (src === 'HEAD') {
      // `push origin HEAD`: the current branch, under its own name unless one is given.
      const cur = await currentBranch(ctx);
      if (!cur) throw new InvalidArgumentError('HEAD is detached: name the branch to push');
      if (dst === 'HEAD') dst = cur;
      src = cur;
    }
    if (!src) throw new InvalidArgumentError(`deleting remote refs (':${dst}') is not supported by coral push`);
    const kind = (await ctx.refs.readRef(full(src, 'heads'))) !== null ? 'heads' : 'tags';
    const local = full(src, kind);
    const remote = full(dst, kind);
    checkRefName(local);
    checkRefName(remote);
    const id = await ctx.refs.readRef(local);
    if (!id) throw new RefNotFoundError(`src refspec '${src}' does not match any branch or tag`, { ref: src });
    out.push({ local, remote, id, force });
  }
  if (opts.tags)
    for (const t of await ctx.refs.listRefs('refs/tags/'))
      if (!out.some((p) => p.remote === t.name)) out.push({ local: t.name, remote: t.name, id: t.id, force: false });
  return out;
}

/** Push over an already open remote (sync uses it). */
export async function pushTo(
  ctx: RepoContext,
  target: RemoteTarget,
  remote: RemoteRepo,
  opts: PushOptions = {},
): Promise<PushReport> {
  const planned = await plan(ctx, opts);
  const remoteRefs = await remote.listRefs();
  const updates: RefUpdate[] = [];
  const moves: Array<{ p: Planned; u: RefUpdate; token: string | null }> = [];
  for (const p of planned) {
    const cur = remoteRefs.get(p.remote) ?? null;
    const u: RefUpdate = { ref: p.remote, source: p.local, old: cur?.id ?? null, new: p.id, status: 'new' };
    updates.push(u);
    if (cur?.id === p.id) {
      u.status = 'up-to-date';
      continue;
    }
    if (cur && !(opts.force || p.force)) {
      let ff = false;
      if (p.remote.startsWith('refs/heads/') && (await ctx.meta.has(cur.id)))
        ff = await isAncestor(cur.id, p.id, ctx.meta).catch(() => false);
      if (!ff) {
        u.status = 'rejected';
        u.reason = p.remote.startsWith('refs/tags/')
          ? 'already exists'
          : (await ctx.meta.has(cur.id))
            ? 'non-fast-forward'
            : 'fetch first';
        continue;
      }
      u.status = 'updated';
    } else if (cur) u.status = 'forced';
    moves.push({ p, u, token: cur?.token ?? null });
  }
  const rejected = updates.filter((u) => u.status === 'rejected');
  if (rejected.length)
    throw new NonFastForwardError(
      `push to ${target.url} rejected: ${rejected.map((u) => `${u.ref} (${u.reason})`).join(', ')}; ` +
        'fetch and merge (`coral pull`) first, or use --force',
      { remote: target.name, url: target.url, rejected },
    );
  const t = await transfer({ meta: ctx.meta, objects: ctx.store }, remote, [...new Set(moves.map((m) => m.p.id))], {
    what: 'push',
    local: 'src',
    onProgress: opts.onProgress,
  });
  crashPoint('push:before-ref');
  let failure: Error | null = null;
  for (const m of moves) {
    try {
      await remote.updateRef(m.p.remote, m.token, m.p.id);
    } catch (e) {
      if (!(e instanceof RefConflictError)) throw e;
      m.u.status = 'rejected';
      m.u.reason = 'the remote ref moved during the push';
      failure ??=
        opts.force || m.p.force
          ? new RefConflictError(`push to ${target.url}: ${m.p.remote} moved since it was read; fetch and push again`, {
              ref: m.p.remote,
              remote: target.name,
            })
          : new NonFastForwardError(
              `push to ${target.url} rejected: ${m.p.remote} moved during the push (another push landed first); ` +
                'fetch and merge (`coral pull`) first',
              { ref: m.p.remote, remote: target.name },
            );
      continue;
    }
    if (target.name && m.p.remote.startsWith('refs/heads/')) {
      const tr = trackingRef(target.name, m.p.remote);
      await ctx.refs.updateRef(tr, m.p.id, { message: `update by push` });
    }
  }
  if (opts.setUpstream && target.name)
    for (const p of planned)
      if (p.local.startsWith('refs/heads/') && p.remote.startsWith('refs/heads/'))
        await setUpstream(ctx.config, p.local.slice('refs/heads/'.length), { remote: target.name, merge: p.remote });
  if (failure) throw failure;
  return { ...t, remote: target.name, url: target.url, updates, bytes: t.objectBytes + t.metaBytes };
}

/** `coral push [<remote>] [<refspec>…] [--tags] [--force] [-u]`. */
export async function push(ctx: RepoContext, remoteArg?: string, opts: PushOptions = {}): Promise<PushReport> {
  const target = await remoteTarget(ctx, remoteArg, { endpoint: opts.endpoint });
  const remote = await openRemote(target.url, { create: true, ...remoteOpenOptions(target) });
  try {
    return await pushTo(ctx, target, remote, opts);
  } finally {
    await remote.close();
  }
}
