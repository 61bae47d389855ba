/** `coral branch [-a|-r] [-v|-vv] [--json]`, `coral branch <name> [<start>] [-f]`, `coral branch -d|-D <name>`. */
import { branchTip, listBranches } from '../../index';
import { JSON_OPT, UsageError, withRepo, type Command } from '../command';
import { paint, print, printJson } from '../output';
import { short } from '../render';

export const branchCommand: Command = {
  summary: 'List, create or delete branches',
  usage: 'coral branch [-a|-r] [-v|-vv] [--json] | coral branch <name> [<start>] [-f] | coral branch -d|-D <name>',
  options: {
    delete: { type: 'boolean', short: 'd' },
    'force-delete': { type: 'boolean', short: 'D' },
    force: { type: 'boolean', short: 'f' },
    list: { type: 'boolean', short: 'l' },
    all: { type: 'boolean', short: 'a' },
    remotes: { type: 'boolean', short: 'r' },
    verbose: { type: 'boolean', short: 'v', multiple: true },
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
      const { all, remotes } = ctx.flags as { all?: boolean; remotes?: boolean };
      // -v: tips and subjects; -vv (or -v -v): also each branch's upstream and ahead/behind, as git does.
      const level = Array.isArray(ctx.flags.verbose) ? ctx.flags.verbose.length : ctx.flags.verbose ? 1 : 0;
      const verbose = level > 0;
      if (!all && !remotes && !verbose) {
        const bs = await repo.branches();
        if (ctx.flags.json) return printJson(ctx, bs);
        for (const b of bs)
          print(ctx, `${b.current ? '* ' : '  '}${b.current ? paint(ctx.io, 'green', b.name) : b.name}`);
        return;
      }
      const bs = await listBranches(repo, { all, remotes, verbose, upstream: level > 1 });
      if (ctx.flags.json) return printJson(ctx, bs);
      const width = bs.reduce((n, b) => Math.max(n, b.name.length), 0);
      for (const b of bs) {
        const name = b.current ? paint(ctx.io, 'green', b.name) : b.remote ? paint(ctx.io, 'red', b.name) : b.name;
        const pad = verbose ? ' '.repeat(width - b.name.length) : '';
        const u = b.upstream;
        const track = !u
          ? ''
          : `[${paint(ctx.io, 'blue', u.name)}${
              u.gone
                ? ': gone'
                : u.ahead || u.behind
                  ? `: ${[u.ahead ? `ahead ${u.ahead}` : '', u.behind ? `behind ${u.behind}` : ''].filter(Boolean).join(', ')}`
                  : ''
            }] `;
        print(ctx, `${b.current ? '* ' : '  '}${name}${verbose ? `${pad} ${short(b.id)} ${track}${b.subject}` : ''}`);
      }
    });
  },
};
