/** `coral branch [-a|-r] [-v] [--json]`, `coral branch <name> [<start>] [-f]`, `coral branch -d|-D <name>`. */
import { branchTip, listBranches } from '../../index';
import { JSON_OPT, UsageError, withRepo, type Command } from '../command';
import { paint, print, printJson } from '../output';
import { short } from '../render';

export const branchCommand: Command = {
  summary: 'List, create or delete branches',
  usage: 'coral branch [-a|-r] [-v] [--json] | coral branch <name> [<start>] [-f] | coral branch -d|-D <name>',
  options: {
    delete: { type: 'boolean', short: 'd' },
    'force-delete': { type: 'boolean', short: 'D' },
    force: { type: 'boolean', short: 'f' },
    list: { type: 'boolean', short: 'l' },
    all: { type: 'boolean', short: 'a' },
    remotes: { type: 'boolean', short: 'r' },
    verbose: { type: 'boolean', short: 'v' },
    ...JSON_OPT,
  },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      if (ctx.flags.delete || ctx.flags['force-delete']) {
        if (!ctx.args.length) throw new UsageError('branch name required: coral branch -d <name>');
        for (const n of ctx.args) {
          const id = (await branchTip(repo, n)) ?? '';
          await repo.deleteBranch(n, { force: !!ctx.flags['force-delete'] });
          if (!ctx.flags.json) print(ctx, `Deleted branch ${n} (was ${short(id)}).`);
        }
        return;
      }
      if (ctx.args.length && !ctx.flags.list) {
        const id = await repo.createBranch(ctx.args[0], ctx.args[1] ?? 'HEAD', { force: !!ctx.flags.force });
        if (ctx.flags.json) printJson(ctx, { name: ctx.args[0], id });
        return;
      }
      const { all, remotes, verbose } = ctx.flags as { all?: boolean; remotes?: boolean; verbose?: boolean };
      if (!all && !remotes && !verbose) {
        const bs = await repo.branches();
        if (ctx.flags.json) return printJson(ctx, bs);
        for (const b of bs)
          print(ctx, `${b.current ? '* ' : '  '}${b.current ? paint(ctx.io, 'green', b.name) : b.name}`);
        return;
      }
      const bs = await listBranches(repo, { all, remotes, verbose });
      if (ctx.flags.json) return printJson(ctx, bs);
      const width = bs.reduce((n, b) => Math.max(n, b.name.length), 0);
      for (const b of bs) {
        const name = b.current ? paint(ctx.io, 'green', b.name) : b.remote ? paint(ctx.io, 'red', b.name) : b.name;
        const pad = verbose ? ' '.repeat(width - b.name.length) : '';
        print(ctx, `${b.current ? '* ' : '  '}${name}${verbose ? `${pad} ${short(b.id)} ${b.subject}` : ''}`);
      }
    });
  },
};
