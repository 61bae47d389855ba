/**
 * The merge-strategy registry: what a per-tensor strategy is, and the table
 * that holds them. A strategy is one file in lib/merge/strategies/ that
 * exports a `defineStrategy({...})`; lib/merge/strategies/index.ts lists the
 * built-ins in documentation order and registers them. `resolveTensor`
 * (strategies.ts) runs the shared part (parameter checks, layout checks, the
 * base requirement) and then the strategy's `resolve`.
 *
 * @example
 * export const average = defineStrategy({
 *   name: 'average',
 *   numeric: true,
 *   resolve: ({ models }, a) => mergeLinear(models, models.map(() => 1 / models.length), { precision: a.precision }),
 * });
 */
import { InvalidArgumentError, MergeConflictError } from '../errors';
import type { Tensor } from '../tensor/tensor';
import type { MergePrecision } from './numeric';

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

/** The parameters a strategy may require (see `MergeStrategy.requires`). */
export type RequiredParam = 'alpha' | 'density' | 'drop';

/** Validated parameters with their defaults, as a numeric strategy's `resolve` receives them (params.ts). */
export interface StrategyArgs {
  alpha: number;
  lambda: number;
  density: number | undefined;
  drop: number | undefined;
  seed: number | bigint;
  dareTies: boolean | undefined;
  precision: MergePrecision | undefined;
}

/** What a numeric strategy's `resolve` receives besides its arguments. */
export interface NumericInputs {
  /** [ours, theirs, ...others]: same dtype and shape, checked. */
  models: readonly Tensor[];
  /** The common ancestor (same dtype and shape as ours) when the strategy `needsBase`. */
  base: Tensor | undefined;
}

/** One per-tensor merge strategy. */
export interface MergeStrategy<N extends string = string> {
  readonly name: N;
  /**
   * Numeric strategies compute new values: `resolveTensor` first checks their
   * parameters and that every input shares dtype and shape (not BOOL), and turns
   * an UnsupportedError of the kernels into a MergeConflictError.
   */
  readonly numeric: boolean;
  /** Needs the common ancestor (task vectors): a missing or reshaped base is a conflict. */
  readonly needsBase?: boolean;
  /** A parameter the strategy cannot run without, and the expectation its error names. */
  readonly requires?: { readonly param: RequiredParam; readonly expected: string };
  /** Set when the strategy combines exactly ours and theirs: the expectation for `others`. */
  readonly twoHeadsOnly?: string;
  /**
   * Resolves one tensor. Non-numeric strategies get the raw inputs (and may
   * throw MergeConflictError through `strategyConflict`); numeric ones get
   * checked inputs and arguments.
   */
  resolve(inputs: MergeInputs & NumericInputs, args: StrategyArgs, name: string | undefined): Promise<Tensor>;
}

/** Types a strategy definition (keeps its literal name, so the name union derives from the list). */
export function defineStrategy<N extends string>(s: MergeStrategy<N>): MergeStrategy<N> {
  return Object.freeze(s);
}

const registry = new Map<string, MergeStrategy>();

/** Adds a strategy; its name must be new. Registration order is documentation order. */
export function registerStrategy(s: MergeStrategy): void {
  if (registry.has(s.name))
    throw new InvalidArgumentError(`merge strategy ${JSON.stringify(s.name)} is already registered`);
  registry.set(s.name, s);
}

/** The registered strategy of that name, or undefined. */
export function findStrategy(name: unknown): MergeStrategy | undefined {
  return typeof name === 'string' ? registry.get(name) : undefined;
}

/** Every registered strategy, in registration order. */
export function registeredStrategies(): MergeStrategy[] {
  return [...registry.values()];
}

/** The MergeConflictError a strategy throws for a tensor it cannot resolve (`reason` is API: 'dtype', 'shape'…). */
export function strategyConflict(
  name: string | undefined,
  strategy: string,
  reason: string,
  msg: string,
): MergeConflictError {
  const what = name ? `tensor ${JSON.stringify(name)}` : 'tensor';
  return new MergeConflictError(`${what}: ${msg}`, { tensor: name ?? null, strategy, reason });
}
