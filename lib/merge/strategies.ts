/**
 * Per-tensor conflict strategies, from `ours` to TIES: `resolveTensor` runs
 * one registered strategy (lib/merge/strategies/<name>.ts, registry.ts) on
 * one conflicted tensor, after the checks every numeric strategy shares. The
 * three-way classification that decides which tensors conflict lives in
 * three-way.ts, the `--resolve` rules in rules.ts, parameter validation in
 * params.ts. Formulas and rounding: docs/merge-strategies.md.
 *
 * @example
 * const rules = parseResolveRules(['encoder.*=ours', '*.bias=average']);
 * const s = pickStrategy('decoder.0.bias', rules, 'fail');      // 'average'
 * const t = await resolveTensor(s, { base, ours, theirs }, {});
 */
import { UnsupportedError } from '../errors';
import { DTYPES } from '../tensor/dtype';
import type { Tensor } from '../tensor/tensor';
import { checkStrategy, strategyArgs } from './params';
import { findStrategy, strategyConflict, type MergeInputs, type StrategyParams } from './registry';
import type { MergeStrategyName } from './strategies/index';

export type { MergeInputs, StrategyParams } from './registry';
export {
  BASE_STRATEGIES,
  MERGE_STRATEGIES,
  NUMERIC_STRATEGIES,
  isMergeStrategy,
  isNumericStrategy,
  type MergeStrategyName,
} from './strategies/index';
export { globToRegExp, parseResolveRules, pickStrategy, type ResolveRule } from './rules';

function describe(t: Tensor): string {
  return `${t.dtype}[${t.shape.join(', ')}]`;
}

function sameLayout(a: Tensor, b: Tensor): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
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
  const s = findStrategy(checkStrategy(strategy))!; // every strategy name is registered
  const models = [ours, theirs, ...others];
  if (!s.numeric) return s.resolve({ ...inputs, models, base }, strategyArgs(s, {}, []), name);

  // Parameters first: a typo should not hide behind a data conflict.
  const args = strategyArgs(s, params, others);
  const sides: Array<[string, Tensor]> = [
    ['theirs', theirs],
    ...others.map((t, i): [string, Tensor] => [`others[${i}]`, t]),
  ];
  for (const [label, t] of sides) {
    if (!sameLayout(ours, t))
      throw strategyConflict(
        name,
        strategy,
        t.dtype !== ours.dtype ? 'dtype' : 'shape',
        `ours is ${describe(ours)} but ${label} is ${describe(t)}; a numeric strategy (${strategy}) cannot resolve ` +
          'a dtype or shape mismatch; use ours or theirs',
      );
  }
  if (DTYPES[ours.dtype].kind === 'bool')
    throw strategyConflict(
      name,
      strategy,
      'dtype',
      `BOOL tensors cannot be combined numerically (${strategy}); use ours or theirs`,
    );

  try {
    if (s.needsBase) {
      if (!base)
        throw strategyConflict(
          name,
          strategy,
          'no-base',
          `${strategy} needs the common ancestor, but the tensor has none (added on both sides); use ours, theirs or average`,
        );
      if (!sameLayout(ours, base))
        throw strategyConflict(
          name,
          strategy,
          'base-mismatch',
          `the common ancestor is ${describe(base)} but both sides are ${describe(ours)}; ${strategy} cannot take ` +
            'task vectors across a dtype or shape change; use ours, theirs or average',
        );
    }
    return await s.resolve({ ...inputs, models, base }, args, name);
  } catch (e) {
    if (e instanceof UnsupportedError) throw strategyConflict(name, strategy, 'unsupported', e.message);
    throw e;
  }
}
