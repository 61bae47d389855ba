/** `coral init [dir] [-b <branch>]`: create an empty repository. */
import * as path from 'node:path';
import { Repository } from '../../index';
import { JSON_OPT, type Command } from '../command';
import { print, printJson } from '../output';

export const initCommand: Command = {
  summary: 'Create an empty repository',
  usage: 'coral init [dir] [-b <branch>]',
  maxArgs: 1,
  options: { branch: { type: 'string', short: 'b' }, ...JSON_OPT },
  async run(ctx) {
    const dir = path.resolve(ctx.cwd, ctx.args[0] ?? '.');
    const repo = await Repository.init(dir, { branch: ctx.flags.branch as string | undefined });
    await repo.close();
    if (ctx.flags.json) printJson(ctx, { path: repo.layout.coral });
    else print(ctx, `Initialized empty coral repository in ${repo.layout.coral}`);
  },
};
