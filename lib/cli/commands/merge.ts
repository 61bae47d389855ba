/**
 * `coral merge`: three-way tensor-aware merge, try-and-vet candidates, and
 * the in-progress controls (--continue, --abort). Parses argv, calls the
 * public API (lib/index.ts) and formats what it returns; registered in main.ts.
 */
import * as path from 'node:path';
import {
  MERGE_STRATEGIES,
  MergeConflictError,
  Repository,
  invalidParameter,
  isMergeStrategy,
  paramFlags,
  vetCandidates,
  type MergeConflict,
  type MergeOptions,
  type MergeParams,
  type MergeReport,
  type MergeStrategyName,
} from '../../index';
import { UsageError, messageFlag, type Command, type Ctx, QUIET_OPT } from '../command';
import { fmtNum, paint, print, printJson } from '../output';
import { short } from '../render';

function num(flags: Ctx['flags'], k: string): number | undefined {
  const v = flags[k];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw invalidParameter(`--${k}`, 'number', v);
  return n;
}

function seedOf(flags: Ctx['flags']): number | bigint | undefined {
  const v = flags.seed;
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw invalidParameter('--seed', 'non-negative integer', v);
  const b = BigInt(v);
  return b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

function strategyOf(v: unknown, what = '--strategy'): MergeStrategyName {
  if (!isMergeStrategy(v)) throw invalidParameter(what, `one of ${MERGE_STRATEGIES.join(' ')}`, v);
  return v;
}

/** The merge parameters of the command line (`merge`, `pull`, `sync` share them). */
export function params(ctx: Ctx): MergeParams {
  const f = ctx.flags;
  const p: MergeParams = {
    resolve: (f.resolve as string[] | undefined) ?? [],
    alpha: num(f, 'alpha'),
    lambda: num(f, 'lambda'),
    density: num(f, 'density'),
    drop: num(f, 'drop'),
    seed: seedOf(f),
    allowUnrelated: !!f['allow-unrelated-histories'],
  };
  if (f.strategy !== undefined) p.strategy = strategyOf(f.strategy);
  if (f.precision !== undefined) {
    if (f.precision !== 'f32' && f.precision !== 'f64')
      throw invalidParameter('--precision', 'f32 or f64', f.precision);
    p.precision = f.precision;
  }
  for (const k of Object.keys(p) as Array<keyof MergeParams>) if (p[k] === undefined) delete p[k];
  return p;
}

function item(c: { file: string; tensor: string | null }): string {
  return c.tensor === null ? c.file : `${c.file}:${c.tensor}`;
}

function printConflicts(ctx: Ctx, list: readonly MergeConflict[], to: 'out' | 'err'): void {
  const w = (s: string) => (to === 'out' ? ctx.io.out(s + '\n') : ctx.io.err(s + '\n'));
  for (const c of list)
    w(
      `CONFLICT (${c.kind.replace(/^conflict-/, '')}): ${item(c)}${c.message && c.reason !== 'fail' ? ` -- ${c.message}` : ''}`,
    );
}

function printReport(ctx: Ctx, r: MergeReport, rev: string): void {
  const { io } = ctx;
  if (r.upToDate) return print(ctx, 'Already up to date.');
  if (r.fastForward) {
    print(ctx, `Updating ${short(r.ours)}..${short(r.theirs)}`);
    print(ctx, `Fast-forward (${r.written.length} written, ${r.removed.length} removed)`);
    return;
  }
  for (const n of r.notes) print(ctx, `note: ${n}`);
  for (const a of r.autoMerged) print(ctx, `  auto   ${a.kind.padEnd(20)} ${item(a)}`);
  for (const c of r.conflicts)
    if (c.resolvedBy)
      print(
        ctx,
        `  ${paint(io, 'yellow', 'merged')} ${c.kind.replace(/^conflict-/, '').padEnd(20)} ${item(c)}  (${c.resolvedBy})`,
      );
  if (r.unresolved.length) printConflicts(ctx, r.unresolved, 'out');
  if (r.commit) {
    print(
      ctx,
      `Merge made by the tensor-aware three-way merge: ${short(r.commit)} (base ${short(r.base)}, ${r.autoMerged.length} taken automatically, ${r.resolved.length} resolved)`,
    );
  } else if (r.unresolved.length) {
    print(
      ctx,
      `Automatic merge of ${rev} left ${r.unresolved.length} conflict(s) (kept ours); fix the files, \`coral add\` them, then \`coral merge --continue\` (or \`--abort\`).`,
    );
  } else {
    print(
      ctx,
      `Merge of ${rev} prepared in the worktree and index, not committed; run \`coral merge --continue\` to commit (or \`--abort\`).`,
    );
  }
}

async function runTry(ctx: Ctx, repo: Repository, rev: string): Promise<number> {
  const f = ctx.flags;
  const list = String(f.try)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => strategyOf(s, '--try'));
  if (!f.out) throw new UsageError('--try needs --out <dir>: coral merge <rev> --try ties,average --out DIR');
  const p = params(ctx);
  delete p.strategy;
  const r = await repo.mergeTry(rev, list, path.resolve(ctx.cwd, f.out as string), p);
  const cmd = f.eval as string | undefined;
  const minimize = !!f.minimize;
  const out = vetCandidates(rev, r, { command: cmd, minimize, cwd: ctx.cwd });
  const rows = out.candidates;
  const best = out.best && rows.find((row) => row.strategy === out.best!.strategy);
  const flags = paramFlags(r.params);
  if (f.json) printJson(ctx, out);
  else {
    print(ctx, `candidates for merging ${rev} (base ${short(r.base)}; ${flags || 'no parameters'}):`);
    print(ctx, `  ${'strategy'.padEnd(16)} ${'score'.padStart(12)}  status`);
    for (const row of rows) {
      const score = row.score === null ? '-' : fmtNum(row.score, 6);
      const status = row.ok ? (row.error ? `eval failed: ${row.error}` : `ok  ${row.dir}`) : `failed: ${row.error}`;
      const mark = best && row === best ? paint(ctx.io, 'green', ' <- best') : '';
      print(ctx, `  ${row.strategy.padEnd(16)} ${score.padStart(12)}  ${status}${mark}`);
    }
    if (best)
      print(
        ctx,
        `best: ${best.strategy} (${minimize ? 'lowest' : 'highest'} score ${fmtNum(best.score!, 6)}); commit it with: ${out.next}`,
      );
    else if (cmd) print(ctx, 'no candidate produced a score');
  }
  return rows.some((x) => x.ok) ? 0 : 5;
}

/** The options of a merge that `pull` and `sync` take too. */
export const MERGE_OPTIONS = {
  strategy: { type: 'string', short: 's' },
  resolve: { type: 'string', multiple: true },
  alpha: { type: 'string' },
  lambda: { type: 'string' },
  density: { type: 'string' },
  drop: { type: 'string' },
  seed: { type: 'string' },
  precision: { type: 'string' },
  'no-ff': { type: 'boolean' },
  'ff-only': { type: 'boolean' },
  'no-commit': { type: 'boolean' },
  'allow-unrelated-histories': { type: 'boolean' },
  message: { type: 'string', short: 'm', multiple: true },
} as const satisfies Command['options'];

/** Merge options from the command line: the parameters plus --no-ff, --ff-only, --no-commit, -m. */
export function mergeOptions(ctx: Ctx): MergeOptions {
  const f = ctx.flags;
  return {
    ...params(ctx),
    noFf: !!f['no-ff'],
    ffOnly: !!f['ff-only'],
    noCommit: !!f['no-commit'],
    message: messageFlag(f.message),
  };
}

/** Prints the conflicts of a merge (CONFLICT lines). */
export function printMergeConflicts(ctx: Ctx, list: readonly MergeConflict[], to: 'out' | 'err'): void {
  printConflicts(ctx, list, to);
}

/** Prints a merge report as `coral merge` does. */
export function printMergeReport(ctx: Ctx, r: MergeReport, rev: string): void {
  printReport(ctx, r, rev);
}

export const mergeCommand: Command = {
  summary: 'Three-way tensor-aware merge (strategies ours..TIES/DARE), try-and-vet candidates',
  // A getter: the strategy list loads the merge code, which `coral` must not load for other commands.
  get usage() {
    return (
      `coral merge [-q] <rev> [--strategy ${MERGE_STRATEGIES.join('|')}] [--alpha a] [--lambda l] ` +
      '[--density k] [--drop p] [--seed s] [--resolve GLOB=STRATEGY]... [--no-ff|--ff-only] [--no-commit] [-m msg] [--json]\n' +
      "       coral merge <rev> --try s1,s2,... --out DIR [--eval 'CMD {}'] [--minimize] [--json]\n" +
      '       coral merge --continue [-m msg] | coral merge --abort'
    );
  },
  options: {
    ...MERGE_OPTIONS,
    ...QUIET_OPT,
    try: { type: 'string' },
    out: { type: 'string', short: 'o' },
    eval: { type: 'string' },
    minimize: { type: 'boolean' },
    continue: { type: 'boolean' },
    abort: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run(ctx) {
    const f = ctx.flags;
    const repo = await Repository.open(ctx.cwd);
    try {
      if (f.continue || f.abort) {
        if (f.continue && f.abort) throw new UsageError('--continue and --abort cannot be combined');
        if (ctx.args.length) throw new UsageError(`--${f.continue ? 'continue' : 'abort'} takes no revision`);
        if (f.abort) {
          const r = await repo.mergeAbort();
          if (f.json) return printJson(ctx, r);
          print(
            ctx,
            `Merge aborted; worktree and index restored to ${short(r.orig)} (${r.written.length} written, ${r.removed.length} removed)`,
          );
          return;
        }
        const id = await repo.mergeContinue({ message: messageFlag(f.message) });
        if (f.json) return printJson(ctx, { commit: id });
        print(
          ctx,
          `[${(await repo.currentBranch()) ?? 'detached HEAD'} ${short(id)}] ${(await repo.readCommit(id)).message.split('\n')[0]}`,
        );
        return;
      }
      if (ctx.args.length === 0) throw new UsageError(`a revision to merge is required; usage: ${mergeCommand.usage}`);
      if (ctx.args.length > 1)
        throw new UsageError(`octopus merges (${ctx.args.length} heads) are not supported; merge one head at a time`);
      const rev = ctx.args[0];
      if (f.try !== undefined) return await runTry(ctx, repo, rev);
      if (f.out || f.eval || f.minimize) throw new UsageError('--out, --eval and --minimize belong to --try');
      let r: MergeReport;
      try {
        r = await repo.merge(rev, {
          ...params(ctx),
          noFf: !!f['no-ff'],
          ffOnly: !!f['ff-only'],
          noCommit: !!f['no-commit'],
          message: messageFlag(f.message),
        });
      } catch (e) {
        if (e instanceof MergeConflictError && !f.json) {
          const list = (e.data as { conflicts?: MergeConflict[] } | undefined)?.conflicts;
          if (list) printConflicts(ctx, list, 'err');
        }
        throw e;
      }
      if (f.json) printJson(ctx, r);
      else printReport(ctx, r, rev);
      return r.unresolved.length ? 5 : 0;
    } finally {
      await repo.close();
    }
  },
};
