/** `coral clone <url> [<dir>] [--branch <b>] [--filter <glob>]… [--endpoint <url>] [--json]`. */
import * as path from 'node:path';
import { Repository } from '../../index';
import { UsageError, type Command, QUIET_OPT } from '../command';
import { Progress, print, printJson } from '../output';
import { printTransfer } from '../transfer-output';

export const cloneCommand: Command = {
  summary: 'Copy a repository (path, file:// or s3://) and check out a branch; --filter for a partial clone',
  usage:
    'coral clone [-q] <url> [<dir>] [--branch <branch|tag>] [--filter <glob>]… [--no-checkout] [--endpoint <url>] [--json]',
  maxArgs: 2,
  options: {
    ...QUIET_OPT,
    branch: { type: 'string', short: 'b' },
    filter: { type: 'string', multiple: true },
    'no-checkout': { type: 'boolean', short: 'n' },
    endpoint: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(ctx) {
    const [url, dir] = ctx.args;
    if (!url) throw new UsageError(`a URL to clone is required; usage: ${cloneCommand.usage}`);
    // A relative path URL is taken from where the command runs, like the directory.
    const src = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : path.resolve(ctx.cwd, url);
    if (!ctx.flags.json) ctx.io.err(`Cloning into '${dir ?? path.basename(src).replace(/\.coral$/, '')}'...\n`);
    const progress = new Progress(ctx.io, 'Receiving objects');
    const { repository, report } = await Repository.clone(
      src,
      dir === undefined ? undefined : path.resolve(ctx.cwd, dir),
      {
        branch: ctx.flags.branch as string | undefined,
        filter: ctx.flags.filter as string[] | undefined,
        endpoint: ctx.flags.endpoint as string | undefined,
        noCheckout: !!ctx.flags['no-checkout'],
        onProgress: (done, total) => progress.update(done, total),
      },
    );
    progress.done();
    await repository.close();
    if (ctx.flags.json) return printJson(ctx, report);
    printTransfer(ctx, 'received', report.fetch);
    if (report.tag)
      print(
        ctx,
        ctx.flags['no-checkout']
          ? `tag '${report.tag}' fetched; no files checked out`
          : `checked out tag '${report.tag}' on a detached HEAD (${report.written.length} file(s))`,
      );
    else if (!report.branch && report.tags?.length)
      print(ctx, `the remote has no branches, only tags: ${report.tags.join(', ')} (\`coral checkout <tag>\`)`);
    else if (!report.branch) print(ctx, 'warning: you appear to have cloned an empty repository.');
    else if (ctx.flags['no-checkout']) print(ctx, `branch '${report.branch}' set up; no files checked out`);
    else print(ctx, `checked out '${report.branch}' (${report.written.length} file(s))`);
  },
};
