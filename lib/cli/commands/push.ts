/** `coral push [<remote>] [<branch>|<src>:<dst>…] [--tags] [--force] [-u] [--endpoint <url>] [--json]`. */
import { withRepo, type Command, QUIET_OPT } from '../command';
import { Progress, print, printJson } from '../output';
import { printRefUpdates, printTransfer } from '../transfer-output';

export const pushCommand: Command = {
  summary: 'Send branches and tags (and what they reach) to a remote',
  usage: 'coral push [-q] [<remote>] [<branch>|<src>:<dst>…] [--tags] [--force] [-u] [--endpoint <url>] [--json]',
  options: {
    ...QUIET_OPT,
    tags: { type: 'boolean' },
    force: { type: 'boolean', short: 'f' },
    'set-upstream': { type: 'boolean', short: 'u' },
    endpoint: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(ctx) {
    const [remote, ...refspecs] = ctx.args;
    await withRepo(ctx, async (repo) => {
      const progress = new Progress(ctx.io, 'Sending objects');
      const r = await repo.push(remote, {
        onProgress: (done, total) => progress.update(done, total),
        refspecs,
        tags: !!ctx.flags.tags,
        force: !!ctx.flags.force,
        setUpstream: !!ctx.flags['set-upstream'],
        endpoint: ctx.flags.endpoint as string | undefined,
      });
      progress.done();
      if (ctx.flags.json) return printJson(ctx, r);
      printRefUpdates(ctx, r.url, r.updates, 'To');
      if (r.updates.every((u) => u.status === 'up-to-date')) return print(ctx, 'Everything up-to-date');
      printTransfer(ctx, 'sent', r);
    });
  },
};
