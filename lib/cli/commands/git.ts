/**
 * `coral git <subcommand>`: the git extension (docs/git.md). The user-facing
 * subcommands are install, uninstall, track, untrack, diff, resolve, gc,
 * push and fetch; git itself runs filter-process, diff-driver, textconv,
 * merge-driver and pre-push through the config `install` writes.
 */
import { gitExtension as G, parsePruneExpire } from '../../index';
import { UsageError, type Command, type Ctx } from '../command';
import { print, printJson } from '../output';

type Sub = (ctx: Ctx, args: string[]) => Promise<number | void>;

const subs = new Map<string, { usage: string; run: Sub }>([
  [
    'install',
    {
      usage: 'coral git install [--local] [--force] [--backend coral|lfs]',
      async run(ctx) {
        const backend = ctx.flags.backend;
        if (backend !== undefined && backend !== 'coral' && backend !== 'lfs')
          throw new UsageError(`--backend is coral or lfs, not ${JSON.stringify(backend)}`);
        const r = await G.install(ctx.cwd, {
          local: !!ctx.flags.local,
          force: !!ctx.flags.force,
          ...(backend ? { backend } : {}),
        });
        if (ctx.flags.json) return printJson(ctx, r);
        print(ctx, `coral: git filter, diff and merge drivers configured (${r.scope} config)`);
        if (r.hook) print(ctx, `coral: pre-push hook installed at ${r.hook}`);
      },
    },
  ],
  [
    'uninstall',
    {
      usage: 'coral git uninstall [--local]',
      async run(ctx) {
        await G.uninstall(ctx.cwd, { local: !!ctx.flags.local });
      },
    },
  ],
  [
    'track',
    {
      usage: 'coral git track [<pattern>...] [--strategy <s>]',
      async run(ctx, args) {
        if (!args.length) {
          const list = await G.trackedPatterns(ctx.cwd);
          if (ctx.flags.json) return printJson(ctx, list);
          for (const t of list) print(ctx, t.strategy ? `${t.pattern} (coral-strategy=${t.strategy})` : t.pattern);
          return;
        }
        for (const p of args) {
          const w = await G.track(ctx.cwd, p, {
            ...(typeof ctx.flags.strategy === 'string' ? { strategy: ctx.flags.strategy } : {}),
          });
          print(ctx, `tracking ${JSON.stringify(w)}`);
        }
      },
    },
  ],
  [
    'untrack',
    {
      usage: 'coral git untrack <pattern>...',
      async run(ctx, args) {
        if (!args.length) throw new UsageError('coral git untrack needs a pattern');
        for (const p of args)
          print(ctx, (await G.untrack(ctx.cwd, p)) ? `untracking ${JSON.stringify(p)}` : `${p} was not tracked`);
      },
    },
  ],
  [
    'filter-process',
    {
      usage: 'coral git filter-process   (run by git: filter.coral.process)',
      async run(ctx) {
        await G.runFilterProcess(ctx.cwd);
      },
    },
  ],
  [
    'diff-driver',
    {
      usage:
        'coral git diff-driver <path> <old-file> <old-hex> <old-mode> <new-file> <new-hex> <new-mode>   (run by git: diff.coral.command)',
      async run(ctx, args) {
        ctx.io.out(await G.runDiffDriver(ctx.cwd, args, !!process.stdout.isTTY));
      },
    },
  ],
  [
    'textconv',
    {
      usage: 'coral git textconv <file>   (run by git: diff.coral.textconv)',
      async run(ctx, args) {
        if (args.length !== 1) throw new UsageError('coral git textconv takes one file');
        ctx.io.out(await G.runTextconv(ctx.cwd, args[0]));
      },
    },
  ],
  [
    'merge-driver',
    {
      usage: 'coral git merge-driver %O %A %B %P   (run by git: merge.coral.driver)',
      async run(ctx, args) {
        return G.runMergeDriver(ctx.cwd, args, (s) => ctx.io.err(`${s}\n`));
      },
    },
  ],
  [
    'resolve',
    {
      usage: 'coral git resolve <path>... (--strategy <s> | --ours | --theirs)',
      async run(ctx, args) {
        if (!args.length) throw new UsageError('coral git resolve needs the conflicted path');
        const out = [];
        for (const p of args) {
          const r = await G.resolve(ctx.cwd, p, {
            ...(typeof ctx.flags.strategy === 'string' ? { strategy: ctx.flags.strategy } : {}),
            ours: !!ctx.flags.ours,
            theirs: !!ctx.flags.theirs,
          });
          out.push(r);
          if (!ctx.flags.json) print(ctx, `resolved ${r.path} with ${r.strategy}`);
        }
        if (ctx.flags.json) printJson(ctx, out);
      },
    },
  ],
  [
    'mergetool',
    {
      usage: "coral git mergetool <path> --try <s> [--try <s>...] [--out DIR] [--eval 'CMD {}'] [--minimize] [--pick]",
      async run(ctx, args) {
        if (args.length !== 1) throw new UsageError('coral git mergetool takes one conflicted path');
        const tries = ((ctx.flags.try as string[] | undefined) ?? []).flatMap((t) =>
          t.includes(':') ? [t] : t.split(',').filter(Boolean),
        );
        if (!tries.length)
          throw new UsageError('coral git mergetool needs --try <strategy> (repeat or comma-separate)');
        const r = await G.mergetool(ctx.cwd, args[0], {
          strategies: tries,
          ...(typeof ctx.flags.out === 'string' ? { out: ctx.flags.out } : {}),
          ...(typeof ctx.flags.eval === 'string' ? { evalCommand: ctx.flags.eval } : {}),
          minimize: !!ctx.flags.minimize,
          pick: !!ctx.flags.pick,
        });
        if (ctx.flags.json) return printJson(ctx, r);
        for (const c of r.candidates)
          print(
            ctx,
            `${c.spec.padEnd(24)} ${c.ok ? (c.score !== null ? `score ${c.score}  ${c.file}` : `ok  ${c.file}`) : `failed: ${c.error}`}${c.ok && c.error ? ` (${c.error})` : ''}`,
          );
        if (r.resolved) print(ctx, `resolved ${r.path} with ${r.resolved.strategy}`);
        else if (r.next) print(ctx, `best: ${r.best!.spec}; settle with: ${r.next}`);
      },
    },
  ],
  [
    'pre-push',
    {
      usage: 'coral git pre-push <remote> <url>   (run by git: the pre-push hook; refs on stdin)',
      async run(ctx, args) {
        if (args.length < 1) throw new UsageError('coral git pre-push <remote> <url>');
        const chunks: Buffer[] = [];
        for await (const c of process.stdin) chunks.push(c as Buffer);
        const r = await G.withPayloads(ctx.cwd, (ps, top) =>
          G.prePush(ps, top, args[0], args[1] ?? args[0], Buffer.concat(chunks).toString('utf8')),
        );
        if (r.objects) ctx.io.err(`coral: sent ${r.objects} payload object(s) (${r.bytes} bytes) to ${r.url}\n`);
      },
    },
  ],
  [
    'push',
    {
      usage: 'coral git push <remote> [<rev>...]',
      async run(ctx, args) {
        if (!args.length) throw new UsageError('coral git push needs a remote');
        const r = await G.withPayloads(ctx.cwd, (ps, top) => G.pushPayloads(ps, top, args[0], args.slice(1)));
        if (ctx.flags.json) return printJson(ctx, r);
        print(ctx, `sent ${r.objects} payload object(s) (${r.bytes} bytes) for ${r.pointers} pointer(s) to ${r.url}`);
      },
    },
  ],
  [
    'fetch',
    {
      usage: 'coral git fetch [--all]',
      async run(ctx) {
        const r = await G.withPayloads(ctx.cwd, (ps, top) => G.fetchPayloads(ps, top, { all: !!ctx.flags.all }));
        if (ctx.flags.json) return printJson(ctx, r);
        print(
          ctx,
          `fetched ${r.fetched} payload object(s) for ${r.pointers} pointer(s)${r.missing ? `; ${r.missing} still missing` : ''}`,
        );
        return r.missing ? 4 : 0;
      },
    },
  ],
  [
    'gc',
    {
      usage: 'coral git gc [--prune=<now|never|30m|2h|14d>]',
      async run(ctx) {
        const prune = typeof ctx.flags.prune === 'string' ? parsePruneExpire(ctx.flags.prune) : undefined;
        const r = await G.withPayloads(ctx.cwd, (ps, top) =>
          G.gcPayloads(ps, top, prune !== undefined ? { pruneExpireMs: prune } : {}),
        );
        if (ctx.flags.json) return printJson(ctx, r);
        print(ctx, `gc: ${r.pointers} pointer(s) keep ${r.keptObjects} object(s); removed ${r.removedObjects}`);
      },
    },
  ],
]);

export const gitCommand: Command = {
  summary: 'Checkpoints in a git repository: filter, diff and merge drivers, payload transfer',
  usage: `coral git <subcommand>\n\n${[...subs.values()].map((s) => `  ${s.usage}`).join('\n')}`,
  options: {
    local: { type: 'boolean' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
    strategy: { type: 'string' },
    ours: { type: 'boolean' },
    theirs: { type: 'boolean' },
    backend: { type: 'string' },
    remote: { type: 'string' },
    try: { type: 'string', multiple: true },
    eval: { type: 'string' },
    out: { type: 'string' },
    minimize: { type: 'boolean' },
    pick: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    all: { type: 'boolean' },
    prune: { type: 'string' },
  },
  async run(ctx) {
    const [name, ...args] = ctx.args;
    const sub = name ? subs.get(name) : undefined;
    if (!sub)
      throw new UsageError(
        name ? `'${name}' is not a coral git subcommand; see \`coral git --help\`` : 'usage: ' + gitCommand.usage,
      );
    return sub.run(ctx, args);
  },
};

export const _subcommands = subs;
