/**
 * `coral hub get <repo> [--rev <rev>] [--include <glob>]... [--tensors <glob>]... [--endpoint <url>] [--dir <dir>] [--add] [--json]`,
 * `coral hub sidecar <file.safetensors> [-o <out>]`.
 */
import * as path from 'node:path';
import { CoralError, NotARepositoryError, Repository, hubGet, writeHubSidecar, type HubGetReport } from '../../index';
import { JSON_OPT, UsageError, resolvePaths, type Command, type Ctx } from '../command';
import { humanBytes, print, printJson } from '../output';

async function openRepo(ctx: Ctx): Promise<Repository | null> {
  try {
    return await Repository.open(ctx.cwd);
  } catch (e) {
    if (e instanceof CoralError && e.code === NotARepositoryError.code) return null;
    throw e;
  }
}

function report(ctx: Ctx, r: HubGetReport): void {
  for (const f of r.files) {
    const how = f.tensors
      ? `${f.fetched} tensors fetched, ${f.local} from the local store${f.exact ? '' : ' (tensor subset: a new safetensors file)'}`
      : 'whole file';
    print(ctx, `${f.path}: ${humanBytes(f.bytesOnWire)} on the wire for ${humanBytes(f.size)} (${how})`);
  }
  print(
    ctx,
    `${r.repo}@${r.rev}: ${humanBytes(r.bytesOnWire)} transferred for ${humanBytes(r.bytesTotal)} of files, ${r.requests} requests`,
  );
}

export const hubCommand: Command = {
  summary: 'Get a model from a Hugging Face-compatible hub, fetching only tensors not already local',
  usage:
    'coral hub get <repo> [--rev <rev>] [--include <glob>]... [--tensors <glob>]... [--endpoint <url>] [--dir <dir>] [--add] [--json] | coral hub sidecar <file.safetensors> [-o <out>]',
  maxArgs: 2,
  options: {
    rev: { type: 'string' },
    include: { type: 'string', multiple: true },
    tensors: { type: 'string', multiple: true },
    endpoint: { type: 'string' },
    dir: { type: 'string' },
    add: { type: 'boolean' },
    output: { type: 'string', short: 'o' },
    ...JSON_OPT,
  },
  async run(ctx) {
    const [sub, arg] = ctx.args;
    if (sub === 'sidecar') {
      if (!arg) throw new UsageError('coral hub sidecar <file.safetensors> [-o <out>]');
      const file = resolvePaths(ctx, [arg])[0];
      const { path: out, sidecar: sc } = await writeHubSidecar(
        file,
        ctx.flags.output ? resolvePaths(ctx, [ctx.flags.output as string])[0] : undefined,
      );
      if (ctx.flags.json) return printJson(ctx, { file, sidecar: out, tensors: Object.keys(sc.tensors).length });
      print(ctx, `wrote ${path.relative(ctx.cwd, out) || out} (${Object.keys(sc.tensors).length} tensors)`);
      return;
    }
    if (sub !== 'get' || !arg) throw new UsageError(`usage: ${hubCommand.usage}`);
    const repo = await openRepo(ctx);
    try {
      if (ctx.flags.add && !repo) throw new UsageError('--add needs a coral repository');
      const opts = {
        rev: ctx.flags.rev as string | undefined,
        include: ctx.flags.include as string[] | undefined,
        tensors: ctx.flags.tensors as string[] | undefined,
        endpoint: ctx.flags.endpoint as string | undefined,
        dir: ctx.flags.dir ? resolvePaths(ctx, [ctx.flags.dir as string])[0] : ctx.cwd,
      };
      const r = repo ? await repo.hubGet(arg, opts) : await hubGet({ reader: null }, arg, opts);
      if (ctx.flags.add && repo) await repo.add(r.files.map((f) => f.dest));
      if (ctx.flags.json) return printJson(ctx, r);
      report(ctx, r);
    } finally {
      await repo?.close();
    }
  },
};
