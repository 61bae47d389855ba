/** `coral init [dir] [-b <branch>] [--bare]`: create an empty repository (bare: one to push to). */
import * as path from 'node:path';
import { Repository, initBare } from '../../index';
import { JSON_OPT, type Command, QUIET_OPT } from '../command';
import { print, printJson } from '../output';

export const initCommand: Command = {
  summary: 'Create an empty repository',
  usage: 'coral init [-q] [dir] [-b <branch>] [--bare]',
  maxArgs: 1,
  options: { branch: { type: 'string', short: 'b' }, bare: { type: 'boolean' }, ...JSON_OPT, ...QUIET_OPT },
  async run(ctx) {
    const dir = path.resolve(ctx.cwd, ctx.args[0] ?? '.');
    if (ctx.flags.bare) {
      const bare = await initBare(dir, { branch: ctx.flags.branch as string | undefined });
      if (ctx.flags.json) printJson(ctx, { path: bare, bare: true });
      else print(ctx, `Initialized empty bare coral repository in ${bare}`);
      return;
    }
    const repo = await Repository.init(dir, { branch: ctx.flags.branch as string | undefined });
    await repo.close();
    if (ctx.flags.json) printJson(ctx, { path: repo.layout.coral });
    else print(ctx, `Initialized empty coral repository in ${repo.layout.coral}`);
  },
};
