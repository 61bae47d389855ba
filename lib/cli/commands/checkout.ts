/** `coral checkout [-f] [--detach] <branch|rev>`, `-b <new> [<start>]`, or `[<rev>] -- <path>...`. */
import type { Repository } from '../../index';
import { JSON_OPT, UsageError, resolvePaths, withRepo, type Command, QUIET_OPT } from '../command';
import { print, printJson } from '../output';
import { lossyLine, short } from '../render';

export const checkoutCommand: Command = {
  summary: 'Switch branches or restore files, rewriting checkpoints byte-for-byte',
  usage:
    'coral checkout [-q] [-f] [--detach] <branch|rev> | coral checkout -b <new-branch> [<start>] | coral checkout [<rev>] -- <path>...',
  options: {
    ...QUIET_OPT,
    force: { type: 'boolean', short: 'f' },
    branch: { type: 'string', short: 'b' },
    detach: { type: 'boolean' },
    ...JSON_OPT,
  },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      let r: Awaited<ReturnType<Repository['checkout']>>;
      if (ctx.flags.branch) {
        r = await repo.checkout(ctx.flags.branch as string, {
          create: true,
          start: ctx.args[0],
          force: !!ctx.flags.force,
        });
      } else {
        const target = ctx.args[0];
        if (!target && ctx.rest.length) {
          // `checkout -- <path>...`: discard unstaged edits, as git does.
          r = await repo.restore(resolvePaths(ctx, ctx.rest));
          if (ctx.flags.json) return printJson(ctx, r);
          for (const l of r.lossy ?? []) print(ctx, lossyLine(l.path, l));
          return print(ctx, `Updated ${r.written.length} path(s) from the index`);
        }
        if (!target) throw new UsageError('usage: coral checkout <branch|rev> [-- <path>...]');
        r = await repo.checkout(target, {
          force: !!ctx.flags.force,
          detach: !!ctx.flags.detach,
          paths: ctx.rest.length ? resolvePaths(ctx, ctx.rest) : undefined,
        });
      }
      if (ctx.flags.json) return printJson(ctx, r);
      for (const l of r.lossy ?? []) print(ctx, lossyLine(l.path, l));
      for (const p of r.kept) print(ctx, `M\t${p}`); // local changes carried over, as git lists them
      const counts = `${r.written.length} written, ${r.removed.length} removed`;
      if (ctx.rest.length) print(ctx, `Updated ${r.written.length} path(s) from ${ctx.args[0]}`);
      else if (ctx.flags.branch) print(ctx, `Switched to a new branch '${r.branch}'`);
      else if (r.branch) print(ctx, `Switched to branch '${r.branch}' (${counts})`);
      else print(ctx, `HEAD is now at ${short(r.head)} (detached; ${counts})`);
    });
  },
};
