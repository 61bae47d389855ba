/** `coral reset [--soft|--mixed|--hard] [<rev>]`, or `coral reset [<rev>] [--] <path>...` (unstage). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { JSON_OPT, UsageError, resolvePaths, withRepo, type Command, QUIET_OPT } from '../command';
import { print, printJson } from '../output';
import { firstLine, short } from '../render';

export const resetCommand: Command = {
  summary: 'Move HEAD (--soft), and the index (--mixed, default) and worktree (--hard); or unstage paths',
  usage: 'coral reset [-q] [--soft|--mixed|--hard] [<rev>] | coral reset [<rev>] [--] <path>...',
  options: {
    soft: { type: 'boolean' },
    mixed: { type: 'boolean' },
    hard: { type: 'boolean' },
    ...JSON_OPT,
    ...QUIET_OPT,
  },
  async run(ctx) {
    const modes = (['soft', 'mixed', 'hard'] as const).filter((m) => ctx.flags[m]);
    if (modes.length > 1) throw new UsageError(`--${modes.join(' and --')} cannot be combined`);
    await withRepo(ctx, async (repo) => {
      // git's disambiguation: before `--`, a first argument that names a revision (and not a file) is the revision.
      let rev: string | undefined;
      let paths: string[] = ctx.rest;
      const args = [...ctx.args];
      if (args.length) {
        const first = args[0];
        const isFile = fs.existsSync(path.resolve(ctx.cwd, first));
        const isRev = await repo.resolve(first).then(
          () => true,
          () => false,
        );
        if (isRev && (!isFile || ctx.rest.length || args.length > 1)) rev = args.shift();
        else if (isRev && isFile)
          throw new UsageError(
            `'${first}' is both a revision and a file; use \`coral reset ${first} --\` or \`coral reset -- ${first}\``,
          );
        paths = [...args, ...ctx.rest];
      }
      if (paths.length) {
        if (modes.length && modes[0] !== 'mixed') throw new UsageError(`cannot do a --${modes[0]} reset with paths`);
        const changed = await repo.reset(resolvePaths(ctx, paths), { rev });
        if (ctx.flags.json) return printJson(ctx, { unstaged: changed });
        if (changed.length) print(ctx, `Unstaged changes after reset:\n${changed.map((f) => `M\t${f}`).join('\n')}`);
        return;
      }
      const r = await repo.resetTo({ mode: modes[0] ?? 'mixed', rev });
      if (ctx.flags.json) return printJson(ctx, r);
      if (r.mode === 'hard') {
        const c = r.head ? await repo.readCommit(r.head) : null;
        print(ctx, `HEAD is now at ${short(r.head)}${c ? ` ${firstLine(c)}` : ''}`);
      } else if (r.head !== r.orig) print(ctx, `HEAD is now at ${short(r.head)} (was ${short(r.orig)})`);
    });
  },
};
