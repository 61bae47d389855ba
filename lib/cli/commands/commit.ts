/** `coral commit -m <message> [--meta k=v]... [--author "Name <email>"] [--allow-empty] [-a]`. */
import { invalidParameter } from '../../index';
import { JSON_OPT, UsageError, messageFlag, parsePairs, withRepo, type Command, QUIET_OPT } from '../command';
import { print, printJson } from '../output';
import { firstLine, short } from '../render';

export const commitCommand: Command = {
  summary: 'Record the staged files as a new commit',
  usage: 'coral commit [-q] -m <message> [--meta key=value]... [--author "Name <email>"] [--allow-empty]',
  maxArgs: 0,
  options: {
    message: { type: 'string', short: 'm', multiple: true },
    meta: { type: 'string', multiple: true },
    author: { type: 'string' },
    'allow-empty': { type: 'boolean' },
    all: { type: 'boolean', short: 'a' },
    ...JSON_OPT,
    ...QUIET_OPT,
  },
  async run(ctx) {
    const message = messageFlag(ctx.flags.message);
    let author: { name?: string; email?: string } | undefined;
    if (ctx.flags.author) {
      const m = /^\s*(.*?)\s*<([^>]*)>\s*$/.exec(ctx.flags.author as string);
      if (!m) throw invalidParameter('--author', '"Name <email>"', ctx.flags.author);
      author = { name: m[1], email: m[2] };
    }
    await withRepo(ctx, async (repo) => {
      // During a merge the message defaults to the merge's; otherwise one is required.
      const merging = !!repo.mergeState();
      if (!message && !merging) throw new UsageError('a commit message is required: coral commit -m "<message>"');
      const id = await repo.commit({
        message: message ?? '',
        author,
        metadata: parsePairs(ctx.flags.meta as string[] | undefined, '--meta'),
        allowEmpty: !!ctx.flags['allow-empty'],
        all: !!ctx.flags.all,
      });
      const branch = await repo.currentBranch();
      if (ctx.flags.json) return printJson(ctx, { id, branch });
      const c = await repo.readCommit(id);
      print(ctx, `[${branch ?? 'detached HEAD'} ${short(id)}] ${firstLine(c)}`);
    });
  },
};
