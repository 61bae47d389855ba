/** `coral demo [--dir <dir>] [--keep] [--json]`: generate checkpoints and show what coral does with them. */
import { JSON_OPT, type Command } from '../command';

export const demoCommand: Command = {
  summary: 'Generate a few checkpoints and show what coral does with them',
  usage: 'coral demo [--dir <dir>] [--keep]',
  maxArgs: 0,
  options: { dir: { type: 'string' }, keep: { type: 'boolean' }, ...JSON_OPT },
  async run(ctx) {
    const { runDemo } = await import('../demo');
    return runDemo(ctx.io, {
      dir: ctx.flags.dir as string | undefined,
      keep: !!ctx.flags.keep,
      json: !!ctx.flags.json,
    });
  },
};
