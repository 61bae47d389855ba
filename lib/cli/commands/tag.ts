/** `coral tag [<name> [<rev>]] [-m <message>] [--metric key=value]... [-d <name>] [-f] [--json]`. */
import { JSON_OPT, UsageError, messageFlag, parsePairs, withRepo, type Command } from '../command';
import { print, printJson } from '../output';

export const tagCommand: Command = {
  summary: 'List, create (lightweight or annotated with metrics) or delete tags',
  usage: 'coral tag [<name> [<rev>]] [-m <message>] [--metric key=value]... [-d <name>] [-f] [--json]',
  options: {
    message: { type: 'string', short: 'm', multiple: true },
    metric: { type: 'string', multiple: true },
    delete: { type: 'boolean', short: 'd' },
    force: { type: 'boolean', short: 'f' },
    list: { type: 'boolean', short: 'l' },
    ...JSON_OPT,
  },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      if (ctx.flags.delete) {
        if (!ctx.args.length) throw new UsageError('tag name required: coral tag -d <name>');
        for (const n of ctx.args) {
          await repo.deleteTag(n);
          if (!ctx.flags.json) print(ctx, `Deleted tag '${n}'`);
        }
        return;
      }
      if (ctx.args.length && !ctx.flags.list) {
        const metrics = ctx.flags.metric ? parsePairs(ctx.flags.metric as string[], '--metric') : undefined;
        const id = await repo.createTag(ctx.args[0], ctx.args[1] ?? 'HEAD', {
          message: messageFlag(ctx.flags.message),
          metrics,
          force: !!ctx.flags.force,
        });
        if (ctx.flags.json) printJson(ctx, { name: ctx.args[0], id });
        return;
      }
      const ts = await repo.tags();
      if (ctx.flags.json) return printJson(ctx, ts);
      for (const t of ts) {
        const m = t.tag?.metadata.metrics;
        const extra = t.tag ? `  ${t.tag.message.split('\n')[0]}${m ? `  ${JSON.stringify(m)}` : ''}` : '';
        print(ctx, `${t.name}${extra}`);
      }
    });
  },
};
