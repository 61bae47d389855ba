/** `coral rm [-f] [-r] [--cached] <path>...`: remove files from the index (and the worktree). */
import { UsageError, resolvePaths, withRepo, type Command, QUIET_OPT } from '../command';
import { print } from '../output';

export const rmCommand: Command = {
  summary: 'Remove files from the index (and the worktree); refuses to lose local changes without -f',
  usage: 'coral rm [-q] [-f] [-r] [--cached] <path>...',
  options: {
    ...QUIET_OPT,
    cached: { type: 'boolean' },
    force: { type: 'boolean', short: 'f' },
    recursive: { type: 'boolean', short: 'r' },
  },
  async run(ctx) {
    const paths = [...ctx.args, ...ctx.rest];
    if (!paths.length) throw new UsageError('usage: coral rm [-f] [-r] [--cached] <path>...');
    await withRepo(ctx, async (repo) => {
      const removed = await repo.rm(resolvePaths(ctx, paths), {
        cached: !!ctx.flags.cached,
        force: !!ctx.flags.force,
        recursive: !!ctx.flags.recursive,
      });
      for (const f of removed) print(ctx, `rm '${f}'`);
    });
  },
};
