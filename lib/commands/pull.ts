/**
 * `pull`: fetch, then merge the remote branch into the current one, with every option of `merge`
 * (strategies, `--resolve` rules, `--no-ff`, `--ff-only`, `--no-commit`…; lib/commands/merge.ts).
 * The remote branch is the one named, else the current branch's upstream (`branch.<b>.merge`), else the
 * remote branch of the same name.
 *
 * @example
 * const r = await pull(ctx, 'origin', 'main', { strategy: 'ties', density: 0.2 });
 * r.merge.status // 'fast-forward' | 'merged' | …
 */
import { currentBranch } from '../context';
import { InvalidArgumentError, RefNotFoundError } from '../errors';
import { checkShortRefName } from '../models';
import { upstreamOf } from '../remote/config';
import { openRemote } from '../remote/open';
import { fetchFrom, type FetchReport } from './fetch';
import { merge, type MergeContext, type MergeOptions, type MergeReport } from './merge';
import { remoteOpenOptions, remoteTarget } from './remote';

export interface PullOptions extends MergeOptions {
  /** S3 endpoint for this run (else `remote.<name>.endpoint`). */
  endpoint?: string;
}

export interface PullReport {
  fetch: FetchReport;
  /** The remote branch merged (short name). */
  branch: string;
  merge: MergeReport;
}

/** The remote branch `pull`/`sync` merges into local `local`: its upstream's, else the same name. */
export function mergeSource(ctx: Pick<MergeContext, 'config'>, local: string, remote: string | null): string {
  const up = upstreamOf(ctx.config, local);
  if (up && up.remote === remote && up.merge.startsWith('refs/heads/')) return up.merge.slice('refs/heads/'.length);
  return local;
}

/** `coral pull [<remote>] [<branch>]` with merge options. */
export async function pull(
  ctx: MergeContext,
  remoteArg?: string,
  branch?: string,
  opts: PullOptions = {},
): Promise<PullReport> {
  if (branch !== undefined) checkShortRefName(branch);
  const cur = await currentBranch(ctx);
  const target = await remoteTarget(ctx, remoteArg, { endpoint: opts.endpoint });
  const source = branch ?? (cur ? mergeSource(ctx, cur, target.name) : null);
  if (!source) throw new InvalidArgumentError('HEAD is detached: name the remote branch to pull');
  const remote = await openRemote(target.url, remoteOpenOptions(target));
  let f: FetchReport;
  try {
    f = await fetchFrom(ctx, target, remote);
  } finally {
    await remote.close();
  }
  const theirs = f.heads[source];
  if (!theirs) throw new RefNotFoundError(`couldn't find remote ref refs/heads/${source} in ${target.url}`);
  const { endpoint: _e, ...mopts } = opts;
  void _e;
  const m = await merge(ctx, theirs, {
    ...mopts,
    message: mopts.message ?? `Merge branch '${source}' of ${target.url}`,
  });
  return { fetch: f, branch: source, merge: m };
}
