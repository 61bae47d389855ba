/** `coral status [--short] [--json]`: staged, unstaged and untracked files. */
import { displayPath } from '../../index';
import { JSON_OPT, withRepo, type Command } from '../command';
import { paint, print, printJson } from '../output';
import { short } from '../render';

export const statusCommand: Command = {
  summary: 'Show staged, unstaged and untracked files',
  usage: 'coral status [--short] [--json]',
  maxArgs: 0,
  options: { short: { type: 'boolean', short: 's' }, ...JSON_OPT },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      const st = await repo.status();
      // --json keeps worktree-relative paths (like git's porcelain formats); text shows them from where you stand.
      if (ctx.flags.json) return printJson(ctx, st);
      const { io } = ctx;
      const rel = (p: string) => displayPath(repo.worktree, ctx.cwd, p);
      if (ctx.flags.short) {
        const c = (k: string | null) => (k === 'added' ? 'A' : k === 'modified' ? 'M' : k === 'deleted' ? 'D' : ' ');
        for (const f of st.files) print(ctx, `${c(f.staged)}${c(f.unstaged)} ${rel(f.path)}`);
        for (const f of st.untracked) print(ctx, `?? ${rel(f)}`);
        return;
      }
      print(ctx, st.branch ? `On branch ${st.branch}` : `HEAD detached at ${short(st.head)}`);
      const up = st.upstream;
      if (up) {
        const c = (n: number) => `${n} commit${n === 1 ? '' : 's'}`;
        if (up.ahead === null) print(ctx, `Your branch is based on '${up.name}', but the upstream is gone.`);
        else if (up.ahead && up.behind)
          print(
            ctx,
            `Your branch and '${up.name}' have diverged,\nand have ${up.ahead} and ${up.behind} different commits each, respectively.`,
          );
        else if (up.ahead) print(ctx, `Your branch is ahead of '${up.name}' by ${c(up.ahead)}.`);
        else if (up.behind)
          print(ctx, `Your branch is behind '${up.name}' by ${c(up.behind)}, and can be fast-forwarded.`);
        else print(ctx, `Your branch is up to date with '${up.name}'.`);
      }
      if (!st.head) print(ctx, '\nNo commits yet');
      if (st.merging) print(ctx, '\nYou are in the middle of a merge (coral merge --continue / --abort).');
      const staged = st.files.filter((f) => f.staged);
      const unstaged = st.files.filter((f) => f.unstaged);
      if (staged.length) {
        print(ctx, '\nChanges to be committed:');
        for (const f of staged) print(ctx, paint(io, 'green', `\t${f.staged}:   ${rel(f.path)}`));
      }
      if (unstaged.length) {
        print(ctx, '\nChanges not staged for commit:');
        for (const f of unstaged) print(ctx, paint(io, 'red', `\t${f.unstaged}:   ${rel(f.path)}`));
      }
      if (st.untracked.length) {
        print(ctx, '\nUntracked files:');
        for (const f of st.untracked) print(ctx, paint(io, 'red', `\t${rel(f)}`));
      }
      if (!staged.length && !unstaged.length && !st.untracked.length)
        print(ctx, '\nnothing to commit, working tree clean');
    });
  },
};
