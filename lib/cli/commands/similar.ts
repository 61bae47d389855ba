/**
 * `coral similar <file|rev:path> [-k N] [--match-cosine X] [--json]`: the stored
 * checkpoints closest to a checkpoint, with scores (which base was this
 * fine-tuned from?). A path that exists in the working tree is read from disk
 * (it need not be added); otherwise the argument is `rev:path`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, invalidParameter, type SimilarTarget } from '../../index';
import { withRepo, type Command } from '../command';
import { print, printJson } from '../output';

export const similarCommand: Command = {
  summary: 'List stored checkpoints closest to a checkpoint (provenance: which base was it fine-tuned from?)',
  usage: 'coral similar <file|rev:path> [-k N] [--match-cosine X] [--json]',
  options: { k: { type: 'string', short: 'k' }, 'match-cosine': { type: 'string' }, json: { type: 'boolean' } },
  async run(ctx) {
    if (ctx.args.length !== 1) throw new InvalidArgumentError(`usage: ${similarCommand.usage}`);
    const arg = ctx.args[0];
    const k = ctx.flags.k === undefined ? 5 : Number(ctx.flags.k);
    if (!Number.isInteger(k) || k < 1) throw invalidParameter('-k', 'positive integer', ctx.flags.k);
    const mc = ctx.flags['match-cosine'] === undefined ? undefined : Number(ctx.flags['match-cosine']);
    if (mc !== undefined && !(mc >= -1 && mc <= 1))
      throw invalidParameter('--match-cosine', 'number in [-1, 1]', ctx.flags['match-cosine']);
    await withRepo(ctx, async (repo) => {
      const abs = path.resolve(ctx.cwd, arg);
      let target: SimilarTarget;
      if (fs.existsSync(abs) && fs.statSync(abs).isFile()) target = { file: abs };
      else {
        const i = arg.indexOf(':');
        if (i <= 0 || i === arg.length - 1)
          throw new InvalidArgumentError(`'${arg}' is neither a file nor <rev>:<path>`);
        target = { rev: arg.slice(0, i), path: arg.slice(i + 1) };
      }
      const r = await repo.similar(target, { k, ...(mc !== undefined ? { matchCosine: mc } : {}) });
      if (ctx.flags.json) return printJson(ctx, r, { plainNumbers: true });
      print(ctx, `${r.target.label}: ${r.target.indexedTensors} of ${r.target.tensors} tensors compared`);
      if (!r.matches.length) return print(ctx, 'no similar checkpoint stored');
      print(ctx, `${'score'.padEnd(10)} ${'matched'.padEnd(8)} checkpoint`);
      for (const m of r.matches)
        print(
          ctx,
          `${m.score.toFixed(6).padEnd(10)} ${`${(100 * m.matched).toFixed(0)}%`.padEnd(8)} ${m.rev}${m.identical ? '  (identical)' : ''}`,
        );
    });
  },
};
