/**
 * `publish --to`: publishes a commit into a remote repository (meant for a `coral serve` registry,
 * `http(s)://<host:port>/<name>`; path and S3 remotes work the same way) under a tag. It is a push of one
 * commit to one tag, with the remotes code: the commit's objects go up with the same negotiation as
 * `push` (lib/remote/negotiate.ts: only what the registry lacks moves, tensor objects in one pack, then
 * meta objects), and only then is the tag created by compare-and-swap. An existing tag is never moved to
 * another commit unless `force` (git's rule for a pushed tag); publishing the commit a tag already names
 * is a no-op that sends nothing. The token is `CORAL_TOKEN`, else `remote.<name>.token` of the configured
 * remote named (or whose URL is given). Every publish that creates or moves a tag appends a line to
 * `.coral/publish.log` (format `coral`), which `publishLog` lists.
 *
 * @example
 * const r = await publishTo(ctx, 'HEAD', { to: 'http://127.0.0.1:8470/llama', tag: 'v1' });
 * r.status, r.objectBytes, r.fileBytes   // 'new', bytes sent, size of the files that needed them
 */
import { readCommit, resolve, treeOf, type RepoContext } from '../context';
import { AlreadyExistsError, RefConflictError, invalidParameter } from '../errors';
import { checkRefName } from '../models/refname';
import { emptyTransferReport, transfer, type TransferReport } from '../remote/negotiate';
import { openRemote } from '../remote/open';
import { DTYPES, type DType } from '../tensor/dtype';
import { recordPublish, type PublishRecord } from './publish';
import { remoteOpenOptions, remotes, remoteTarget } from './remote';

export interface PublishToOptions {
  /** The registry: a URL (`http(s)://<host:port>/<name>`, a path, `s3://…`) or a configured remote's name. */
  to: string;
  /** Tag name on the remote (default: see {@link defaultPublishTag}). */
  tag?: string;
  /** Model name; the default tag when `tag` is absent. */
  name?: string;
  /** Move an existing tag that names another commit (still a compare-and-swap against the value read). */
  force?: boolean;
  /** S3 endpoint for this run (else `remote.<name>.endpoint`). */
  endpoint?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface PublishToReport extends TransferReport {
  rev: string;
  commit: string;
  /** The registry's URL, and the configured remote's name when one was named or matched. */
  url: string;
  remote: string | null;
  tag: string;
  /** `new` tag, `forced` (moved with `force`), or `up-to-date` (it named the commit already: nothing sent). */
  status: 'new' | 'forced' | 'up-to-date';
  /** The commit the tag named before (null for a new tag). */
  old: string | null;
  /** Everything sent: object bytes plus meta bytes. */
  bytes: number;
}

/**
 * The tag `publish --to` uses when none is given: `name` when given, else `rev` when it is a local tag's
 * name, else `published-<first 12 hex digits of the commit>`.
 */
export async function defaultPublishTag(
  ctx: Pick<RepoContext, 'refs'>,
  rev: string,
  commit: string,
  name?: string,
): Promise<string> {
  if (name !== undefined) return name;
  if (!rev.startsWith('refs/') && (await ctx.refs.readRef(`refs/tags/${rev}`).catch(() => null)) !== null) return rev;
  return `published-${commit.slice(0, 12)}`;
}

/** Publishes commit `rev` into the registry `opts.to` under a tag; see the module comment. */
export async function publishTo(ctx: RepoContext, rev: string, opts: PublishToOptions): Promise<PublishToReport> {
  if (typeof opts.to !== 'string' || !opts.to) throw invalidParameter('to', 'a registry URL or remote name', opts.to);
  if (opts.tag !== undefined && (typeof opts.tag !== 'string' || !opts.tag))
    throw invalidParameter('tag', 'a tag name', opts.tag);
  if (opts.name !== undefined && (typeof opts.name !== 'string' || !opts.name))
    throw invalidParameter('name', 'a model name', opts.name);
  const id = await resolve(ctx, rev);
  await readCommit(ctx, id); // a commit, not a tree or a tag object
  const tag = opts.tag ?? (await defaultPublishTag(ctx, rev, id, opts.name));
  const ref = `refs/tags/${tag}`;
  checkRefName(ref);
  const target = await remoteTarget(ctx, opts.to, { endpoint: opts.endpoint });
  if (target.name === null) {
    // A URL that a configured remote has: its token and endpoint apply.
    const rc = (await remotes(ctx)).find((r) => r.url === target.url);
    if (rc) {
      target.name = rc.name;
      if (rc.token) target.token = rc.token;
      target.endpoint ??= rc.endpoint;
    }
  }
  const remote = await openRemote(target.url, { create: true, ...remoteOpenOptions(target) });
  try {
    const cur = (await remote.listRefs()).get(ref) ?? null;
    const base = { rev, commit: id, url: target.url, remote: target.name, tag, old: cur?.id ?? null };
    if (cur?.id === id) return { ...base, status: 'up-to-date', ...emptyTransferReport(), bytes: 0 };
    if (cur && !opts.force)
      throw new AlreadyExistsError(
        `tag '${tag}' already exists in ${target.url} and names ${cur.id.slice(0, 12)}, not ${id.slice(0, 12)}: ` +
          'choose another --tag, or --force to move it',
        { tag, url: target.url, current: cur.id, commit: id },
      );
    const t = await transfer({ meta: ctx.meta, objects: ctx.store }, remote, [id], {
      what: 'publish',
      local: 'src',
      onProgress: opts.onProgress,
    });
    try {
      await remote.updateRef(ref, cur?.token ?? null, id);
    } catch (e) {
      if (!(e instanceof RefConflictError)) throw e;
      throw new RefConflictError(
        `publish to ${target.url}: tag '${tag}' was created or moved by someone else meanwhile; nothing was tagged`,
        { tag, url: target.url },
      );
    }
    const tree = await treeOf(ctx, id);
    let tensors = 0;
    let weightBytes = 0;
    for (const e of Object.values(tree.files))
      for (const te of e.tensors) {
        tensors++;
        weightBytes += te.shape.reduce((a, b) => a * b, 1) * DTYPES[te.dtype as DType].size;
      }
    const record: PublishRecord = {
      time: new Date().toISOString(),
      rev,
      commit: id,
      format: 'coral',
      destination: target.url,
      tag,
      files: Object.keys(tree.files).length,
      tensors,
      weightBytes,
      sentBytes: t.objectBytes + t.metaBytes,
    };
    await recordPublish(ctx, record);
    return { ...base, ...t, status: cur ? 'forced' : 'new', bytes: t.objectBytes + t.metaBytes };
  } finally {
    await remote.close();
  }
}
