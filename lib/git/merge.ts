/**
 * `git merge` of a checkpoint: the `merge.coral` driver and `coral git resolve`.
 *
 * git hands the driver the three pointers (`%O %A %B %P`: ancestor, ours,
 * theirs, path) and takes the result from %A. The driver merges per
 * parameter group against the ancestor with the repository's merge planner
 * (lib/merge): one-sided changes merge by themselves, and groups changed on
 * both sides go to the strategy chosen for the file, in order:
 *   1. the `.gitattributes` attribute `coral-strategy=<s>` of the path,
 *   2. git config `coral.mergeStrategy`,
 *   3. `fail`: the file stays conflicted (exit 1). %A then holds ours with
 *      every one-sided change merged in, the index keeps the three stages, and
 *      `coral git resolve <path> --strategy <s>` (or `--ours`/`--theirs`)
 *      settles it later. Nothing ever prompts.
 * A strategy with parameters is written `name:key=value,...`, e.g.
 * `weighted:alpha=0.3` or `ties:density=0.2,lambda=1`.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { invalidParameter, MergeConflictError } from '../errors';
import { planMerge, type MergeConflict, type Plan } from '../merge/planner';
import type { MergeParams } from '../merge/params';
import { vetCandidates } from '../merge/try';
import { isMergeStrategy, MERGE_STRATEGIES, type MergeStrategyName } from '../merge/strategies/index';
import { fileTable, type FileEntry } from '../models/tree';
import { withWriter } from '../context';
import { git, gitConfig, gitDirs, gitRaw } from './gitcmd';
import { openPayloads, pointerText, smudgeToFile, scratchPath, type Payloads } from './payloads';
import { looksLikePointer, parsePointer, type Pointer } from './pointer';
import { trace } from './process';

/** A parsed strategy spec (`name` or `name:key=value,...`). */
export function parseStrategySpec(spec: string): MergeParams & { strategy: MergeStrategyName } {
  const [name, rest] = spec.includes(':')
    ? [spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1)]
    : [spec, ''];
  if (!isMergeStrategy(name)) throw invalidParameter('strategy', `one of ${MERGE_STRATEGIES.join(' ')}`, spec);
  const out: MergeParams & { strategy: MergeStrategyName } = { strategy: name };
  for (const kv of rest ? rest.split(',') : []) {
    const [k, v] = kv.split('=');
    if (v === undefined) throw invalidParameter('strategy parameter', 'key=value', kv);
    if (k === 'alpha' || k === 'lambda' || k === 'density' || k === 'drop') out[k] = Number(v);
    else if (k === 'seed') out.seed = Number(v);
    else if (k === 'precision' && (v === 'f32' || v === 'f64')) out.precision = v;
    else throw invalidParameter('strategy parameter', 'alpha, lambda, density, drop, seed or precision', k);
  }
  return out;
}

/** The strategy for `relPath`: its coral-strategy attribute, else coral.mergeStrategy, else fail. */
export async function strategyForPath(cwd: string, relPath: string): Promise<string> {
  const r = await gitRaw(cwd, ['check-attr', 'coral-strategy', '--', relPath]);
  const m = /: coral-strategy: (.*)$/m.exec(r.stdout.toString('utf8'));
  const attr = m?.[1].trim();
  if (attr && attr !== 'unspecified' && attr !== 'unset' && attr !== 'set') return attr;
  return (await gitConfig(cwd, 'coral.mergeStrategy')) ?? 'fail';
}

export interface PointerMerge {
  /** The merged pointer (ours, with one-sided changes merged, when conflicts remain). */
  text: string;
  entry: FileEntry;
  conflicts: MergeConflict[];
  unresolved: MergeConflict[];
  autoMerged: Plan['autoMerged'];
  notes: string[];
}

/** Three-way merge of one checkpoint's pointers (base null: added on both sides). */
export async function mergePointers(
  ps: Payloads,
  relPath: string,
  base: Pointer | null,
  ours: Pointer,
  theirs: Pointer,
  params: MergeParams,
): Promise<PointerMerge> {
  const tree = (p: Pointer | null) => ({ files: p ? fileTable([[relPath, p.entry]]) : fileTable<FileEntry>() });
  const ctx = { worktree: ps.dirs.worktree || ps.dir, layout: ps.layout, reader: ps.reader, store: ps.store };
  const plan = await withWriter(ps, 'git merge', (w) =>
    planMerge(ctx, w, tree(base), tree(ours), tree(theirs), params, { keepUnresolved: true }),
  );
  await plan.prepared.discard();
  const entry = plan.tree.files[relPath] ?? ours.entry;
  return {
    text: await pointerText(ps, entry, ps.backend === 'lfs' || !!ours.lfs || !!theirs.lfs),
    entry,
    conflicts: plan.conflicts,
    unresolved: plan.unresolved,
    autoMerged: plan.autoMerged,
    notes: plan.notes,
  };
}

async function readPointerFile(file: string): Promise<Pointer | null> {
  const b = await fsp.readFile(file);
  if (b.length === 0) return null;
  return looksLikePointer(b) ? parsePointer(b) : null;
}

function describe(c: MergeConflict): string {
  return `${c.tensor ?? '(file)'}: ${c.kind}${c.message ? ` (${c.message})` : ''}`;
}

/**
 * `coral git merge-driver %O %A %B %P`: writes the result to %A; resolves to
 * the exit code (0 merged, 1 conflicts left).
 */
export async function runMergeDriver(cwd: string, args: string[], log: (s: string) => void): Promise<number> {
  if (args.length !== 4) throw invalidParameter('merge-driver arguments', '%O %A %B %P', args.join(' '));
  const [o, a, b, relPath] = args;
  const dirs = await gitDirs(cwd);
  const top = dirs.worktree || cwd;
  const [base, ours, theirs] = [
    await readPointerFile(path.resolve(cwd, o)),
    await readPointerFile(path.resolve(cwd, a)),
    await readPointerFile(path.resolve(cwd, b)),
  ];
  if (!ours || !theirs) {
    log(`coral: ${relPath}: not a coral pointer on both sides; leaving it conflicted`);
    return 1;
  }
  const spec = await strategyForPath(top, relPath);
  const params = parseStrategySpec(spec);
  const ps = await openPayloads(dirs);
  try {
    const m = await mergePointers(ps, relPath, base, ours, theirs, params);
    trace(`merge ${relPath} strategy=${spec} conflicts=${m.conflicts.length} unresolved=${m.unresolved.length}`);
    await fsp.writeFile(path.resolve(cwd, a), m.text);
    for (const n of m.notes) log(`coral: ${n}`);
    for (const c of m.conflicts.filter((x) => x.resolvedBy))
      log(`coral: ${relPath}: ${c.tensor ?? '(file)'} resolved by ${c.resolvedBy}`);
    if (m.unresolved.length) {
      log(`coral: ${relPath}: ${m.unresolved.length} conflicting group(s) (strategy ${spec}):`);
      for (const c of m.unresolved) log(`coral:   ${describe(c)}`);
      log(`coral: settle with \`coral git resolve ${relPath} --strategy <s>\` or --ours/--theirs`);
      return 1;
    }
    return 0;
  } finally {
    await ps.close();
  }
}

export interface ResolveOptions {
  strategy?: string;
  ours?: boolean;
  theirs?: boolean;
}

export interface ResolveReport {
  path: string;
  strategy: string;
  conflicts: MergeConflict[];
}

/** A conflicted path's pointers at index stages 1 (base), 2 (ours) and 3 (theirs); null where absent. */
async function conflictStages(cwd: string, relPathIn: string) {
  const dirs = await gitDirs(cwd);
  const top = dirs.worktree;
  const relPath = path.relative(top, path.resolve(cwd, relPathIn)).split(path.sep).join('/');
  const stage = async (n: number) => {
    const r = await gitRaw(top, ['cat-file', 'blob', `:${n}:${relPath}`]);
    return r.code === 0 && looksLikePointer(r.stdout) ? parsePointer(r.stdout) : null;
  };
  const [base, ours, theirs] = [await stage(1), await stage(2), await stage(3)];
  return { dirs, top, relPath, base, ours, theirs };
}

/**
 * `coral git resolve <path>`: merges the conflicted path's index stages
 * (1 ancestor, 2 ours, 3 theirs) with the given strategy, writes the
 * rebuilt file to the working tree and stages it (`git add`).
 */
export async function resolve(cwd: string, relPathIn: string, opts: ResolveOptions): Promise<ResolveReport> {
  const picked = [opts.strategy !== undefined, !!opts.ours, !!opts.theirs].filter(Boolean).length;
  if (picked !== 1) throw invalidParameter('resolution', 'exactly one of --strategy <s>, --ours, --theirs', opts);
  const spec = opts.ours ? 'ours' : opts.theirs ? 'theirs' : opts.strategy!;
  const params = parseStrategySpec(spec);
  const { dirs, top, relPath, base, ours, theirs } = await conflictStages(cwd, relPathIn);
  if (!ours && !theirs)
    throw new MergeConflictError(`${relPath} is not a conflicted coral checkpoint (no index stages 2 and 3)`, {
      path: relPath,
    });
  const ps = await openPayloads(dirs);
  try {
    let entry: FileEntry | null;
    let conflicts: MergeConflict[] = [];
    if (!ours || !theirs) {
      // Deleted on one side: keep the side that has it (ours/theirs) or the deletion.
      const keep = params.strategy === 'ours' ? ours : params.strategy === 'theirs' ? theirs : null;
      if (params.strategy !== 'ours' && params.strategy !== 'theirs')
        throw new MergeConflictError(`${relPath} was deleted on one side; only --ours or --theirs can settle it`, {
          path: relPath,
        });
      entry = keep?.entry ?? null;
    } else {
      const m = await mergePointers(ps, relPath, base, ours, theirs, params);
      if (m.unresolved.length)
        throw new MergeConflictError(
          `${relPath}: strategy ${spec} left ${m.unresolved.length} group(s) unresolved: ${m.unresolved.map(describe).join('; ')}`,
          { path: relPath, unresolved: m.unresolved },
        );
      entry = m.entry;
      conflicts = m.conflicts;
    }
    const abs = path.join(top, ...relPath.split('/'));
    if (entry === null) {
      await git(top, ['rm', '-q', '--', relPath]);
    } else {
      const tmp = scratchPath(ps, 'resolve', relPath);
      try {
        await smudgeToFile(ps, { entry, storage: new Map(), groups: [] }, relPath, tmp);
        await fsp.rename(tmp, abs);
      } finally {
        await fsp.rm(tmp, { force: true });
      }
      await git(top, ['add', '--', relPath]);
    }
    return { path: relPath, strategy: spec, conflicts };
  } finally {
    await ps.close();
  }
}

// ---- mergetool: try and vet ---------------------------------------------------------------------

export interface MergetoolOptions {
  /** Strategy specs to try (`average`, `weighted:alpha=0.3`, …). */
  strategies: readonly string[];
  /** Where candidates go: `<out>/<spec>/<file name>` (default `<git dir>/coral/mergetool/<path>`). */
  out?: string;
  /** Shell command scoring one candidate (`{}` = its directory); its last number on stdout is the score. */
  evalCommand?: string;
  /** Lower scores are better. */
  minimize?: boolean;
  /** Settle the conflict with the best candidate's strategy (`coral git resolve`). */
  pick?: boolean;
}

export interface MergetoolCandidate {
  spec: string;
  dir: string;
  file: string | null;
  ok: boolean;
  error?: string;
  score: number | null;
}

export interface MergetoolReport {
  path: string;
  candidates: MergetoolCandidate[];
  best: MergetoolCandidate | null;
  /** The command that settles the conflict with the best candidate, or null. */
  next: string | null;
  /** Set when `pick` resolved the path. */
  resolved?: ResolveReport;
}

/**
 * `coral git mergetool <path> --try s1 --try s2 [--eval CMD] [--minimize] [--pick]`: writes one
 * candidate file per strategy from the conflicted path's index stages, scores them with the eval
 * command (lib/merge/try.ts: vetCandidates), and names (or, with `pick`, applies) the best. Nothing
 * prompts; the worktree and index change only with `pick`.
 */
export async function mergetool(cwd: string, relPathIn: string, opts: MergetoolOptions): Promise<MergetoolReport> {
  if (!opts.strategies.length) throw invalidParameter('strategies', 'at least one --try strategy', opts.strategies);
  const specs = opts.strategies.map((s) => ({ spec: s, params: parseStrategySpec(s) }));
  const { dirs, top, relPath, base, ours, theirs } = await conflictStages(cwd, relPathIn);
  if (!ours || !theirs)
    throw new MergeConflictError(
      `${relPath} is not a conflicted coral checkpoint on both sides (index stages 2 and 3)`,
      {
        path: relPath,
      },
    );
  const outRoot = path.resolve(cwd, opts.out ?? path.join(dirs.commonDir, 'coral', 'mergetool', relPath));
  const ps = await openPayloads(dirs);
  const candidates: MergetoolCandidate[] = [];
  try {
    for (const { spec, params } of specs) {
      const dir = path.join(outRoot, spec.replace(/[^A-Za-z0-9_.=-]+/g, '_'));
      const c: MergetoolCandidate = { spec, dir, file: null, ok: false, score: null };
      try {
        const m = await mergePointers(ps, relPath, base, ours, theirs, params);
        if (m.unresolved.length)
          throw new MergeConflictError(
            `${m.unresolved.length} group(s) unresolved: ${m.unresolved.map(describe).join('; ')}`,
          );
        await fsp.rm(dir, { recursive: true, force: true });
        await fsp.mkdir(dir, { recursive: true });
        const file = path.join(dir, path.basename(relPath));
        await smudgeToFile(ps, { entry: m.entry, storage: new Map(), groups: [] }, relPath, file);
        c.file = file;
        c.ok = true;
      } catch (e) {
        c.error = (e as Error).message;
      }
      candidates.push(c);
    }
  } finally {
    await ps.close();
  }
  if (opts.evalCommand) {
    const tried = {
      base: null,
      theirs: 'theirs',
      ours: null,
      params: {},
      candidates: candidates.map((c) => ({
        strategy: parseStrategySpec(c.spec).strategy,
        dir: c.dir,
        ok: c.ok,
        files: c.file ? [path.basename(c.file)] : [],
        conflicts: 0,
        resolved: 0,
        ...(c.error ? { error: c.error } : {}),
      })),
    };
    const vetted = vetCandidates('theirs', tried, { command: opts.evalCommand, minimize: !!opts.minimize, cwd: top });
    vetted.candidates.forEach((v, i) => {
      candidates[i].score = v.score;
      if (v.error && !candidates[i].error) candidates[i].error = v.error;
    });
  }
  let best: MergetoolCandidate | null = null;
  for (const c of candidates)
    if (c.score !== null && (!best || (opts.minimize ? c.score < best.score! : c.score > best.score!))) best = c;
  if (!opts.evalCommand && candidates.filter((c) => c.ok).length === 1) best = candidates.find((c) => c.ok)!;
  const report: MergetoolReport = {
    path: relPath,
    candidates,
    best,
    next: best ? `coral git resolve ${relPath} --strategy ${best.spec}` : null,
  };
  if (opts.pick) {
    if (!best) throw new MergeConflictError(`${relPath}: no candidate scored; nothing to pick`, { path: relPath });
    report.resolved = await resolve(cwd, relPathIn, { strategy: best.spec });
  }
  return report;
}
