/**
 * Merging: three-way classification (three-way.ts), per-tensor strategies
 * (strategies.ts over the registry.ts table, one file each in strategies/)
 * and the numeric kernels' typed wrapper (numeric.ts). The repository-level
 * pieces are params.ts, planner.ts (+ assemble.ts), prepared.ts, state.ts and
 * try.ts; the merge command itself is lib/commands/merge.ts.
 */
export * from './three-way';
export * from './strategies';
export * from './numeric';
