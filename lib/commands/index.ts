/**
 * The commands: one module per command, each a function `(ctx, options)`
 * over a RepoContext (lib/context.ts) that returns data. `Repository`
 * (lib/repository.ts) is a facade over them; library users with a context of
 * their own (another object store, say) can call them directly.
 *
 * @example
 * import { openContext } from 'coral-native';
 * import { commands } from 'coral-native';
 * const ctx = await openContext('/data/run');
 * console.log((await commands.status(ctx)).files);
 */
export { add, stageTracked, parentBases, type AddOptions, type AddReport } from './add';
export { branches, branchTip, createBranch, deleteBranch, listBranches, type BranchInfo } from './branch';
export { checkout, restoreFromIndex, restorePaths, type CheckoutOptions, type CheckoutReport } from './checkout';
export { commit, type CommitOptions } from './commit';
export { diff, diffIndex, diffWorktree, indexTree, worktreeSide } from './diff';
export { compare, type CompareOptions, type CompareReport } from './compare';
export {
  merge,
  mergeAbort,
  mergeContinue,
  mergeState,
  mergeTry,
  markResolved,
  type MergeOptions,
  type MergeReport,
} from './merge';
export { fsck, type FsckProblem, type FsckReport } from './fsck';
export {
  gc,
  parsePruneExpire,
  DEFAULT_PACK_LIMIT,
  DEFAULT_PRUNE_EXPIRE_SECONDS,
  type GcOptions,
  type GcReport,
} from './gc';
export { log, logCommits, logGraph, mergeBaseOf, topoOrder } from './log';
export { gcRoots } from './reach';
export { init } from './init';
export { rebuildIndex, resetPaths, resetTo, type ResetMode, type ResetReport } from './reset';
export { removePaths, type RemoveOptions } from './rm';
export {
  annotatedTag,
  showCommit,
  showFile,
  exportFile,
  isPlainFile,
  readFileBytes,
  readTensor,
  storedTensors,
} from './show';
export { rebuildSimilarityIndex, similar } from './similar';
export { stats, type StatsReport } from './stats';
export { ignoreRules, listWorktree, status, type FileStatus, type StatusReport } from './status';
export { createTag, deleteTag, tags, type TagInfo } from './tag';
export { clone, cloneDirName, type CloneOptions, type CloneReport } from './clone';
export { fetch, fetchFrom, type FetchOptions, type FetchReport, type RefUpdate } from './fetch';
export { pull, type PullOptions, type PullReport } from './pull';
export { push, pushTo, type PushOptions, type PushReport } from './push';
export { remoteAdd, remoteRemove, remotes, remoteTarget, type RemoteConfig, type RemoteTarget } from './remote';
export { sync, type SyncOptions, type SyncReport, type SyncBranchReport } from './sync';
export { aheadBehind, upstreamStatus, type UpstreamStatus } from './status';
export {
  publish,
  publishLog,
  commitMetrics,
  parseByteSize,
  DEFAULT_SHARD_SIZE,
  PUBLISH_FORMATS,
  type PublishFormat,
  type PublishOptions,
  type PublishReport,
  type PublishRecord,
} from './publish';
export { publishTo, defaultPublishTag, type PublishToOptions, type PublishToReport } from './publish-remote';
export {
  hubGet,
  hubSidecar,
  writeHubSidecar,
  MAX_RANGE_BYTES,
  type HubGetOptions,
  type HubGetReport,
  type HubFileReport,
} from './hub';
