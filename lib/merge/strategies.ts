/**
 * Per-tensor conflict strategies, from `ours` to TIES, and the `--resolve`
 * glob rules that pick one per tensor name. The three-way classification that
 * decides which tensors conflict lives in three-way.ts; this module only
 * resolves one conflicted tensor. Formulas and rounding: docs/merge-strategies.md.
 *
 * @example
 * const rules = parseResolveRules(['encoder.*=ours', '*.bias=average']);
 * const s = pickStrategy('decoder.0.bias', rules, 'fail');      // 'average'
 * const t = await resolveTensor(s, { base, ours, theirs }, {});
 */
import { InvalidArgumentError, MergeConflictError, UnsupportedError, invalidParameter } from '../errors';
import { DTYPES } from '../tensor/dtype';
import type { Tensor } from '../tensor/tensor';
import {
  checkAlpha, checkDensity, checkDrop, checkLambda, checkSeed, mergeLinear, mergeTaskVectors, type MergePrecision,
} from './numeric';

export type MergeStrategyName =
  | 'ours' | 'theirs' | 'fail' | 'average' | 'weighted' | 'task-arithmetic' | 'ties' | 'dare';

/** Every strategy name, in documentation order. */
export const MERGE_STRATEGIES: readonly MergeStrategyName[] = Object.freeze([
  'ours', 'theirs', 'fail', 'average', 'weighted', 'task-arithmetic', 'ties', 'dare',
] as const);

/** Strategies that compute new values (all inputs must share dtype and shape). */
export const NUMERIC_STRATEGIES: readonly MergeStrategyName[] = Object.freeze([
  'average', 'weighted', 'task-arithmetic', 'ties', 'dare',
] as const);

/** Strategies that need the common ancestor. */
export const BASE_STRATEGIES: readonly MergeStrategyName[] = Object.freeze(['task-arithmetic', 'ties', 'dare'] as const);

export function isMergeStrategy(x: unknown): x is MergeStrategyName {
  return typeof x === 'string' && (MERGE_STRATEGIES as readonly string[]).includes(x);
}
export function isNumericStrategy(s: MergeStrategyName): boolean {
  return (NUMERIC_STRATEGIES as readonly string[]).includes(s);
}

/** The versions of one conflicted tensor. */
export interface MergeInputs {
  /** Common ancestor's version; absent when both sides added the tensor. */
  base?: Tensor;
  ours: Tensor;
  theirs: Tensor;
  /** Further heads (octopus / model soups) for average, task-arithmetic, ties and dare. */
  others?: readonly Tensor[];
}

/** Parameters of the numeric strategies. */
export interface StrategyParams {
  /** weighted (required): result = alpha * ours + (1 - alpha) * theirs, 0 <= alpha <= 1. */
  alpha?: number;
  /** task-arithmetic / ties / dare: scale of the combined task vector; default 1. */
  lambda?: number;
  /** ties (required): fraction of each task vector kept by magnitude, 0 < density <= 1. */
  density?: number;
  /** dare (required): drop probability, 0 <= drop < 1. */
  drop?: number;
  /** dare: PRNG seed; default 0. */
  seed?: number | bigint;
  /** dare: combine the pruned task vectors TIES-style (sign election, disjoint mean) instead of summing. */
  dareTies?: boolean;
  /** Accumulator precision; default 'f64'. */
  precision?: MergePrecision;
  /** Tensor name, used in error messages only. */
  name?: string;
}

function describe(t: Tensor): string {
  return `${t.dtype}[${t.shape.join(', ')}]`;
}

function sameLayout(a: Tensor, b: Tensor): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

function conflict(name: string | undefined, strategy: MergeStrategyName, reason: string, msg: string): MergeConflictError {
  const what = name ? `tensor ${JSON.stringify(name)}` : 'tensor';
  return new MergeConflictError(`${what}: ${msg}`, { tensor: name ?? null, strategy, reason });
}

/**
 * Resolves one conflicted tensor with a strategy. `ours` / `theirs` return the
 * input object itself; `fail` throws MergeConflictError; numeric strategies
 * return a new tensor (same dtype and shape) and throw MergeConflictError when
 * the inputs cannot be combined numerically (dtype or shape mismatch, BOOL,
 * missing ancestor, 64-bit integers beyond 2^53), InvalidArgumentError for bad
 * parameters.
 */
export async function resolveTensor(
  strategy: MergeStrategyName,
  inputs: MergeInputs,
  params: StrategyParams = {},
): Promise<Tensor> {
  const { ours, theirs, base } = inputs;
  const others = inputs.others ?? [];
  const name = params.name;
  switch (strategy) {
    case 'ours':
      return ours;
    case 'theirs':
      return theirs;
    case 'fail':
      throw conflict(name, strategy, 'fail', 'changed differently on both sides (strategy fail)');
    case 'average': case 'weighted': case 'task-arithmetic': case 'ties': case 'dare':
      break;
    default:
      throw invalidParameter('strategy', `one of ${MERGE_STRATEGIES.join(' ')}`, strategy);
  }

  // Parameters first: a typo should not hide behind a data conflict.
  const precision = params.precision;
  let alpha = 0;
  if (strategy === 'weighted') {
    if (params.alpha === undefined) throw invalidParameter('alpha', 'number in [0, 1] (weighted needs --alpha)', undefined);
    alpha = checkAlpha(params.alpha);
    if (others.length) throw invalidParameter('others', 'no further heads (weighted combines exactly ours and theirs)', others);
  }
  const lambda = params.lambda === undefined ? 1 : checkLambda(params.lambda);
  if (strategy === 'ties' && params.density === undefined)
    throw invalidParameter('density', 'number in (0, 1] (ties needs --density)', undefined);
  if (strategy === 'dare' && params.drop === undefined)
    throw invalidParameter('drop', 'number in [0, 1) (dare needs --drop)', undefined);
  const density = strategy === 'ties' ? checkDensity(params.density) : undefined;
  const drop = strategy === 'dare' ? checkDrop(params.drop) : undefined;
  const seed = params.seed === undefined ? 0 : checkSeed(params.seed);

  const models = [ours, theirs, ...others];
  const sides: Array<[string, Tensor]> = [['theirs', theirs], ...others.map((t, i): [string, Tensor] => [`others[${i}]`, t])];
  for (const [label, t] of sides) {
    if (!sameLayout(ours, t))
      throw conflict(name, strategy, t.dtype !== ours.dtype ? 'dtype' : 'shape',
        `ours is ${describe(ours)} but ${label} is ${describe(t)}; a numeric strategy (${strategy}) cannot resolve ` +
        'a dtype or shape mismatch; use ours or theirs');
  }
  if (DTYPES[ours.dtype].kind === 'bool')
    throw conflict(name, strategy, 'dtype', `BOOL tensors cannot be combined numerically (${strategy}); use ours or theirs`);

  try {
    if (strategy === 'average') return await mergeLinear(models, models.map(() => 1 / models.length), { precision });
    if (strategy === 'weighted') return await mergeLinear(models, [alpha, 1 - alpha], { precision });
    if (!base)
      throw conflict(name, strategy, 'no-base',
        `${strategy} needs the common ancestor, but the tensor has none (added on both sides); use ours, theirs or average`);
    if (!sameLayout(ours, base))
      throw conflict(name, strategy, 'base-mismatch',
        `the common ancestor is ${describe(base)} but both sides are ${describe(ours)}; ${strategy} cannot take ` +
        'task vectors across a dtype or shape change; use ours, theirs or average');
    return await mergeTaskVectors(strategy as 'task-arithmetic' | 'ties' | 'dare', base, models, {
      lambda, density, drop, seed, ties: params.dareTies, precision,
    });
  } catch (e) {
    if (e instanceof UnsupportedError) throw conflict(name, strategy, 'unsupported', e.message);
    throw e;
  }
}

// ---- --resolve rules --------------------------------------------------------------------------

/** One `GLOB=STRATEGY` rule. */
export interface ResolveRule {
  readonly pattern: string;
  readonly strategy: MergeStrategyName;
  /** Anchored regular expression compiled from the glob. */
  readonly regex: RegExp;
}

/**
 * Compiles a tensor-name glob. `*` matches any run of characters, dots
 * included (so `encoder.*` covers `encoder.layer.0.weight`); `?` matches one
 * character; `[abc]`, `[a-z]`, `[!a-z]` / `[^a-z]` are character classes; `\`
 * escapes the next character. The whole name must match.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      re += '[\\s\\S]*';
    } else if (c === '?') {
      re += '[\\s\\S]';
    } else if (c === '\\') {
      if (i + 1 >= glob.length) throw invalidParameter('glob', 'pattern not ending in a lone backslash', glob);
      re += escapeRe(glob[++i]);
    } else if (c === '[') {
      let j = i + 1;
      let cls = '';
      if (glob[j] === '!' || glob[j] === '^') {
        cls += '^';
        j++;
      }
      let first = true;
      for (; j < glob.length && (glob[j] !== ']' || first); j++) {
        first = false;
        const d = glob[j];
        if (d === '\\' && j + 1 < glob.length) cls += escapeRe(glob[++j]);
        else if (d === '-' ) cls += '-';
        else cls += escapeRe(d);
      }
      if (j >= glob.length) throw invalidParameter('glob', 'pattern with closed [ ] classes', glob);
      try {
        new RegExp(`[${cls}]`);
      } catch {
        throw invalidParameter('glob', 'pattern with valid [ ] classes', glob);
      }
      re += `[${cls}]`;
      i = j;
    } else {
      re += escapeRe(c);
    }
  }
  return new RegExp(re + '$');
}

function escapeRe(c: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(c) ? `\\${c}` : c;
}

/**
 * Parses `--resolve` specs of the form `GLOB=STRATEGY` (split at the last `=`,
 * so globs may contain `=`). Throws InvalidArgumentError for a missing `=`, an
 * empty glob, a malformed glob or an unknown strategy.
 *
 * @example
 * parseResolveRules(['encoder.*=ours', '*.bias=average'])
 */
export function parseResolveRules(specs: readonly string[]): ResolveRule[] {
  if (!Array.isArray(specs)) throw invalidParameter('resolve', 'array of GLOB=STRATEGY strings', specs);
  return specs.map((spec) => {
    if (typeof spec !== 'string') throw invalidParameter('resolve', 'GLOB=STRATEGY string', spec);
    const at = spec.lastIndexOf('=');
    const pattern = at < 0 ? '' : spec.slice(0, at).trim();
    const strategy = at < 0 ? '' : spec.slice(at + 1).trim();
    if (at < 0 || pattern === '') throw invalidParameter('resolve', 'GLOB=STRATEGY (e.g. "encoder.*=ours")', spec);
    if (!isMergeStrategy(strategy))
      throw invalidParameter('resolve strategy', `one of ${MERGE_STRATEGIES.join(' ')}`, strategy);
    let regex: RegExp;
    try {
      regex = globToRegExp(pattern);
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw invalidParameter('resolve', 'GLOB=STRATEGY with a valid glob', spec);
      throw e;
    }
    return Object.freeze({ pattern, strategy, regex });
  });
}

/**
 * The strategy for one tensor: the LAST rule whose glob matches the whole
 * name wins (later `--resolve` flags override earlier ones, as later lines do
 * in .gitattributes); no match gives `defaultStrategy`.
 */
export function pickStrategy(
  tensorName: string,
  rules: readonly ResolveRule[],
  defaultStrategy: MergeStrategyName,
): MergeStrategyName {
  for (let i = rules.length - 1; i >= 0; i--) if (rules[i].regex.test(tensorName)) return rules[i].strategy;
  return defaultStrategy;
}
