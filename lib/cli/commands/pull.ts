/** `coral pull [<remote>] [<branch>]` with every option of `coral merge`. */
import { MergeConflictError, type MergeConflict } from '../../index';
import { withRepo, type Command, QUIET_OPT } from '../command';
import { printJson } from '../output';
import { MERGE_OPTIONS, mergeOptions, printMergeConflicts, printMergeReport } from './merge';
import { printRefUpdates, printTransfer } from '../transfer-output';

export const pullCommand: Command = {
  summary: 'Fetch from a remote and merge its branch into the current one (merge options apply)',
  usage:
    'coral pull [-q] [<remote>] [<branch>] [--strategy s] [--resolve GLOB=STRATEGY]… [--alpha a] … [--no-ff|--ff-only] [--no-commit] [-m msg] [--endpoint <url>] [--json]',
  maxArgs: 2,
  options: { ...MERGE_OPTIONS, ...QUIET_OPT, endpoint: { type: 'string' }, json: { type: 'boolean' } },
  async run(ctx) {
    return withRepo(ctx, async (repo) => {
      try {
        const r = await repo.pull(ctx.args[0], ctx.args[1], {
          ...mergeOptions(ctx),
          endpoint: ctx.flags.endpoint as string | undefined,
        });
        if (ctx.flags.json) printJson(ctx, r);
        else {
          printRefUpdates(ctx, r.fetch.url, r.fetch.updates, 'From');
          if (r.fetch.objects || r.fetch.metas) printTransfer(ctx, 'received', r.fetch);
          printMergeReport(ctx, r.merge, `${r.fetch.remote ?? r.fetch.url}/${r.branch}`);
        }
        return r.merge.unresolved.length ? 5 : 0;
      } catch (e) {
        if (e instanceof MergeConflictError && !ctx.flags.json) {
          const list = (e.data as { conflicts?: MergeConflict[] } | undefined)?.conflicts;
          if (list) printMergeConflicts(ctx, list, 'err');
        }
        throw e;
      }
    });
  },
};
