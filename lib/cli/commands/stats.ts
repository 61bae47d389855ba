/** `coral stats [--json]`: storage statistics. */
import { JSON_OPT, withRepo, type Command } from '../command';
import { humanBytes, print, printJson } from '../output';

export const statsCommand: Command = {
  summary: 'Storage statistics: logical vs stored bytes, codecs, deltas',
  usage: 'coral stats [--json]',
  maxArgs: 0,
  options: { ...JSON_OPT },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      const s = await repo.stats();
      if (ctx.flags.json) return printJson(ctx, s);
      print(
        ctx,
        `commits ${s.commits}, branches ${s.branches}, tags ${s.tags}; HEAD has ${s.files} files, ${s.tensors} tensors`,
      );
      print(
        ctx,
        `logical ${humanBytes(s.logicalBytes)}  stored ${humanBytes(s.storedBytes)}  ratio ${s.ratio.toFixed(2)}x`,
      );
      print(
        ctx,
        `objects ${s.objects}  deltas ${s.deltaObjects} (avg ratio ${s.avgDeltaRatio.toFixed(2)}x, max chain depth ${s.maxChainDepth})`,
      );
      if (s.castObjects || s.resizedObjects) print(ctx, `  casts ${s.castObjects}  row-resized ${s.resizedObjects}`);
      if (s.chainDepths && Object.keys(s.chainDepths).length)
        print(
          ctx,
          `  chain depths: ${Object.entries(s.chainDepths)
            .map(([d, n]) => `${d}:${n}`)
            .join('  ')}`,
        );
      for (const [c, v] of Object.entries(s.codecs).sort())
        print(
          ctx,
          `  ${c.padEnd(22)} ${String(v.objects).padStart(6)} objects  ${humanBytes(v.rawBytes).padStart(10)} -> ${humanBytes(v.storedBytes).padStart(10)}`,
        );
    });
  },
};
