/** `coral compare <rev-a> <rev-b> [--json]`: two commits or tags side by side (the library's `compare`). */
import { compare, formatSignatureDate } from '../../index';
import { JSON_OPT, UsageError, withRepo, type Command } from '../command';
import { fmtNum, humanBytes, print, printJson } from '../output';
import { firstLine, renderChanges, short } from '../render';

export const compareCommand: Command = {
  summary: 'Compare two commits or tags side by side, with per-tensor metrics',
  usage: 'coral compare <rev-a> <rev-b> [--json]',
  options: { ...JSON_OPT },
  async run(ctx) {
    if (ctx.args.length !== 2) throw new UsageError('usage: coral compare <rev-a> <rev-b>');
    await withRepo(ctx, async (repo) => {
      const r = await compare(repo, { a: ctx.args[0], b: ctx.args[1] });
      if (ctx.flags.json) return printJson(ctx, r);
      const { a, b, summary: s } = r;
      const row = (k: string, x: unknown, y: unknown) =>
        print(ctx, `${k.padEnd(12)} ${String(x).padEnd(40)} ${String(y)}`);
      row('', a.rev, b.rev);
      row('commit', short(a.id), short(b.id));
      row('date', formatSignatureDate(a.commit.author), formatSignatureDate(b.commit.author));
      row('message', firstLine(a.commit).slice(0, 38), firstLine(b.commit));
      row('files', a.files, b.files);
      row('tensors', a.tensors, b.tensors);
      row('bytes', humanBytes(a.bytes), humanBytes(b.bytes));
      for (const k of new Set([...Object.keys(a.metrics), ...Object.keys(b.metrics)]))
        row(`metric:${k}`, a.metrics[k] ?? '-', b.metrics[k] ?? '-');
      print(ctx, '');
      print(
        ctx,
        `tensors: ${s.tensorsAdded} added, ${s.tensorsRemoved} removed, ${s.tensorsModified} modified; ` +
          `mean relL2 ${fmtNum(s.meanRelL2)}, max |diff| ${fmtNum(s.maxAbs)}, min cosine ${fmtNum(s.minCosine, 6)}`,
      );
      print(ctx, '');
      renderChanges(ctx, r.changes);
    });
  },
};
