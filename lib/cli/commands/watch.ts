/** `coral watch <dir> [--interval <ms>] [--max-commits <n>] [--once] [--json]`: commit checkpoints as a training run writes them. */
import * as path from 'node:path';
import { CheckpointWatcher, invalidParameter } from '../../index';
import { JSON_OPT, UsageError, withRepo, type Command } from '../command';
import { fmtNum, print } from '../output';
import { short } from '../render';

export const watchCommand: Command = {
  summary: 'Commit each new or changed checkpoint in a folder once it is complete (metrics from a sidecar JSON)',
  usage: 'coral watch <dir> [--interval <ms>] [--max-commits <n>] [--once] [--json]',
  options: {
    interval: { type: 'string' },
    'max-commits': { type: 'string' },
    once: { type: 'boolean' },
    ...JSON_OPT,
  },
  maxArgs: 1,
  async run(ctx) {
    const dir = ctx.args[0];
    if (!dir) throw new UsageError('usage: coral watch <dir>');
    const num = (flag: string, min: number) => {
      const v = ctx.flags[flag] as string | undefined;
      if (v === undefined) return undefined;
      if (!/^\d+$/.test(v) || Number(v) < min) throw invalidParameter(`--${flag}`, `integer >= ${min}`, v);
      return Number(v);
    };
    const intervalMs = num('interval', 10) ?? 1000;
    const maxCommits = num('max-commits', 1);
    await withRepo(ctx, async (repo) => {
      const w = new CheckpointWatcher(repo, path.resolve(ctx.cwd, dir), {
        onCommit: (c) =>
          ctx.flags.json
            ? print(ctx, JSON.stringify(c))
            : print(
                ctx,
                `committed ${c.path} as ${short(c.id)}` +
                  (c.step !== undefined ? ` step ${c.step}` : '') +
                  Object.entries(c.metrics)
                    .map(([k, v]) => ` ${k}=${fmtNum(v)}`)
                    .join(''),
              ),
      });
      if (ctx.flags.once) {
        // Two passes: a file is complete when unchanged between them.
        await w.scan();
        await w.scan();
        return;
      }
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        if (!ctx.flags.json) ctx.io.err(`coral: watching ${dir} (every ${intervalMs} ms; Ctrl-C stops)\n`);
        await w.run({ intervalMs, signal: ac.signal, maxCommits });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
  },
};
