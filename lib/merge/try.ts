/**
 * Try-and-vet: `mergeTry` writes one full candidate checkpoint set per
 * strategy into `out/<strategy>/` without touching refs, the index or the
 * worktree; `vetCandidates` scores them with a user command (`--eval`) and
 * picks the best. `coral merge <rev> --try … --eval …` prints exactly what
 * these two return.
 *
 * @example
 * const tried = await mergeTry(ctx, 'feature', ['average', 'ties'], '/tmp/cands', { density: 0.3 });
 * const r = vetCandidates('feature', tried, { command: 'python eval.py {}', minimize: true });
 * r.best?.strategy; r.next // 'coral merge feature --strategy ties --alpha 0.5 --density 0.3 --drop 0.1'
 */
import { spawnSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { commitTree, headCommit, resolve, treeOf, withWriter, type RepoContext } from '../context';
import { CoralError, invalidParameter } from '../errors';
import { mergeBase } from '../refs/ancestry';
import { checkNotInCoral } from '../worktree/files';
import { materializeFile } from '../worktree/materialize';
import { checkStrategy, mergeConfig, type MergeParams } from './params';
import { conflictError, planMerge, type Plan } from './planner';
import type { PreparedFiles } from './prepared';
import type { MergeStrategyName } from './strategies';
import { InvalidArgumentError } from '../errors';

export interface TryCandidate {
  strategy: MergeStrategyName;
  dir: string;
  ok: boolean;
  error?: string;
  files: string[];
  conflicts: number;
  resolved: number;
}

/** What `mergeTry` returns. */
export interface MergeTryResult {
  base: string | null;
  theirs: string;
  ours: string | null;
  /** The strategy parameters used (with the try defaults filled in; bigint seeds as strings). */
  params: Record<string, unknown>;
  candidates: TryCandidate[];
}

export type MergeTryStrategies = readonly MergeStrategyName[];

/** Defaults the try mode fills in for strategies whose parameter the user did not give. */
export const TRY_DEFAULTS = Object.freeze({ alpha: 0.5, density: 0.2, drop: 0.1 });

function checkStrategies(strategies: MergeTryStrategies): void {
  if (!Array.isArray(strategies) || strategies.length === 0)
    throw invalidParameter('strategies', 'non-empty list of strategies', strategies);
  for (const s of strategies) checkStrategy(s);
  if (new Set(strategies).size !== strategies.length)
    throw invalidParameter('strategies', 'distinct strategies', strategies);
}

/**
 * Writes one full candidate checkpoint set per strategy into `out/<strategy>/`
 * (byte-exact re-assembly of the merged tree) without touching refs, the
 * index or the worktree. Merged objects are stored (unreferenced until a
 * later `merge --strategy X` commits the same result, which then dedups;
 * otherwise gc drops them).
 */
export async function mergeTry(
  ctx: RepoContext,
  other: string,
  strategies: MergeTryStrategies,
  out: string,
  params: MergeParams = {},
): Promise<MergeTryResult> {
  checkStrategies(strategies);
  const filled: MergeParams = {
    ...params,
    alpha: params.alpha ?? TRY_DEFAULTS.alpha,
    density: params.density ?? TRY_DEFAULTS.density,
    drop: params.drop ?? TRY_DEFAULTS.drop,
  };
  mergeConfig({ ...filled, strategy: strategies[0] });
  const theirsId = await resolve(ctx, other);
  const headId = await headCommit(ctx);
  const bases = headId ? await mergeBase(headId, theirsId, ctx.meta) : [];
  const base = bases[0] ?? null;
  if (headId && !base && !params.allowUnrelated)
    throw new InvalidArgumentError(`refusing to merge unrelated histories (${other} shares no commit with HEAD)`);
  const baseTree = await treeOf(ctx, base);
  const oursTree = await treeOf(ctx, headId);
  const theirsTree = await commitTree(ctx, theirsId);
  const outDir = path.resolve(out);
  await checkNotInCoral(ctx.layout, outDir);
  const candidates: TryCandidate[] = [];
  for (const strategy of strategies) {
    const dir = path.join(outDir, strategy);
    const c: TryCandidate = { strategy, dir, ok: false, files: [], conflicts: 0, resolved: 0 };
    let plan: Plan;
    try {
      let prepared: PreparedFiles | null = null;
      try {
        plan = await withWriter(ctx, 'merge-try', async (writer) => {
          const p = await planMerge(ctx, writer, baseTree, oursTree, theirsTree, { ...filled, strategy });
          prepared = p.prepared;
          if (p.unresolved.length) throw conflictError(p.unresolved, strategy);
          return p;
        });
        await fsp.rm(dir, { recursive: true, force: true });
        await fsp.mkdir(dir, { recursive: true });
        for (const [p, e] of Object.entries(plan.tree.files)) {
          const dest = path.join(dir, ...p.split('/'));
          if (!(await plan.prepared.take(p, e.sha256, dest))) await materializeFile(ctx.reader, e, dest);
          c.files.push(p);
        }
      } finally {
        await (prepared as PreparedFiles | null)?.discard();
      }
      c.conflicts = plan.conflicts.length;
      c.resolved = plan.conflicts.filter((x) => x.resolvedBy !== null).length;
      c.ok = true;
    } catch (e) {
      if (!(e instanceof CoralError)) throw e;
      c.error = `${e.message} (${e.code})`;
    }
    candidates.push(c);
  }
  const shown: Record<string, unknown> = {};
  for (const k of ['alpha', 'lambda', 'density', 'drop', 'seed'] as const)
    if (filled[k] !== undefined) shown[k] = typeof filled[k] === 'bigint' ? String(filled[k]) : filled[k];
  return { base, theirs: theirsId, ours: headId, params: shown, candidates };
}

// ---- vetting ----------------------------------------------------------------------------------

/** How `vetCandidates` scores the candidates. */
export interface VetOptions {
  /**
   * Shell command run once per good candidate (`sh -c`), `{}` replaced by the
   * quoted candidate directory; also given CORAL_CANDIDATE_DIR and
   * CORAL_CANDIDATE_STRATEGY. Its last number on stdout is the score. Without
   * a command nothing is scored.
   */
  command?: string;
  /** Lower scores are better (a loss); default: higher is better. */
  minimize?: boolean;
  /** Working directory of the command; default process.cwd(). */
  cwd?: string;
}

export interface VettedCandidate extends TryCandidate {
  /** The score, or null (no command, the command failed, or it printed no number). */
  score: number | null;
  exitCode: number | null;
  /** The command's stdout (last 2000 characters); only when a command ran. */
  output?: string;
}

/** What `vetCandidates` returns (the `--try --json` document). */
export interface MergeVetReport {
  theirs: string;
  ours: string | null;
  base: string | null;
  params: Record<string, unknown>;
  minimize: boolean;
  candidates: VettedCandidate[];
  best: { strategy: MergeStrategyName; score: number | null; dir: string } | null;
  /** The command that commits the best candidate, or null. */
  next: string | null;
}

/** Last number printed on stdout, or null. */
export function parseScore(stdout: string): number | null {
  const m = stdout.match(/[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf(?:inity)?|nan)\b/gi);
  if (!m) return null;
  const last = m[m.length - 1].toLowerCase().replace(/^\+/, '');
  if (last.includes('nan')) return null;
  if (last.includes('inf')) return last.startsWith('-') ? -Infinity : Infinity;
  const v = Number(last);
  return Number.isNaN(v) ? null : v;
}

/** The parameters as `coral merge` flags (`--alpha 0.5 --density 0.2`). */
export function paramFlags(params: Record<string, unknown>): string {
  return Object.entries(params)
    .map(([k, v]) => `--${k} ${String(v)}`)
    .join(' ');
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Scores the candidates of `mergeTry(…, other, …)` with `opts.command` and
 * picks the best; `next` is the `coral merge` command that commits it.
 */
export function vetCandidates(other: string, tried: MergeTryResult, opts: VetOptions = {}): MergeVetReport {
  const rows = tried.candidates.map((c) => ({
    ...c,
    score: null as number | null,
    exitCode: null as number | null,
    output: '',
  }));
  const cmd = opts.command;
  if (cmd) {
    for (const row of rows) {
      if (!row.ok) continue;
      const run = spawnSync('sh', ['-c', cmd.split('{}').join(shellQuote(row.dir))], {
        cwd: opts.cwd ?? process.cwd(),
        encoding: 'utf8',
        env: { ...process.env, CORAL_CANDIDATE_DIR: row.dir, CORAL_CANDIDATE_STRATEGY: row.strategy },
        maxBuffer: 64 << 20,
      });
      row.exitCode = run.status ?? 128;
      row.output = (run.stdout ?? '').slice(-2000);
      if (row.exitCode === 0) row.score = parseScore(run.stdout ?? '');
      else
        row.error = `eval command exited ${row.exitCode}: ${(run.stderr ?? '').trim().split('\n').slice(-1)[0] ?? ''}`;
    }
  }
  const minimize = !!opts.minimize;
  let best: (typeof rows)[number] | null = null;
  for (const row of rows) {
    if (row.score === null || Number.isNaN(row.score)) continue;
    if (!best || (minimize ? row.score < best.score! : row.score > best.score!)) best = row;
  }
  const flags = paramFlags(tried.params);
  return {
    theirs: tried.theirs,
    ours: tried.ours,
    base: tried.base,
    params: tried.params,
    minimize,
    candidates: rows.map(({ output, ...row }) => ({ ...row, output: cmd ? output : undefined })),
    best: best ? { strategy: best.strategy, score: best.score, dir: best.dir } : null,
    next: best ? `coral merge ${other} --strategy ${best.strategy} ${flags}`.trim() : null,
  };
}
