/**
 * The git extension: checkpoints in an ordinary git repository (docs/git.md).
 * git keeps history, branches and remotes; coral keeps the payloads (in
 * `.git/coral/`) and makes checkpoint files small, diffable and mergeable
 * per parameter group.
 */
export {
  install,
  uninstall,
  track,
  untrack,
  trackedPatterns,
  filterConfig,
  coralCommand,
  rootPattern,
} from './install';
export type { InstallOptions, InstallReport, TrackOptions } from './install';
export { runFilterProcess, parentGitCommand } from './process';
export { serveFilter, type FilterOps, type FilterOptions } from './filter';
export { PktReader, PktWriter, MAX_PKT_DATA } from './pktline';
export { formatPointer, parsePointer, looksLikePointer, type Pointer, type Storage } from './pointer';
export { openPayloads, cleanFile, smudgeChunks, type Payloads } from './payloads';
export { gitDirs, type GitDirs } from './gitcmd';
export { runDiffDriver, runTextconv, diffPointers, formatCheckpointDiff, pointerSummary } from './diff';
export type { CheckpointDiff } from './diff';
export { runMergeDriver, resolve, mergetool, mergePointers, parseStrategySpec, strategyForPath } from './merge';
export type { ResolveOptions, ResolveReport, PointerMerge, MergetoolOptions, MergetoolReport } from './merge';
export { prePush, fetchPayloads, pushPayloads, coralRemoteUrl, withPayloads } from './transfer';
export type { PrePushReport, FetchReport } from './transfer';
export { gcPayloads, type GitGcReport } from './gc';
