/** `coral show [<rev>|<rev>:<path>] [--json] [--output <file>]`: a commit, or a file at a revision. */
import * as path from 'node:path';
import { formatSignatureDate, isPlainFile, readFileBytes, showCommit, showFile, type Repository } from '../../index';
import { JSON_OPT, withRepo, type Command, type Ctx } from '../command';
import { humanBytes, paint, print, printJson } from '../output';
import { lossyLine, renderChanges, short } from '../render';

/** `show <rev>:<path>`: a symlink's target, a plain file's bytes, or a checkpoint's per-tensor summary. */
async function showPath(ctx: Ctx, repo: Repository, rev: string, rel: string): Promise<void> {
  if (ctx.flags.output) return repo.exportFile(rev, rel, path.resolve(ctx.cwd, ctx.flags.output as string));
  const f = await showFile(repo, rev, rel);
  if ('target' in f) {
    if (ctx.flags.json) return printJson(ctx, f);
    return print(ctx, `${rel} -> ${f.target}  (symlink)`);
  }
  // A file stored as an ordinary file prints as it is (git show rev:path); checkpoints print a summary.
  if (isPlainFile(f) && !ctx.flags.json) {
    const bytes = await readFileBytes(repo, rev, rel);
    if (ctx.io.outBytes) ctx.io.outBytes(bytes);
    else ctx.io.out(bytes.toString('utf8'));
    return;
  }
  if (ctx.flags.json) return printJson(ctx, f);
  print(ctx, `${rel}  ${f.format}  ${humanBytes(f.size)}  sha256 ${f.sha256}`);
  if ('lossy' in f && f.lossy) print(ctx, `  ${lossyLine(rel, f.lossy)}`);
  for (const t of f.tensors) {
    const d = t.derived;
    const how = !t.base
      ? ''
      : d?.kind === 'cast'
        ? ` (cast of ${short(t.base)} (${d.rounding}), residual ${d.residual} elements, depth ${t.depth})`
        : d?.kind === 'rows'
          ? ` (rows of ${short(t.base)}: ${d.sharedRows} of its ${d.baseRows} rows shared, residual ${d.residual} elements, depth ${t.depth})`
          : ` (delta on ${short(t.base)}, depth ${t.depth})`;
    print(ctx, `  ${t.name}  ${t.dtype}[${t.shape.join(',')}]  ${t.codec}${how}  ${humanBytes(t.storedSize)}`);
  }
}

const kv = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export const showCommand: Command = {
  summary: 'Show a commit (files, tensors, codecs) or a file at a revision (rev:path)',
  usage: 'coral show [<rev>|<rev>:<path>] [--json] [--output <file>]',
  maxArgs: 1,
  options: { output: { type: 'string', short: 'o' }, ...JSON_OPT },
  async run(ctx) {
    const spec = ctx.args[0] ?? 'HEAD';
    await withRepo(ctx, async (repo) => {
      const colon = spec.indexOf(':');
      if (colon >= 0) return showPath(ctx, repo, spec.slice(0, colon) || 'HEAD', spec.slice(colon + 1));
      const c = await showCommit(repo, spec, { files: !!ctx.flags.json });
      if (ctx.flags.json) return printJson(ctx, c);
      if (c.tag) {
        // As git show <annotated tag>: the tag, its tagger and message (and metrics), then the commit.
        const t = c.tag;
        print(ctx, paint(ctx.io, 'yellow', `tag ${t.name}`));
        print(ctx, `Tagger: ${t.tagger.name} <${t.tagger.email}>`);
        print(ctx, `Date:   ${formatSignatureDate(t.tagger)}`);
        print(ctx, '');
        for (const l of t.message.replace(/\n$/, '').split('\n')) print(ctx, l);
        const { metrics, ...rest } = t.metadata as { metrics?: Record<string, unknown> };
        if (metrics && Object.keys(metrics).length)
          print(
            ctx,
            `metrics: ${Object.entries(metrics)
              .map(([k, v]) => `${k}=${kv(v)}`)
              .join('  ')}`,
          );
        if (Object.keys(rest).length) print(ctx, `metadata: ${JSON.stringify(rest)}`);
        print(ctx, '');
      }
      print(ctx, paint(ctx.io, 'yellow', `commit ${c.id}`));
      if (c.parents.length > 1) print(ctx, `Merge: ${c.parents.map(short).join(' ')}`);
      print(ctx, `Author: ${c.author.name} <${c.author.email}>`);
      print(ctx, `Date:   ${formatSignatureDate(c.author)}`);
      print(ctx, '');
      for (const l of c.message.replace(/\n$/, '').split('\n')) print(ctx, `    ${l}`);
      if (Object.keys(c.metadata).length) print(ctx, `    metadata: ${JSON.stringify(c.metadata)}`);
      print(ctx, '');
      renderChanges(ctx, c.changes);
    });
  },
};
