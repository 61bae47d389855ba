/**
 * The `coral` command line: argv -> API call -> formatted output. Every
 * command that prints data takes --json. Errors print one line,
 * `coral: <message> (<code>)`, and the exit code comes from the error code.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, invalidParameter } from '../errors';
import { fileTable, formatSignatureDate, type Commit, type FileEntry } from '../models';
import { diffSides, summarizeChanges, type FileChange, type TensorMetrics } from '../diff/tensor-diff';
import { fsck } from '../commands/fsck';
import { gc, parsePruneExpire } from '../commands/gc';
import { stats } from '../commands/stats';
import { Repository } from '../repository';
import { diffWorktree, indexTree } from '../commands/diff';
import { logGraph } from '../commands/log';
import { displayPath, pathspec } from '../worktree/pathspec';
import { listBranches } from '../commands/branch';
import { configKeyInfo, setConfigValue } from '../refs/config-schema';
import { annotatedTag, isPlainFile, readFileBytes, storedTensors } from '../commands/show';
import { isSymlinkEntry, symlinkTarget } from '../worktree/symlink';
import { mergeCommand } from './merge-command';
import { similarCommand } from './similar-command';
import { UsageError, messageFlag, parseCommandArgs, type Command, type Ctx, type OptSpec } from './command';
import { defaultIo, errorLine, exitCodeFor, fmtNum, humanBytes, paint, Progress, type Io } from './output';

const JSON_OPT: OptSpec = { json: { type: 'boolean' } };

function print(ctx: Ctx, s = ''): void {
  ctx.io.out(s + '\n');
}

function printJson(ctx: Ctx, v: unknown): void {
  ctx.io.out(JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x), 2) + '\n');
}

async function openRepo(ctx: Ctx): Promise<Repository> {
  return Repository.open(ctx.cwd);
}

async function withRepo<T>(ctx: Ctx, fn: (repo: Repository) => Promise<T>): Promise<T> {
  const repo = await openRepo(ctx);
  try {
    return await fn(repo);
  } finally {
    await repo.close();
  }
}

function short(id: string | null | undefined): string {
  return id ? id.slice(0, 12) : '(none)';
}

function firstLine(c: Commit): string {
  return c.message.split('\n')[0];
}

function resolvePaths(ctx: Ctx, ps: string[]): string[] {
  return ps.map((p) => path.resolve(ctx.cwd, p));
}

/** "k=v" pairs; values parsed as JSON when they look like numbers/booleans. */
function parsePairs(list: string[] | undefined, what: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw invalidParameter(what, 'key=value', kv);
    const v = kv.slice(i + 1);
    let val: unknown = v;
    if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v) || v === 'true' || v === 'false') val = JSON.parse(v);
    out[kv.slice(0, i)] = val;
  }
  return out;
}

/** One tensor's metrics; "-" stands for an undefined ratio (see TensorMetrics). */
function metricsText(m: TensorMetrics): string {
  const num = (x: number | null, digits?: number) => (x === null ? '-' : fmtNum(x, digits));
  return `changed ${(100 * m.changedFraction).toFixed(2)}%  relL2 ${num(m.relL2)}  maxAbs ${fmtNum(m.maxAbs)}  cos ${num(m.cosine, 6)}` +
    (m.nonFinite ? `  nonFinite ${m.nonFinite}` : '');
}

function renderChanges(ctx: Ctx, changes: FileChange[], opts: { stat?: boolean } = {}): void {
  const { io } = ctx;
  if (!changes.length) return;
  for (const f of changes) {
    const mark = f.change === 'added' ? paint(io, 'green', 'A') : f.change === 'removed' ? paint(io, 'red', 'D') : paint(io, 'yellow', 'M');
    const sizes = f.change === 'modified' ? `${humanBytes(f.oldSize!)} -> ${humanBytes(f.newSize!)}` : humanBytes((f.newSize ?? f.oldSize)!);
    const target = f.newTarget ?? (f.change === 'removed' ? f.oldTarget : undefined);
    const was = f.change === 'modified' && f.oldTarget !== undefined ? `, was symlink -> ${f.oldTarget}` : '';
    const kind = (target === undefined ? `${f.format}, ${sizes}` : `symlink -> ${target}`) + was;
    print(ctx, `${mark} ${paint(io, 'bold', f.path)}  (${kind})`);
    if (opts.stat) {
      const n = (k: string) => f.tensors.filter((t) => t.change === k).length;
      print(ctx, `    tensors: ${n('added')} added, ${n('removed')} removed, ${n('modified')} modified`);
      continue;
    }
    if (f.change !== 'modified') continue;
    for (const t of f.tensors) {
      const shape = `${t.dtype}[${t.shape.join(',')}]`;
      if (t.change === 'added') print(ctx, `    ${paint(io, 'green', '+')} ${t.name}  ${shape}`);
      else if (t.change === 'removed') print(ctx, `    ${paint(io, 'red', '-')} ${t.name}  ${shape}`);
      else if (t.oldDtype || t.oldShape)
        print(ctx, `    ${paint(io, 'yellow', '~')} ${t.name}  ${t.oldDtype}[${t.oldShape!.join(',')}] -> ${shape}`);
      else if (t.metrics) print(ctx, `    ${paint(io, 'yellow', '~')} ${t.name}  ${shape}  ${metricsText(t.metrics)}`);
      else print(ctx, `    ${paint(io, 'yellow', '~')} ${t.name}  ${shape}`);
    }
  }
}

// ---- commands --------------------------------------------------------------------------------

const commands: Record<string, Command> = {
  init: {
    summary: 'Create an empty repository',
    usage: 'coral init [dir] [-b <branch>]',
    maxArgs: 1,
    options: { branch: { type: 'string', short: 'b' }, ...JSON_OPT },
    async run(ctx) {
      const dir = path.resolve(ctx.cwd, ctx.args[0] ?? '.');
      const repo = await Repository.init(dir, { branch: ctx.flags.branch as string | undefined });
      await repo.close();
      if (ctx.flags.json) printJson(ctx, { path: repo.layout.coral });
      else print(ctx, `Initialized empty coral repository in ${repo.layout.coral}`);
    },
  },

  add: {
    summary: 'Stage checkpoint files (stored as skeleton + deduplicated tensors)',
    usage: 'coral add [-f|--force] [--strict] <path>...',
    options: { force: { type: 'boolean', short: 'f' }, strict: { type: 'boolean' }, ...JSON_OPT },
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
        });
        progress.done();
        if (ctx.flags.json) return printJson(ctx, r);
        for (const f of r.files)
          print(
            ctx,
            `added ${f.path}: ${humanBytes(f.bytes)}, ${f.segments} tensors, ${f.storedObjects} new objects ` +
              `(${f.deltaObjects} deltas, ${humanBytes(f.storedBytes)} stored), ${f.dedupedObjects} deduplicated` +
              (f.plainFile ? `\n  ${f.path}: stored as a plain file: ${f.plainFile}` : ''),
          );
      });
    },
  },

  rm: {
    summary: 'Remove files from the index (and the worktree); refuses to lose local changes without -f',
    usage: 'coral rm [-f] [-r] [--cached] <path>...',
    options: { cached: { type: 'boolean' }, force: { type: 'boolean', short: 'f' }, recursive: { type: 'boolean', short: 'r' } },
    async run(ctx) {
      const paths = [...ctx.args, ...ctx.rest];
      if (!paths.length) throw new UsageError('usage: coral rm [-f] [-r] [--cached] <path>...');
      await withRepo(ctx, async (repo) => {
        const removed = await repo.rm(resolvePaths(ctx, paths), {
          cached: !!ctx.flags.cached, force: !!ctx.flags.force, recursive: !!ctx.flags.recursive,
        });
        for (const f of removed) print(ctx, `rm '${f}'`);
      });
    },
  },

  reset: {
    summary: 'Move HEAD (--soft), and the index (--mixed, default) and worktree (--hard); or unstage paths',
    usage: 'coral reset [--soft|--mixed|--hard] [<rev>] | coral reset [<rev>] [--] <path>...',
    options: { soft: { type: 'boolean' }, mixed: { type: 'boolean' }, hard: { type: 'boolean' }, ...JSON_OPT },
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
          const isRev = await repo.resolve(first).then(() => true, () => false);
          if (isRev && (!isFile || ctx.rest.length || args.length > 1)) rev = args.shift();
          else if (isRev && isFile) throw new UsageError(`'${first}' is both a revision and a file; use \`coral reset ${first} --\` or \`coral reset -- ${first}\``);
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
  },

  commit: {
    summary: 'Record the staged files as a new commit',
    usage: 'coral commit -m <message> [--meta key=value]... [--author "Name <email>"] [--allow-empty]',
    maxArgs: 0,
    options: {
      message: { type: 'string', short: 'm', multiple: true },
      meta: { type: 'string', multiple: true },
      author: { type: 'string' },
      'allow-empty': { type: 'boolean' },
      all: { type: 'boolean', short: 'a' },
      ...JSON_OPT,
    },
    async run(ctx) {
      const message = messageFlag(ctx.flags.message);
      let author: { name?: string; email?: string } | undefined;
      if (ctx.flags.author) {
        const m = /^\s*(.*?)\s*<([^>]*)>\s*$/.exec(ctx.flags.author as string);
        if (!m) throw invalidParameter('--author', '"Name <email>"', ctx.flags.author);
        author = { name: m[1], email: m[2] };
      }
      await withRepo(ctx, async (repo) => {
        // During a merge the message defaults to the merge's; otherwise one is required.
        const merging = !!repo.mergeState();
        if (!message && !merging) throw new UsageError('a commit message is required: coral commit -m "<message>"');
        const id = await repo.commit({
          message: message ?? '',
          author,
          metadata: parsePairs(ctx.flags.meta as string[] | undefined, '--meta'),
          allowEmpty: !!ctx.flags['allow-empty'],
          all: !!ctx.flags.all,
        });
        const branch = await repo.currentBranch();
        if (ctx.flags.json) return printJson(ctx, { id, branch });
        const c = await repo.readCommit(id);
        print(ctx, `[${branch ?? 'detached HEAD'} ${short(id)}] ${firstLine(c)}`);
      });
    },
  },

  status: {
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
        if (!staged.length && !unstaged.length && !st.untracked.length) print(ctx, '\nnothing to commit, working tree clean');
      });
    },
  },

  log: {
    summary: 'Show commit history',
    usage: 'coral log [<rev>|<a>..<b>|^<rev>]... [--oneline] [--graph] [-n <count>|-<count>] [--first-parent] [--json] [-- <path>...]',
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
      if (limit !== undefined && (!/^\d+$/.test(nRaw!) || !Number.isSafeInteger(limit))) throw invalidParameter('-n', 'non-negative integer', nRaw);
      await withRepo(ctx, async (repo) => {
        const graph = !!ctx.flags.graph;
        const entries = await repo.log({
          revs: ctx.args,
          paths: ctx.rest.map((p) => pathspec(repo.worktree, ctx.cwd, p)),
          firstParent: !!ctx.flags['first-parent'],
          limit,
          topo: graph,
        });
        if (ctx.flags.json) return printJson(ctx, entries);
        if (!entries.length) {
          if (!ctx.args.length && !ctx.rest.length && limit !== 0 && !(await repo.headCommit()))
            ctx.io.err(`coral: your current branch does not have any commits yet\n`);
          return;
        }
        const rows = new Map(graph ? logGraph(entries, { firstParent: !!ctx.flags['first-parent'] }).map((r) => [r.id, r]) : []);
        const decorations = new Map<string, string[]>();
        for (const b of await repo.branches()) decorations.set(b.id, [...(decorations.get(b.id) ?? []), b.current ? `HEAD -> ${b.name}` : b.name]);
        for (const t of await repo.tags()) decorations.set(t.commit, [...(decorations.get(t.commit) ?? []), `tag: ${t.name}`]);
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
  },

  show: {
    summary: 'Show a commit (files, tensors, codecs) or a file at a revision (rev:path)',
    usage: 'coral show [<rev>|<rev>:<path>] [--json] [--output <file>]',
    maxArgs: 1,
    options: { output: { type: 'string', short: 'o' }, ...JSON_OPT },
    async run(ctx) {
      const spec = ctx.args[0] ?? 'HEAD';
      await withRepo(ctx, async (repo) => {
        const colon = spec.indexOf(':');
        if (colon >= 0) {
          const rev = spec.slice(0, colon) || 'HEAD';
          const rel = spec.slice(colon + 1);
          if (ctx.flags.output) {
            await repo.exportFile(rev, rel, path.resolve(ctx.cwd, ctx.flags.output as string));
            return;
          }
          const tree = await repo.treeOf(rev);
          const e = Object.prototype.hasOwnProperty.call(tree.files, rel) ? tree.files[rel] : undefined;
          if (!e) throw new InvalidArgumentError(`path '${rel}' does not exist in '${rev}'`);
          if (isSymlinkEntry(e)) {
            const target = (await symlinkTarget(repo.reader, e)).toString();
            if (ctx.flags.json) return printJson(ctx, { path: rel, format: e.format, size: e.size, sha256: e.sha256, target, tensors: [] });
            return print(ctx, `${rel} -> ${target}  (symlink)`);
          }
          // A file stored as an ordinary file prints as it is (git show rev:path); checkpoints print a summary.
          if (isPlainFile(e) && !ctx.flags.json) {
            const bytes = await readFileBytes(repo, rev, rel);
            if (ctx.io.outBytes) ctx.io.outBytes(bytes);
            else ctx.io.out(bytes.toString('utf8'));
            return;
          }
          const stored = await storedTensors(repo.reader, e);
          const tensors = e.tensors.map((t, i) => ({ ...t, ...stored[i] }));
          const out = { path: rel, format: e.format, size: e.size, sha256: e.sha256, metadata: e.metadata ?? {}, tensors };
          if (ctx.flags.json) return printJson(ctx, out);
          print(ctx, `${rel}  ${e.format}  ${humanBytes(e.size)}  sha256 ${e.sha256}`);
          for (const t of tensors)
            print(ctx, `  ${t.name}  ${t.dtype}[${t.shape.join(',')}]  ${t.codec}${t.base ? ` (delta on ${short(t.base)}, depth ${t.depth})` : ''}  ${humanBytes(t.storedSize)}`);
          return;
        }
        const id = await repo.resolve(spec);
        const c = await repo.readCommit(id);
        const tree = await repo.readTree(c.tree);
        const atag = await annotatedTag(repo, spec);
        const parentTree = c.parents.length ? await repo.readTree((await repo.readCommit(c.parents[0])).tree) : { files: fileTable<FileEntry>() };
        const changes = await diffSides(repo.reader, parentTree, { kind: 'tree', tree }, { metrics: !ctx.flags.json || true });
        if (ctx.flags.json) {
          const files = fileTable<unknown>();
          for (const [p, e] of Object.entries(tree.files))
            files[p] = { format: e.format, size: e.size, sha256: e.sha256, tensors: await storedTensors(repo.reader, e) };
          return printJson(ctx, { id, ...c, files, changes, ...(atag ? { tag: { name: atag.name, id: atag.id, ...atag.tag } } : {}) });
        }
        if (atag) {
          // As git show <annotated tag>: the tag, its tagger and message (and metrics), then the commit.
          const t = atag.tag;
          print(ctx, paint(ctx.io, 'yellow', `tag ${atag.name}`));
          print(ctx, `Tagger: ${t.tagger.name} <${t.tagger.email}>`);
          print(ctx, `Date:   ${formatSignatureDate(t.tagger)}`);
          print(ctx, '');
          for (const l of t.message.replace(/\n$/, '').split('\n')) print(ctx, l);
          const { metrics, ...rest } = t.metadata as { metrics?: Record<string, unknown> };
          if (metrics && Object.keys(metrics).length) print(ctx, `metrics: ${Object.entries(metrics).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join('  ')}`);
          if (Object.keys(rest).length) print(ctx, `metadata: ${JSON.stringify(rest)}`);
          print(ctx, '');
        }
        print(ctx, paint(ctx.io, 'yellow', `commit ${id}`));
        if (c.parents.length > 1) print(ctx, `Merge: ${c.parents.map(short).join(' ')}`);
        print(ctx, `Author: ${c.author.name} <${c.author.email}>`);
        print(ctx, `Date:   ${formatSignatureDate(c.author)}`);
        print(ctx, '');
        for (const l of c.message.replace(/\n$/, '').split('\n')) print(ctx, `    ${l}`);
        if (Object.keys(c.metadata).length) print(ctx, `    metadata: ${JSON.stringify(c.metadata)}`);
        print(ctx, '');
        renderChanges(ctx, changes);
      });
    },
  },

  diff: {
    summary: 'Tensor-aware diff: worktree vs index, --cached, or between revisions',
    usage: 'coral diff [--cached] [<rev> [<rev>]] [--stat] [--no-metrics] [--json] [-- <path>...]',
    maxArgs: 2,
    options: { cached: { type: 'boolean' }, staged: { type: 'boolean' }, stat: { type: 'boolean' }, 'no-metrics': { type: 'boolean' }, ...JSON_OPT },
    async run(ctx) {
      await withRepo(ctx, async (repo) => {
        // The root ('.' there) is every path: no filter.
        const specs = ctx.rest.map((p) => repo.pathspec(path.resolve(ctx.cwd, p)));
        const paths = specs.includes('') ? [] : specs;
        const metrics = !ctx.flags['no-metrics'] && !ctx.flags.stat;
        let changes: FileChange[];
        if (ctx.flags.cached || ctx.flags.staged) {
          const base = await repo.treeOf((await repo.headCommit()) ? ctx.args[0] ?? 'HEAD' : null);
          changes = await diffSides(repo.reader, base, { kind: 'tree', tree: indexTree(repo) }, { metrics, paths });
        } else if (ctx.args.length === 0) {
          changes = await diffWorktree(repo, null, { metrics, paths });
        } else if (ctx.args.length === 1) {
          changes = await diffWorktree(repo, ctx.args[0], { metrics, paths });
        } else {
          changes = await diffSides(repo.reader, await repo.treeOf(ctx.args[0]), { kind: 'tree', tree: await repo.treeOf(ctx.args[1]) }, { metrics, paths });
        }
        if (ctx.flags.json) return printJson(ctx, changes);
        renderChanges(ctx, changes, { stat: !!ctx.flags.stat });
      });
    },
  },

  checkout: {
    summary: 'Switch branches or restore files, rewriting checkpoints byte-for-byte',
    usage: 'coral checkout [-f] [--detach] <branch|rev> | coral checkout -b <new-branch> [<start>] | coral checkout <rev> -- <path>...',
    options: { force: { type: 'boolean', short: 'f' }, branch: { type: 'string', short: 'b' }, detach: { type: 'boolean' }, ...JSON_OPT },
    async run(ctx) {
      await withRepo(ctx, async (repo) => {
        let r;
        if (ctx.flags.branch) {
          r = await repo.checkout(ctx.flags.branch as string, { create: true, start: ctx.args[0], force: !!ctx.flags.force });
        } else {
          const target = ctx.args[0];
          if (!target) throw new UsageError('usage: coral checkout <branch|rev> [-- <path>...]');
          r = await repo.checkout(target, {
            force: !!ctx.flags.force,
            detach: !!ctx.flags.detach,
            paths: ctx.rest.length ? resolvePaths(ctx, ctx.rest) : undefined,
          });
        }
        if (ctx.flags.json) return printJson(ctx, r);
        for (const p of r.kept) print(ctx, `M\t${p}`); // local changes carried over, as git lists them
        if (ctx.rest.length) print(ctx, `Updated ${r.written.length} path(s) from ${ctx.args[0]}`);
        else if (ctx.flags.branch) print(ctx, `Switched to a new branch '${r.branch}'`);
        else if (r.branch) print(ctx, `Switched to branch '${r.branch}' (${r.written.length} written, ${r.removed.length} removed)`);
        else print(ctx, `HEAD is now at ${short(r.head)} (detached; ${r.written.length} written, ${r.removed.length} removed)`);
      });
    },
  },

  branch: {
    summary: 'List, create or delete branches',
    usage: 'coral branch [-a|-r] [-v] [--json] | coral branch <name> [<start>] [-f] | coral branch -d|-D <name>',
    options: {
      delete: { type: 'boolean', short: 'd' }, 'force-delete': { type: 'boolean', short: 'D' }, force: { type: 'boolean', short: 'f' }, list: { type: 'boolean', short: 'l' },
      all: { type: 'boolean', short: 'a' }, remotes: { type: 'boolean', short: 'r' }, verbose: { type: 'boolean', short: 'v' },
      ...JSON_OPT,
    },
    async run(ctx) {
      await withRepo(ctx, async (repo) => {
        if (ctx.flags.delete || ctx.flags['force-delete']) {
          if (!ctx.args.length) throw new UsageError('branch name required: coral branch -d <name>');
          for (const n of ctx.args) {
            const id = (await repo.refs.readRef(`refs/heads/${n}`)) ?? '';
            await repo.deleteBranch(n, { force: !!ctx.flags['force-delete'] });
            if (!ctx.flags.json) print(ctx, `Deleted branch ${n} (was ${short(id)}).`);
          }
          return;
        }
        if (ctx.args.length && !ctx.flags.list) {
          const id = await repo.createBranch(ctx.args[0], ctx.args[1] ?? 'HEAD', { force: !!ctx.flags.force });
          if (ctx.flags.json) printJson(ctx, { name: ctx.args[0], id });
          return;
        }
        const { all, remotes, verbose } = ctx.flags as { all?: boolean; remotes?: boolean; verbose?: boolean };
        if (!all && !remotes && !verbose) {
          const bs = await repo.branches();
          if (ctx.flags.json) return printJson(ctx, bs);
          for (const b of bs) print(ctx, `${b.current ? '* ' : '  '}${b.current ? paint(ctx.io, 'green', b.name) : b.name}`);
          return;
        }
        const bs = await listBranches(repo, { all, remotes, verbose });
        if (ctx.flags.json) return printJson(ctx, bs);
        const width = bs.reduce((n, b) => Math.max(n, b.name.length), 0);
        for (const b of bs) {
          const name = b.current ? paint(ctx.io, 'green', b.name) : b.remote ? paint(ctx.io, 'red', b.name) : b.name;
          const pad = verbose ? ' '.repeat(width - b.name.length) : '';
          print(ctx, `${b.current ? '* ' : '  '}${name}${verbose ? `${pad} ${short(b.id)} ${b.subject}` : ''}`);
        }
      });
    },
  },

  tag: {
    summary: 'List, create (lightweight or annotated with metrics) or delete tags',
    usage: 'coral tag [<name> [<rev>]] [-m <message>] [--metric key=value]... [-d <name>] [-f] [--json]',
    options: {
      message: { type: 'string', short: 'm', multiple: true },
      metric: { type: 'string', multiple: true },
      delete: { type: 'boolean', short: 'd' },
      force: { type: 'boolean', short: 'f' },
      list: { type: 'boolean', short: 'l' },
      ...JSON_OPT,
    },
    async run(ctx) {
      await withRepo(ctx, async (repo) => {
        if (ctx.flags.delete) {
          if (!ctx.args.length) throw new UsageError('tag name required: coral tag -d <name>');
          for (const n of ctx.args) {
            await repo.deleteTag(n);
            if (!ctx.flags.json) print(ctx, `Deleted tag '${n}'`);
          }
          return;
        }
        if (ctx.args.length && !ctx.flags.list) {
          const metrics = ctx.flags.metric ? parsePairs(ctx.flags.metric as string[], '--metric') : undefined;
          const id = await repo.createTag(ctx.args[0], ctx.args[1] ?? 'HEAD', {
            message: messageFlag(ctx.flags.message),
            metrics,
            force: !!ctx.flags.force,
          });
          if (ctx.flags.json) printJson(ctx, { name: ctx.args[0], id });
          return;
        }
        const ts = await repo.tags();
        if (ctx.flags.json) return printJson(ctx, ts);
        for (const t of ts) {
          const extra = t.tag ? `  ${t.tag.message.split('\n')[0]}${t.tag.metadata.metrics ? `  ${JSON.stringify(t.tag.metadata.metrics)}` : ''}` : '';
          print(ctx, `${t.name}${extra}`);
        }
      });
    },
  },

  gc: {
    summary: 'Remove objects unreachable from refs, reflogs, the index and merge state',
    usage: 'coral gc [--prune=<now|never|30m|2h|14d>] [--aggressive] [--json]',
    maxArgs: 0,
    options: { prune: { type: 'string' }, aggressive: { type: 'boolean' }, ...JSON_OPT },
    async run(ctx) {
      await withRepo(ctx, async (repo) => {
        const r = await gc(repo, {
          pruneExpireMs: ctx.flags.prune !== undefined ? parsePruneExpire(ctx.flags.prune as string) : undefined,
          aggressive: !!ctx.flags.aggressive,
        });
        if (ctx.flags.json) return printJson(ctx, r);
        print(ctx, `gc: kept ${r.reachableObjects} objects of ${r.reachableCommits} commits; removed ${r.removedObjects} objects and ${r.removedMeta} meta objects; ${humanBytes(r.bytesBefore)} -> ${humanBytes(r.bytesAfter)}`);
      });
    },
  },

  fsck: {
    summary: 'Verify every object (checksums, delta chains) and every link',
    usage: 'coral fsck [--rebuild-index] [--quick] [--json]',
    maxArgs: 0,
    options: { 'rebuild-index': { type: 'boolean' }, quick: { type: 'boolean' }, ...JSON_OPT },
    async run(ctx) {
      return withRepo(ctx, async (repo) => {
        if (ctx.flags['rebuild-index']) {
          const n = await repo.rebuildIndex({ ifDamaged: true });
          if (n !== null && !ctx.flags.json) print(ctx, `staging index was damaged: rebuilt from HEAD (${n} files; staged changes lost)`);
          const store = repo.store as unknown as { rebuildIndex?: () => Promise<unknown> };
          if (store.rebuildIndex) await store.rebuildIndex();
          if (!ctx.flags.json) print(ctx, 'object index rebuilt from packs');
          const si = await repo.rebuildSimilarityIndex();
          if (!ctx.flags.json) print(ctx, `similarity index rebuilt: ${si.entries} entries (${si.fromAttributes} from attributes, ${si.decoded} decoded)`);
        }
        const r = await fsck(repo, { full: !ctx.flags.quick });
        if (ctx.flags.json) printJson(ctx, r);
        else {
          for (const p of r.problems) print(ctx, `${paint(ctx.io, 'red', 'error')}: ${p.kind} ${p.id}: ${p.message}`);
          print(ctx, `fsck: ${r.commits} commits, ${r.trees} trees, ${r.objects} objects checked; ${r.problems.length} problem(s)`);
        }
        if (!r.ok) {
          ctx.io.err(`coral: repository has ${r.problems.length} problem(s) (CORAL_FSCK_FAILED)\n`);
          return 9;
        }
      });
    },
  },

  stats: {
    summary: 'Storage statistics: logical vs stored bytes, codecs, deltas',
    usage: 'coral stats [--json]',
    maxArgs: 0,
    options: { ...JSON_OPT },
    async run(ctx) {
      await withRepo(ctx, async (repo) => {
        const s = await stats(repo);
        if (ctx.flags.json) return printJson(ctx, s);
        print(ctx, `commits ${s.commits}, branches ${s.branches}, tags ${s.tags}; HEAD has ${s.files} files, ${s.tensors} tensors`);
        print(ctx, `logical ${humanBytes(s.logicalBytes)}  stored ${humanBytes(s.storedBytes)}  ratio ${s.ratio.toFixed(2)}x`);
        print(ctx, `objects ${s.objects}  deltas ${s.deltaObjects} (avg ratio ${s.avgDeltaRatio.toFixed(2)}x, max chain depth ${s.maxChainDepth})`);
        if (s.chainDepths && Object.keys(s.chainDepths).length)
          print(ctx, `  chain depths: ${Object.entries(s.chainDepths).map(([d, n]) => `${d}:${n}`).join('  ')}`);
        for (const [c, v] of Object.entries(s.codecs).sort())
          print(ctx, `  ${c.padEnd(22)} ${String(v.objects).padStart(6)} objects  ${humanBytes(v.rawBytes).padStart(10)} -> ${humanBytes(v.storedBytes).padStart(10)}`);
      });
    },
  },

  compare: {
    summary: 'Compare two commits or tags side by side, with per-tensor metrics',
    usage: 'coral compare <rev-a> <rev-b> [--json]',
    options: { ...JSON_OPT },
    async run(ctx) {
      if (ctx.args.length !== 2) throw new UsageError('usage: coral compare <rev-a> <rev-b>');
      await withRepo(ctx, async (repo) => {
        const sides = [];
        for (const rev of ctx.args) {
          const id = await repo.resolve(rev);
          const c = await repo.readCommit(id);
          const tree = await repo.readTree(c.tree);
          const tag = (await repo.tags()).find((t) => t.name === rev);
          sides.push({
            rev, id, commit: c, tree,
            files: Object.keys(tree.files).length,
            bytes: Object.values(tree.files).reduce((n, e) => n + e.size, 0),
            tensors: Object.values(tree.files).reduce((n, e) => n + e.tensors.length, 0),
            metrics: (tag?.tag?.metadata.metrics as Record<string, unknown>) ?? {},
          });
        }
        const changes = await diffSides(repo.reader, sides[0].tree, { kind: 'tree', tree: sides[1].tree });
        const summary = summarizeChanges(changes);
        if (ctx.flags.json)
          return printJson(ctx, { a: { ...sides[0], tree: undefined }, b: { ...sides[1], tree: undefined }, summary, changes });
        const row = (k: string, a: unknown, b: unknown) => print(ctx, `${k.padEnd(12)} ${String(a).padEnd(40)} ${String(b)}`);
        row('', sides[0].rev, sides[1].rev);
        row('commit', short(sides[0].id), short(sides[1].id));
        row('date', formatSignatureDate(sides[0].commit.author), formatSignatureDate(sides[1].commit.author));
        row('message', firstLine(sides[0].commit).slice(0, 38), firstLine(sides[1].commit));
        row('files', sides[0].files, sides[1].files);
        row('tensors', sides[0].tensors, sides[1].tensors);
        row('bytes', humanBytes(sides[0].bytes), humanBytes(sides[1].bytes));
        const keys = [...new Set([...Object.keys(sides[0].metrics), ...Object.keys(sides[1].metrics)])];
        for (const k of keys) row(`metric:${k}`, sides[0].metrics[k] ?? '-', sides[1].metrics[k] ?? '-');
        print(ctx, '');
        print(ctx, `tensors: ${summary.tensorsAdded} added, ${summary.tensorsRemoved} removed, ${summary.tensorsModified} modified; ` +
          `mean relL2 ${fmtNum(summary.meanRelL2)}, max |diff| ${fmtNum(summary.maxAbs)}, min cosine ${fmtNum(summary.minCosine, 6)}`);
        print(ctx, '');
        renderChanges(ctx, changes);
      });
    },
  },

  config: {
    summary: 'Get or set repository configuration',
    usage: 'coral config [--list] | coral config <key> [<value>] | coral config --unset <key>',
    maxArgs: 2,
    options: { list: { type: 'boolean', short: 'l' }, unset: { type: 'boolean' }, ...JSON_OPT },
    async run(ctx) {
      return withRepo(ctx, async (repo) => {
        if (ctx.flags.list || !ctx.args.length) {
          const entries = repo.config.entries();
          if (ctx.flags.json) return printJson(ctx, Object.fromEntries(entries));
          for (const [k, v] of entries) print(ctx, `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
          return;
        }
        const key = ctx.args[0];
        if (ctx.flags.unset) {
          if (!(await repo.config.unset(key))) {
            ctx.io.err(`coral: config key '${key}' is not set (CORAL_CONFIG_NOT_SET)\n`);
            return 1;
          }
          return;
        }
        if (ctx.args.length === 1) {
          const v = repo.config.get(key);
          // A value already in the file prints even if its key is unknown (written before validation).
          if (v === undefined) {
            // As git exits 1 for a missing key, but says why: unknown, or known and not set (with its default).
            const info = configKeyInfo(key);
            const why = info
              ? `config key '${key}' is not set${info.default !== undefined ? ` (default: ${JSON.stringify(info.default)})` : ''}`
              : `config key '${key}' is not set`;
            ctx.io.err(`coral: ${why} (CORAL_CONFIG_NOT_SET)\n`);
            return 1;
          }
          print(ctx, typeof v === 'string' ? v : JSON.stringify(v));
          return;
        }
        await setConfigValue(repo.config, key, ctx.args[1]);
      });
    },
  },

  demo: {
    summary: 'Generate a few checkpoints and show what coral does with them',
    usage: 'coral demo [--dir <dir>] [--keep]',
    maxArgs: 0,
    options: { dir: { type: 'string' }, keep: { type: 'boolean' }, ...JSON_OPT },
    async run(ctx) {
      const { runDemo } = await import('./demo');
      return runDemo(ctx.io, { dir: ctx.flags.dir as string | undefined, keep: !!ctx.flags.keep, json: !!ctx.flags.json });
    },
  },
};

/** Commands contributed by other modules (merge, similar) register here. */
export function registerCommand(name: string, cmd: Command): void {
  commands[name] = cmd;
}
registerCommand('merge', mergeCommand);
registerCommand('similar', similarCommand);

function help(io: Io): void {
  io.out('usage: coral <command> [<args>]\n\nVersion control for neural-network weights.\n\nCommands:\n');
  for (const [n, c] of Object.entries(commands).sort()) io.out(`  ${n.padEnd(10)} ${c.summary}\n`);
  io.out('\nRun `coral <command> --help` for a command\'s options.\n');
}

export async function main(argv: string[], io: Io = defaultIo(), cwd = process.cwd()): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (!name || name === 'help' || name === '--help' || name === '-h') {
      help(io);
      return name ? 0 : 1;
    }
    if (name === '--version' || name === 'version') {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      io.out(`coral ${require('../../package.json').version}\n`);
      return 0;
    }
    const cmd = commands[name];
    if (!cmd) throw new UsageError(`'${name}' is not a coral command; see \`coral help\``);
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(`usage: ${cmd.usage}\n\n${cmd.summary}\n`);
      return 0;
    }
    const dd = rest.indexOf('--');
    const before = dd >= 0 ? rest.slice(0, dd) : rest;
    const after = dd >= 0 ? rest.slice(dd + 1) : [];
    const parsed = parseCommandArgs(name, cmd, cmd.preprocess ? cmd.preprocess(before) : before);
    const code = await cmd.run({ io, flags: parsed.flags, args: parsed.args, rest: after, cwd });
    return typeof code === 'number' ? code : 0;
  } catch (e) {
    io.err(errorLine(e));
    if (process.env.CORAL_DEBUG && e instanceof Error) io.err(`${e.stack}\n`);
    return exitCodeFor(e);
  }
}

export type { Command, Ctx };
