/** `coral gc [--prune=<now|never|30m|2h|14d>] [--aggressive] [--json]`. */
import { parsePruneExpire } from '../../index';
import { JSON_OPT, withRepo, type Command, QUIET_OPT } from '../command';
import { humanBytes, print, printJson } from '../output';

export const gcCommand: Command = {
  summary: 'Remove objects unreachable from refs, reflogs, the index and merge state',
  usage: 'coral gc [-q] [--prune=<now|never|30m|2h|14d>] [--aggressive] [--json]',
  maxArgs: 0,
  options: { prune: { type: 'string' }, aggressive: { type: 'boolean' }, ...JSON_OPT, ...QUIET_OPT },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      const r = await repo.gc({
        pruneExpireMs: ctx.flags.prune !== undefined ? parsePruneExpire(ctx.flags.prune as string) : undefined,
        aggressive: !!ctx.flags.aggressive,
      });
      if (ctx.flags.json) return printJson(ctx, r);
      print(
        ctx,
        `gc: kept ${r.reachableObjects} objects of ${r.reachableCommits} commits; removed ${r.removedObjects} objects and ` +
          `${r.removedMeta} meta objects; ${humanBytes(r.bytesBefore)} -> ${humanBytes(r.bytesAfter)}`,
      );
    });
  },
};
