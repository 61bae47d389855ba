/**
 * `tag`: lightweight tags (a ref naming a commit) and annotated ones (a tag
 * object with tagger, message and metrics).
 *
 * @example
 * await createTag(ctx, 'v1', 'HEAD', { message: 'release', metrics: { acc: 0.91 } });
 * for (const t of await tags(ctx)) console.log(t.name, t.commit, t.annotated);
 */
import { resolve, signature, type RepoContext } from '../context';
import { AlreadyExistsError, RefNotFoundError } from '../errors';
import { checkShortRefName, encodeTag, type TagObject } from '../models';

export interface TagInfo {
  name: string;
  id: string;
  commit: string;
  annotated: boolean;
  tag?: TagObject;
}

export async function tags(ctx: Pick<RepoContext, 'refs' | 'meta'>): Promise<TagInfo[]> {
  const out = [];
  for (const r of await ctx.refs.listRefs('refs/tags/')) {
    const name = r.name.replace(/^refs\/tags\//, '');
    let tag: TagObject | undefined;
    try {
      tag = await ctx.meta.readTag(r.id);
    } catch {
      tag = undefined;
    }
    out.push({ name, id: r.id, commit: tag ? tag.object : r.id, annotated: !!tag, ...(tag ? { tag } : {}) });
  }
  return out;
}

/** Lightweight tag, or annotated when a message (and optional metrics) is given. */
export async function createTag(
  ctx: RepoContext,
  name: string,
  rev = 'HEAD',
  opts: { message?: string; metrics?: Record<string, unknown>; force?: boolean } = {},
): Promise<string> {
  checkShortRefName(name, 'tag name');
  const commit = await resolve(ctx, rev);
  const ref = `refs/tags/${name}`;
  if ((await ctx.refs.readRef(ref)) && !opts.force)
    throw new AlreadyExistsError(`tag '${name}' already exists`, { tag: name });
  let target = commit;
  if (opts.message !== undefined || opts.metrics) {
    const tag: TagObject = {
      object: commit,
      tag: name,
      tagger: signature(ctx),
      message: opts.message ?? '',
      metadata: opts.metrics ? { metrics: opts.metrics } : {},
    };
    target = await ctx.meta.put(encodeTag(tag));
  }
  await ctx.refs.updateRef(ref, target, { expectedOld: opts.force ? undefined : null, message: `tag: ${name}` });
  return target;
}

export async function deleteTag(ctx: Pick<RepoContext, 'refs'>, name: string): Promise<void> {
  const ref = `refs/tags/${checkShortRefName(name, 'tag name')}`;
  const id = await ctx.refs.readRef(ref);
  if (!id) throw new RefNotFoundError(`tag '${name}' not found`);
  await ctx.refs.deleteRef(ref, id);
}
