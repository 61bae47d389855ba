/**
 * Merging: three-way classification (three-way.ts), per-tensor strategies
 * (strategies.ts) and the numeric kernels' typed wrapper (numeric.ts). The
 * repository-level merge (refs, worktree, state) is lib/repo/merge.ts.
 */
export * from './three-way';
export * from './strategies';
export * from './numeric';
