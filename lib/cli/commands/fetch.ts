/** `coral fetch [<remote>] [--all-objects] [-p|--prune] [--endpoint <url>] [--json]`. */
import { withRepo, type Command, QUIET_OPT } from '../command';
import { Progress, printJson } from '../output';
import { printRefUpdates, printTransfer } from '../transfer-output';

export const fetchCommand: Command = {
  summary: "Download a remote's branches (as <remote>/<branch>) and tags",
  usage: 'coral fetch [-q] [<remote>] [--all-objects] [-p|--prune] [--endpoint <url>] [--json]',
  maxArgs: 1,
  options: {
    ...QUIET_OPT,
    'all-objects': { type: 'boolean' },
    prune: { type: 'boolean', short: 'p' },
    endpoint: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      const progress = new Progress(ctx.io, 'Receiving objects');
      const r = await repo.fetch(ctx.args[0], {
        onProgress: (done, total) => progress.update(done, total),
        allObjects: !!ctx.flags['all-objects'],
        prune: !!ctx.flags.prune,
        endpoint: ctx.flags.endpoint as string | undefined,
      });
      progress.done();
      if (ctx.flags.json) return printJson(ctx, r);
      printRefUpdates(ctx, r.url, r.updates, 'From');
      if (r.objects || r.metas) printTransfer(ctx, 'received', r);
    });
  },
};
