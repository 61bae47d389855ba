/**
 * The built-in strategies, registered in documentation order (the order of
 * `MERGE_STRATEGIES`, of `--help` and of the required-parameter checks).
 *
 * Adding a strategy: write lib/merge/strategies/<name>.ts exporting a
 * `defineStrategy({...})` (see registry.ts) and add it to `BUILTIN` below; the
 * name type, `MERGE_STRATEGIES`, `isMergeStrategy`, parameter validation, the
 * CLI's `--strategy`/`--resolve`/`--try` and the usage line all follow.
 */
import { registerStrategy } from '../registry';
import { average } from './average';
import { dare } from './dare';
import { fail } from './fail';
import { ours } from './ours';
import { taskArithmetic } from './task-arithmetic';
import { theirs } from './theirs';
import { ties } from './ties';
import { weighted } from './weighted';

const BUILTIN = [ours, theirs, fail, average, weighted, taskArithmetic, ties, dare] as const;

/** The name of a registered strategy. */
export type MergeStrategyName = (typeof BUILTIN)[number]['name'];

for (const s of BUILTIN) registerStrategy(s);

/** Every strategy name, in documentation order. */
export const MERGE_STRATEGIES: readonly MergeStrategyName[] = Object.freeze(BUILTIN.map((s) => s.name));

/** Strategies that compute new values (all inputs must share dtype and shape). */
export const NUMERIC_STRATEGIES: readonly MergeStrategyName[] = Object.freeze(
  BUILTIN.filter((s) => s.numeric).map((s) => s.name),
);

/** Strategies that need the common ancestor. */
export const BASE_STRATEGIES: readonly MergeStrategyName[] = Object.freeze(
  BUILTIN.filter((s) => s.needsBase === true).map((s) => s.name),
);

export function isMergeStrategy(x: unknown): x is MergeStrategyName {
  return typeof x === 'string' && (MERGE_STRATEGIES as readonly string[]).includes(x);
}

export function isNumericStrategy(s: MergeStrategyName): boolean {
  return (NUMERIC_STRATEGIES as readonly string[]).includes(s);
}
