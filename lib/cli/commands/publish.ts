/**
 * `coral publish <rev> --format hf|mlflow <dir> [--shard-size 5GB] [--path <file>]... [--name <name>] [--json]`,
 * `coral publish <rev> --to <url|remote> [--tag <t>] [--name <name>] [--force] [--json]`, `coral publish --list`.
 */
import { invalidParameter, parseByteSize } from '../../index';
import { JSON_OPT, UsageError, resolvePaths, withRepo, type Command } from '../command';
import { Progress, humanBytes, print, printJson } from '../output';
import { short } from '../render';
import { printTransfer } from '../transfer-output';

export const publishCommand: Command = {
  summary:
    'Write a commit out as a Hugging Face or MLflow model folder, or into a coral serve registry under a tag (--to); --list shows past publishes',
  usage:
    'coral publish <rev> --format hf|mlflow <dir> [--shard-size 5GB] [--path <file>]... [--name <name>] | <rev> --to <url|remote> [--tag <t>] [--force] | --list',
  maxArgs: 2,
  options: {
    format: { type: 'string' },
    'shard-size': { type: 'string' },
    path: { type: 'string', multiple: true },
    name: { type: 'string' },
    list: { type: 'boolean' },
    to: { type: 'string' },
    tag: { type: 'string' },
    force: { type: 'boolean', short: 'f' },
    endpoint: { type: 'string' },
    ...JSON_OPT,
  },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      if (ctx.flags.list) {
        if (ctx.args.length) throw new UsageError('coral publish --list takes no arguments');
        const log = await repo.publishLog();
        if (ctx.flags.json) return printJson(ctx, log);
        for (const r of log)
          print(
            ctx,
            `${r.time}  ${short(r.commit)} (${r.rev})  ${r.format}  ${r.destination}${r.tag ? ` tag ${r.tag}` : ''}  ${r.tensors} tensors, ${humanBytes(r.weightBytes)}` +
              (r.sentBytes !== undefined ? `, ${humanBytes(r.sentBytes)} sent` : ''),
          );
        return;
      }
      if (ctx.flags.to !== undefined) {
        if (ctx.args.length !== 1) throw new UsageError('coral publish <rev> --to <url|remote> takes one revision');
        for (const f of ['format', 'shard-size', 'path'])
          if (ctx.flags[f] !== undefined) throw new UsageError(`--${f} does not apply to publish --to`);
        const progress = new Progress(ctx.io, 'Sending objects');
        const r = await repo.publishTo(ctx.args[0], {
          to: ctx.flags.to as string,
          tag: ctx.flags.tag as string | undefined,
          name: ctx.flags.name as string | undefined,
          force: !!ctx.flags.force,
          endpoint: ctx.flags.endpoint as string | undefined,
          onProgress: (done, total) => progress.update(done, total),
        });
        progress.done();
        if (ctx.flags.json) return printJson(ctx, r);
        if (r.status === 'up-to-date') {
          print(ctx, `tag '${r.tag}' in ${r.url} already names ${short(r.commit)}: nothing to publish`);
          return;
        }
        print(
          ctx,
          `Published ${short(r.commit)} (${r.rev}) to ${r.url} as tag '${r.tag}'` +
            (r.status === 'forced' ? ` (moved from ${short(r.old)})` : ''),
        );
        if (r.objects || r.metas) printTransfer(ctx, 'sent', r);
        return;
      }
      for (const f of ['tag', 'force', 'endpoint'])
        if (ctx.flags[f] !== undefined) throw new UsageError(`--${f} applies only to publish --to`);
      if (ctx.args.length !== 2) throw new UsageError(`usage: ${publishCommand.usage}`);
      const format = ctx.flags.format as string | undefined;
      if (format !== 'hf' && format !== 'mlflow') throw invalidParameter('--format', 'hf or mlflow', format);
      const [rev, dir] = ctx.args;
      const r = await repo.publish(rev, {
        format: format,
        out: resolvePaths(ctx, [dir])[0],
        shardSize: ctx.flags['shard-size'] ? parseByteSize(ctx.flags['shard-size'] as string) : undefined,
        paths: ctx.flags.path as string[] | undefined,
        name: ctx.flags.name as string | undefined,
      });
      if (ctx.flags.json) return printJson(ctx, r);
      print(
        ctx,
        `Published ${short(r.commit)} (${rev}) as ${format} to ${r.out}: ${r.tensors} tensors, ${humanBytes(r.weightBytes)} in ${r.shards} shard(s)`,
      );
      for (const f of r.files) print(ctx, `  ${f}`);
    });
  },
};
