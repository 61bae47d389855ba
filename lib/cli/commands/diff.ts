/** `coral diff [--cached] [<rev> [<rev>]] [--stat] [--no-metrics] [--json] [-- <path>...]`. */
import { diffIndex, diffWorktree, type FileChange } from '../../index';
import * as path from 'node:path';
import { JSON_OPT, withRepo, type Command } from '../command';
import { printJson } from '../output';
import { renderChanges } from '../render';

export const diffCommand: Command = {
  summary: 'Tensor-aware diff: worktree vs index, --cached, or between revisions',
  usage: 'coral diff [--cached] [<rev> [<rev>]] [--stat] [--no-metrics] [--json] [-- <path>...]',
  maxArgs: 2,
  options: {
    cached: { type: 'boolean' },
    staged: { type: 'boolean' },
    stat: { type: 'boolean' },
    'no-metrics': { type: 'boolean' },
    ...JSON_OPT,
  },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      // The root ('.' there) is every path: no filter.
      const specs = ctx.rest.map((p) => repo.pathspec(path.resolve(ctx.cwd, p)));
      const paths = specs.includes('') ? [] : specs;
      const metrics = !ctx.flags['no-metrics'] && !ctx.flags.stat;
      let changes: FileChange[];
      if (ctx.flags.cached || ctx.flags.staged)
        changes = await diffIndex(repo, (await repo.headCommit()) ? (ctx.args[0] ?? 'HEAD') : null, { metrics, paths });
      else if (ctx.args.length < 2) changes = await diffWorktree(repo, ctx.args[0] ?? null, { metrics, paths });
      else changes = await repo.diff(ctx.args[0], ctx.args[1], { metrics, paths });
      if (ctx.flags.json) return printJson(ctx, changes);
      renderChanges(ctx, changes, { stat: !!ctx.flags.stat });
    });
  },
};
