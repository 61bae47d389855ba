/**
 * Merge parameters and their one validation. `mergeConfig` checks a whole
 * merge's parameters up front (every value given, and what each strategy in
 * use requires), so a typo does not hide until a conflict shows up;
 * `strategyArgs` checks the parameters of one strategy when `resolveTensor`
 * runs it alone. Both read the same checks (numeric.ts) and the same
 * per-strategy requirements (`requires` in lib/merge/strategies/<name>.ts).
 *
 * @example
 * const cfg = mergeConfig({ strategy: 'ties', density: 0.2, resolve: ['*.bias=average'] });
 * strategyFor(cfg, 'model.safetensors', 'dec.bias'); // 'average'
 */
import { invalidParameter } from '../errors';
import { checkAlpha, checkDensity, checkDrop, checkLambda, checkSeed } from './numeric';
import {
  findStrategy,
  type MergeStrategy,
  type RequiredParam,
  type StrategyArgs,
  type StrategyParams,
} from './registry';
import { parseResolveRules, type ResolveRule } from './rules';
import { isMergeStrategy, MERGE_STRATEGIES, type MergeStrategyName } from './strategies/index';

/** The strategy parameters (alpha, lambda, density, drop, seed, dareTies, precision) plus merge policy. */
export interface MergeParams extends Omit<StrategyParams, 'name'> {
  /** Default strategy for conflicted tensors; default 'fail'. */
  strategy?: MergeStrategyName;
  /** Per-tensor overrides `GLOB=STRATEGY` (last match wins; matched against `tensor` and `file:tensor`). */
  resolve?: readonly string[];
  /** Merge unrelated histories against an empty base. */
  allowUnrelated?: boolean;
}

/** A merge's validated parameters. */
export interface MergeConfig {
  strategy: MergeStrategyName;
  rules: ResolveRule[];
  params: StrategyParams;
  /** Unresolved conflicts keep ours (merge --no-commit) instead of failing the plan. */
  keepUnresolved: boolean;
}

/** `x` as a strategy name, or InvalidArgumentError naming `what`. */
export function checkStrategy(x: unknown, what = 'strategy'): MergeStrategyName {
  if (!isMergeStrategy(x)) throw invalidParameter(what, `one of ${MERGE_STRATEGIES.join(' ')}`, x);
  return x;
}

/** The value checks, in the order they run. */
const CHECKS = { alpha: checkAlpha, lambda: checkLambda, density: checkDensity, drop: checkDrop, seed: checkSeed };

function requireParam(s: MergeStrategy, p: StrategyParams, key: RequiredParam): void {
  const r = s.requires;
  if (r !== undefined && r.param === key && p[key] === undefined) throw invalidParameter(key, r.expected, undefined);
}

/**
 * Checks the parameters one strategy uses and fills in defaults (lambda 1,
 * seed 0). The order is the error precedence `resolveTensor` has always had:
 * alpha, the heads limit, lambda, density, drop, seed.
 */
export function strategyArgs(s: MergeStrategy, p: StrategyParams, others: readonly unknown[]): StrategyArgs {
  const uses = (k: RequiredParam): boolean => s.requires?.param === k;
  requireParam(s, p, 'alpha');
  const alpha = uses('alpha') ? checkAlpha(p.alpha) : 0;
  if (s.twoHeadsOnly !== undefined && others.length) throw invalidParameter('others', s.twoHeadsOnly, others);
  const lambda = p.lambda === undefined ? 1 : checkLambda(p.lambda);
  requireParam(s, p, 'density');
  requireParam(s, p, 'drop');
  const density = uses('density') ? checkDensity(p.density) : undefined;
  const drop = uses('drop') ? checkDrop(p.drop) : undefined;
  const seed = p.seed === undefined ? 0 : checkSeed(p.seed);
  return { alpha, lambda, density, drop, seed, dareTies: p.dareTies, precision: p.precision };
}

/** Validates a merge's parameters before anything is touched; throws InvalidArgumentError. */
export function mergeConfig(o: MergeParams, keepUnresolved = false): MergeConfig {
  const strategy = checkStrategy(o.strategy ?? 'fail');
  const rules = parseResolveRules([...(o.resolve ?? [])]);
  const used = new Set<MergeStrategyName>([strategy, ...rules.map((r) => r.strategy)]);
  for (const k of ['alpha', 'lambda', 'density', 'drop', 'seed'] as const) if (o[k] !== undefined) CHECKS[k](o[k]);
  for (const name of MERGE_STRATEGIES) {
    const s = findStrategy(name);
    if (s && used.has(name) && s.requires) requireParam(s, o, s.requires.param);
  }
  const params: StrategyParams = {};
  for (const k of ['alpha', 'lambda', 'density', 'drop', 'seed', 'dareTies', 'precision'] as const)
    if (o[k] !== undefined) (params as Record<string, unknown>)[k] = o[k];
  return { strategy, rules, params, keepUnresolved };
}

/** The strategy for one item (tensor null = the whole file): the last matching rule, else the default. */
export function strategyFor(cfg: MergeConfig, file: string, name: string | null): MergeStrategyName {
  for (let i = cfg.rules.length - 1; i >= 0; i--) {
    const re = cfg.rules[i].regex;
    if (name === null ? re.test(file) : re.test(name) || re.test(`${file}:${name}`)) return cfg.rules[i].strategy;
  }
  return cfg.strategy;
}

/** The parameters as recorded in a merge commit's metadata (bigint seeds as strings). */
export function paramsRecord(cfg: MergeConfig): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cfg.params)) p[k] = typeof v === 'bigint' ? v.toString() : v;
  return p;
}
