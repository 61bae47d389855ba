/** `coral log [<rev>|<a>..<b>|^<rev>]... [--oneline] [--graph] [-n N|-N] [--first-parent] [--json] [-- <path>...]`. */
import { formatSignatureDate, invalidParameter, listBranches, logGraph, pathspec } from '../../index';
import { JSON_OPT, withRepo, type Command } from '../command';
import { paint, print, printJson } from '../output';
import { firstLine, short } from '../render';

export const logCommand: Command = {
  summary: 'Show commit history',
  usage:
    'coral log [<rev>|<a>..<b>|^<rev>]... [--oneline] [--graph] [-n <count>|-<count>] [--first-parent] [--json] [-- <path>...]',
  options: {
    oneline: { type: 'boolean' },
    graph: { type: 'boolean' },
    'max-count': { type: 'string', short: 'n' },
    'first-parent': { type: 'boolean' },
    ...JSON_OPT,
  },
  // `-3` is `-n 3`, as in git.
  preprocess: (argv) => argv.map((a) => (/^-\d+$/.test(a) ? `--max-count=${a.slice(1)}` : a)),
  async run(ctx) {
    const nRaw = ctx.flags['max-count'] as string | undefined;
    const limit = nRaw === undefined ? undefined : Number(nRaw);
    if (limit !== undefined && (!/^\d+$/.test(nRaw!) || !Number.isSafeInteger(limit)))
      throw invalidParameter('-n', 'non-negative integer', nRaw);
    await withRepo(ctx, async (repo) => {
      const graph = !!ctx.flags.graph;
      const firstParent = !!ctx.flags['first-parent'];
      const entries = await repo.log({
        revs: ctx.args,
        paths: ctx.rest.map((p) => pathspec(repo.worktree, ctx.cwd, p)),
        firstParent,
        limit,
        topo: graph,
      });
      if (ctx.flags.json) return printJson(ctx, entries);
      if (!entries.length) {
        if (!ctx.args.length && !ctx.rest.length && limit !== 0 && !(await repo.headCommit()))
          ctx.io.err(`coral: your current branch does not have any commits yet\n`);
        return;
      }
      const rows = new Map(graph ? logGraph(entries, { firstParent }).map((r) => [r.id, r]) : []);
      const decorations = new Map<string, string[]>();
      // Local branches, then remote-tracking ones (`origin/main`, as git decorates them).
      for (const b of await listBranches(repo, { all: true })) {
        const n = b.remote ? b.name.replace(/^remotes\//, '') : b.name;
        decorations.set(b.id, [...(decorations.get(b.id) ?? []), b.current ? `HEAD -> ${n}` : n]);
      }
      for (const t of await repo.tags())
        decorations.set(t.commit, [...(decorations.get(t.commit) ?? []), `tag: ${t.name}`]);
      for (const e of entries) {
        const deco = decorations.get(e.id);
        const d = deco ? paint(ctx.io, 'yellow', ` (${deco.join(', ')})`) : '';
        const row = rows.get(e.id);
        const g = (s: string) => (row ? `${s} ` : '');
        if (ctx.flags.oneline) {
          print(ctx, `${g(row?.graph ?? '')}${paint(ctx.io, 'yellow', short(e.id))}${d} ${firstLine(e.commit)}`);
          for (const l of row?.after ?? []) print(ctx, l);
          continue;
        }
        print(ctx, `${g(row?.graph ?? '')}${paint(ctx.io, 'yellow', `commit ${e.id}`)}${d}`);
        for (const l of row?.after ?? []) print(ctx, l);
        const p = (s: string) => print(ctx, row ? `${row.padding || ' '} ${s}`.trimEnd() : s);
        if (e.commit.parents.length > 1) p(`Merge: ${e.commit.parents.map(short).join(' ')}`);
        p(`Author: ${e.commit.author.name} <${e.commit.author.email}>`);
        p(`Date:   ${formatSignatureDate(e.commit.author)}`);
        p('');
        for (const l of e.commit.message.replace(/\n$/, '').split('\n')) p(`    ${l}`);
        if (Object.keys(e.commit.metadata).length) p(`    ${paint(ctx.io, 'dim', JSON.stringify(e.commit.metadata))}`);
        p('');
      }
    });
  },
};
