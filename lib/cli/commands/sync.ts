/** `coral sync [<remote>]`: fetch, merge each tracked branch that diverged (merge options), push. */
import { withRepo, type Command } from '../command';
import { print, printJson } from '../output';
import { MERGE_OPTIONS, mergeOptions, printMergeConflicts } from './merge';
import { printRefUpdates, printTransfer } from '../transfer-output';

export const syncCommand: Command = {
  summary: 'Fetch, merge every tracked branch that diverged (merge options apply), then push',
  usage:
    'coral sync [<remote>] [--strategy s] [--resolve GLOB=STRATEGY]… [--alpha a] … [--no-ff] [-m msg] [--endpoint <url>] [--json]',
  maxArgs: 1,
  options: { ...MERGE_OPTIONS, endpoint: { type: 'string' }, json: { type: 'boolean' } },
  async run(ctx) {
    return withRepo(ctx, async (repo) => {
      const r = await repo.sync(ctx.args[0], {
        ...mergeOptions(ctx),
        endpoint: ctx.flags.endpoint as string | undefined,
      });
      if (ctx.flags.json) printJson(ctx, r);
      else {
        printRefUpdates(ctx, r.fetch.url, r.fetch.updates, 'From');
        for (const b of r.branches) print(ctx, `${b.branch.padEnd(20)} ${b.action} (${r.fetch.remote}/${b.upstream})`);
        if (r.push) {
          printRefUpdates(ctx, r.push.url, r.push.updates, 'To');
          printTransfer(ctx, 'sent', r.push);
        }
        if (r.stopped) {
          printMergeConflicts(ctx, r.stopped.conflicts, 'err');
          ctx.io.err(
            `coral: sync stopped: merging ${r.fetch.remote}/${r.branches.find((b) => b.branch === r.stopped!.branch)?.upstream} into '${r.stopped.branch}' left ${r.stopped.conflicts.length} conflict(s); nothing was pushed. Resolve (or pass --strategy/--resolve) and run \`coral sync\` again.\n`,
          );
        }
      }
      return r.stopped ? 5 : 0;
    });
  },
};
