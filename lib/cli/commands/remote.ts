/** `coral remote [-v] | remote add <name> <url> [--endpoint <url>] | remote remove <name>`. */
import * as path from 'node:path';
import { transportOf } from '../../index';
import { JSON_OPT, UsageError, withRepo, type Command } from '../command';
import { print, printJson } from '../output';

export const remoteCommand: Command = {
  summary: 'Manage the remotes a repository pushes to and fetches from',
  usage: 'coral remote [-v] [--json] | coral remote add <name> <url> [--endpoint <url>] | coral remote remove <name>',
  maxArgs: 3,
  options: { verbose: { type: 'boolean', short: 'v' }, endpoint: { type: 'string' }, ...JSON_OPT },
  async run(ctx) {
    const [sub, ...args] = ctx.args;
    await withRepo(ctx, async (repo) => {
      if (sub === 'add') {
        if (args.length !== 2) throw new UsageError('usage: coral remote add <name> <url> [--endpoint <url>]');
        // A path is recorded absolute, so the remote means the same from any directory.
        const url =
          transportOf(args[1]) === 'file' && !/^file:/i.test(args[1]) ? path.resolve(ctx.cwd, args[1]) : args[1];
        const r = await repo.remoteAdd(args[0], url, { endpoint: ctx.flags.endpoint as string | undefined });
        if (ctx.flags.json) printJson(ctx, r);
        return;
      }
      if (sub === 'remove' || sub === 'rm') {
        if (args.length !== 1) throw new UsageError('usage: coral remote remove <name>');
        await repo.remoteRemove(args[0]);
        return;
      }
      if (sub !== undefined) throw new UsageError(`unknown subcommand '${sub}'; usage: ${remoteCommand.usage}`);
      if (ctx.flags.endpoint !== undefined) throw new UsageError('--endpoint belongs to `coral remote add`');
      const list = await repo.remotes();
      if (ctx.flags.json) return printJson(ctx, list);
      for (const r of list) {
        if (!ctx.flags.verbose) {
          print(ctx, r.name);
          continue;
        }
        const extra = `${r.endpoint ? ` (endpoint ${r.endpoint})` : ''}${r.promisor ? ` [partial: ${r.filter.join(' ')}]` : ''}`;
        print(ctx, `${r.name}\t${r.url}${extra} (fetch)`);
        print(ctx, `${r.name}\t${r.url}${extra} (push)`);
      }
    });
  },
};
