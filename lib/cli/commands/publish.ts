/** `coral publish <rev> --format hf|mlflow <dir> [--shard-size 5GB] [--path <file>]... [--name <name>] [--json]`, `coral publish --list`. */
import { invalidParameter, parseByteSize } from '../../index';
import { JSON_OPT, UsageError, resolvePaths, withRepo, type Command } from '../command';
import { humanBytes, print, printJson } from '../output';
import { short } from '../render';

export const publishCommand: Command = {
  summary: 'Write a commit out as a Hugging Face or MLflow model folder; --list shows past publishes',
  usage: 'coral publish <rev> --format hf|mlflow <dir> [--shard-size 5GB] [--path <file>]... [--name <name>] | --list',
  maxArgs: 2,
  options: {
    format: { type: 'string' },
    'shard-size': { type: 'string' },
    path: { type: 'string', multiple: true },
    name: { type: 'string' },
    list: { type: 'boolean' },
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
            `${r.time}  ${short(r.commit)} (${r.rev})  ${r.format}  ${r.destination}  ${r.tensors} tensors, ${humanBytes(r.weightBytes)}`,
          );
        return;
      }
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
