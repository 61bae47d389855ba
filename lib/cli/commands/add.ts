/** `coral add [-f] [--strict] [--lossy <codec>[:k=v,...]] <path>...`: stage checkpoint files. */
import { lossyLine } from '../render';
import { JSON_OPT, UsageError, resolvePaths, withRepo, type Command, QUIET_OPT } from '../command';
import { Progress, humanBytes, print, printJson } from '../output';

export const addCommand: Command = {
  summary: 'Stage checkpoint files (stored as skeleton + deduplicated tensors)',
  usage: 'coral add [-q] [-f|--force] [--strict] [--lossy <codec>[:param=value,...]] <path>...',
  options: {
    force: { type: 'boolean', short: 'f' },
    strict: { type: 'boolean' },
    lossy: { type: 'string' },
    ...JSON_OPT,
    ...QUIET_OPT,
  },
  async run(ctx) {
    const paths = [...ctx.args, ...ctx.rest];
    if (!paths.length) throw new UsageError('nothing specified, nothing added; usage: coral add <path>...');
    await withRepo(ctx, async (repo) => {
      const progress = new Progress(ctx.io, 'add');
      let n = 0;
      const r = await repo.add(resolvePaths(ctx, paths), {
        onFile: (rel) => progress.update(++n, n, rel),
        force: !!ctx.flags.force,
        strict: !!ctx.flags.strict,
        ...(ctx.flags.lossy !== undefined ? { lossy: ctx.flags.lossy as string } : {}),
      });
      progress.done();
      if (ctx.flags.json) return printJson(ctx, r);
      for (const f of r.files)
        print(
          ctx,
          `added ${f.path}: ${humanBytes(f.bytes)}, ${f.segments} tensors, ${f.storedObjects} new objects ` +
            `(${f.deltaObjects} deltas, ${humanBytes(f.storedBytes)} stored), ${f.dedupedObjects} deduplicated` +
            (f.plainFile ? `\n  ${f.path}: stored as a plain file: ${f.plainFile}` : '') +
            (f.lossy ? `\n  ${lossyLine(f.path, f.lossy)}` : ''),
        );
    });
  },
};
