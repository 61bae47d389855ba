/**
 * coral-native: version control for neural-network weights.
 * Public exports only; see docs/api.md.
 */
// fromNative (native error mapping) stays internal.
export {
  CoralError,
  InvalidArgumentError,
  CorruptObjectError,
  ChecksumMismatchError,
  BaseMismatchError,
  UnsupportedError,
  OutOfMemoryError,
  IoError,
  Hdf5Error,
  NativeNotFoundError,
  InternalError,
  FormatError,
  UnsupportedFormatError,
  UnsafePickleError,
  LimitExceededError,
  NotARepositoryError,
  AlreadyExistsError,
  ObjectNotFoundError,
  RefNotFoundError,
  LockedError,
  RefConflictError,
  NothingToCommitError,
  DirtyWorktreeError,
  MergeConflictError,
  InProgressError,
  UnsafePathError,
  CorruptIndexError,
  RemoteNotFoundError,
  RemoteAuthError,
  RemoteUnavailableError,
  NonFastForwardError,
  RemoteUnsafeError,
  RemoteRejectedError,
  PermissionDeniedError,
  WeightMismatchError,
  GitCommandError,
  GitProtocolError,
  invalidParameter,
  type CoralCode,
} from './errors';
export { DTYPES, DTYPE_NAMES, isDType, dtypeFromCode, type DType, type DTypeInfo } from './tensor/dtype';
export { tensor, numel, byteLength, checkShape, asBytes, typedView, type Tensor } from './tensor/tensor';
export { contentId, contentIdSync, contentIds, xxh3, type ContentId } from './hash';
export { ASYNC_THRESHOLD_BYTES } from './native';
// ---- checkpoint formats (lib/formats) ----
export * as formats from './formats';
export {
  detectFormat,
  scanCheckpoint,
  readSegment,
  tensorFromSegment,
  skeletonRanges,
  type CheckpointLayout,
  type CheckpointFormat,
  type Segment,
  type TensorInfo,
} from './formats/layout';
export { SafetensorsFile, readSafetensors, writeSafetensors, serializeSafetensors } from './formats/safetensors';
export { PyTorchFile, loadStateDict, readPyTorch, savePyTorch, serializePyTorch } from './formats/pytorch';
export { readNpy, writeNpy, serializeNpy, readNpz, writeNpz, serializeNpz } from './formats/numpy';
export {
  fingerprint,
  fingerprintSync,
  fingerprints,
  cosine as tensorCosine,
  estimateSimilarity,
  similarityFromHamming,
  maxHammingFor,
  encodeFingerprint,
  decodeFingerprint,
  SMALL_TENSOR_NUMEL,
  SimilarityIndex,
  SimilarityStore,
  bandRecall,
  defaultBandBits,
  type Fingerprint,
  type FingerprintOptions,
  type TensorCosine,
  type SimilarityHit,
  type QueryOptions as SimilarityQueryOptions,
  type IndexOptions as SimilarityIndexOptions,
  type IndexRecord,
  type EntryMeta as SimilarityEntryMeta,
  type StoreOptions as SimilarityStoreOptions,
} from './similarity';
export {
  encode,
  encodeSync,
  decode,
  decodeSync,
  inspectObject,
  estimate,
  CODEC_NAMES,
  CODEC_ALIASES,
  LOSSLESS_CODECS,
  LOSSY_CODECS,
  type CodecName,
  type CodecAlias,
  type EncodeOptions,
  type EncodedObject,
  type DecodeOptions,
  type ObjectHeader,
  type LossyOptions,
  type BaseRef,
  castTensor,
  castTensorSync,
  baseRelation,
  DERIVED_CODECS,
  CAST_ROUNDINGS,
} from './codec';
export {
  Repository,
  type CommitOptions,
  type LogEntry,
  type StatusReport,
  type FileStatus,
  type AddReport,
} from './repository';
export type { FileChange, TensorChange, TensorMetrics } from './diff/tensor-diff';
// ---- the commands behind Repository, over a repository context (lib/commands, lib/context.ts) ----
export * as commands from './commands';
export {
  openContext,
  contextAt,
  findWorktree,
  DEFAULT_CONFIG,
  type RepoContext,
  type OpenOptions,
  type StoreFactory,
} from './context';
// ---- what the CLI prints, as library calls (diff, log, status paths, show, config schema) ----
export { diffSides, summarizeChanges, type DiffSide, type DiffSummary } from './diff/tensor-diff';
export { diffWorktree, type WorktreeDiffContext } from './commands/diff';
export {
  publish,
  publishLog,
  parseByteSize,
  type PublishFormat,
  type PublishOptions,
  type PublishReport,
  type PublishRecord,
} from './commands/publish';
export { publishTo, defaultPublishTag, type PublishToOptions, type PublishToReport } from './commands/publish-remote';
export {
  hubGet,
  hubSidecar,
  writeHubSidecar,
  type HubGetOptions,
  type HubGetReport,
  type HubFileReport,
} from './commands/hub';
export { HubClient, SIDECAR_SUFFIX, type HubFile, type Sidecar, type SidecarTensor } from './remote/hf-hub';
export {
  logCommits,
  logGraph,
  type LogOptions,
  type GraphRow,
  type HistoryContext,
  type HistoryEntry,
  commitNotes,
  commitMetric,
  type CommitNotes,
} from './commands/log';
export { parseLossySpec } from './ingest/lossy';
export type { LossySpec } from './odb/objects';
export type { LossyMark } from './models/tree';
export { pathspec, displayPath } from './worktree/pathspec';
export { listBranches, type BranchInfo } from './commands/branch';
export { annotatedTag, isPlainFile, readFileBytes, storedTensors, type StoredTensorInfo } from './commands/show';
export {
  CONFIG_SCHEMA,
  STRICT_SECTIONS,
  checkConfigValue,
  configKeyInfo,
  isKnownConfigKey,
  setConfigValue,
  type ConfigKeyInfo,
} from './refs/config-schema';
export type { GcReport } from './commands/gc';
export type { FsckReport, FsckProblem } from './commands/fsck';
export type { StatsReport } from './commands/stats';
export type { AddOptions } from './repository';
export { IgnoreRules } from './worktree/ignore';
export type { Commit, Tree, FileEntry, SegmentEntry, TensorEntry, TagObject, Signature } from './models';
import { native } from './native';

/** Native runtime facts and knobs. */
export const runtime = {
  /** sha256 of the native sources the loaded binary was built from. */
  get sourceDigest(): string {
    return native.sourceDigest;
  },
  get features(): typeof native.features {
    return native.features;
  },
  threads: (): number => native.threads(),
  setThreads: (n: number): void => native.setThreads(n),
  counters: () => native.counters(),
};
// ---- bookkeeping: canonical models, meta store, refs, locks, config, revisions, ancestry ----
export * from './models';
export { MetaStore, MIN_PREFIX_LENGTH } from './odb/meta-store';
// Lock/liveness internals (LockFile, withLock, pidAlive), ZERO_ID, resolveBase, peelToCommit stay internal.
export {
  RefStore,
  resolveRevision,
  Config,
  mergeBase,
  isAncestor,
  walkCommits,
  refNameProblem,
  isValidRefName,
  checkRefName,
  checkShortRefName,
  type HeadState,
  type ReflogEntry,
  type UpdateRefOptions,
  type HeadUpdateOptions,
  type RefStoreOptions,
  type ConfigValue,
  type WalkOptions,
} from './refs';
// ---- merge strategies (lib/merge/strategies.ts, lib/merge/numeric.ts) ----
export {
  resolveTensor,
  parseResolveRules,
  pickStrategy,
  globToRegExp,
  isMergeStrategy,
  isNumericStrategy,
  MERGE_STRATEGIES,
  NUMERIC_STRATEGIES,
  BASE_STRATEGIES,
  type MergeStrategyName,
  type MergeInputs,
  type StrategyParams,
  type ResolveRule,
} from './merge/strategies';
export {
  mergeLinear,
  mergeTaskVectors,
  convertTensor,
  type MergePrecision,
  type NumericOptions,
  type TaskVectorOptions,
} from './merge/numeric';
// ---- tensor-aware merge (lib/merge/three-way.ts, lib/commands/merge.ts, lib/merge/try.ts) ----
export {
  classify3,
  classifyFiles,
  classifyTensors,
  isConflict,
  sameTensor,
  sameFile,
  type MergeKind,
  type Classification,
  type ItemClassification,
  type TensorVersion,
  type FileVersion,
} from './merge/three-way';
export type {
  MergeOptions,
  MergeParams,
  MergeReport,
  MergeItem,
  MergeConflict,
  MergeStateFile,
  TryCandidate,
} from './commands/merge';
export {
  vetCandidates,
  parseScore,
  paramFlags,
  TRY_DEFAULTS,
  type MergeTryResult,
  type VetOptions,
  type VettedCandidate,
  type MergeVetReport,
} from './merge/try';
// ---- object store (lib/store) ----
export {
  LocalPackStore,
  MemoryStore,
  openLocalStore,
  type ObjectStore,
  type ObjectAttrs,
  type StoredAttrs,
  type StoredObject,
  type PackTransaction,
  type PackInfo,
  type RepackOptions,
  type RepackResult,
  type StoreProblem,
  type StoreProblemKind,
  type LocalPackStoreOptions,
} from './store';
// ---- delta-aware ingestion and provenance (lib/ingest/bases.ts, lib/ingest/similarity.ts) ----
export type { BaseCandidate, SelectorStats, IngestPolicy } from './ingest/bases';
export {
  rebuildSimilarityIndex,
  similarCheckpoints,
  similaritySettings,
  DEFAULT_SIMILARITY,
  type SimilaritySettings,
  type SimilarTarget,
  type SimilarOptions,
  type SimilarMatch,
  type SimilarReport,
  type RebuildReport,
} from './ingest/similarity';
// ---- what the CLI prints, as library calls (issue #12: every printed number comes from one of these) ----
export { compare, type CompareOptions, type CompareReport, type CompareSide } from './commands/compare';
export { showFile, showCommit, type ShowFileReport, type ShowCommitReport } from './commands/show';
export { diffIndex } from './commands/diff';
export { branchTip } from './commands/branch';
export { rebuildObjectIndex } from './store';
export { parsePruneExpire, type GcOptions } from './commands/gc';
// ---- remotes (lib/remote, lib/commands/{remote,push,fetch,pull,clone,sync}.ts; docs/remotes.md) ----
export { openRemote, transportOf } from './remote/open';
export { initBare, isBareRepository, BARE_MARKER } from './remote/file';
export {
  transfer,
  globFilter,
  type TransferSide,
  type TransferOptions,
  type TransferReport,
  type ObjectFilter,
} from './remote/negotiate';
export { PromisorStore, isPromised } from './remote/promisor';
export { remoteConfig, upstreamOf, type Upstream } from './remote/config';
export type { RemoteRepo, RemoteMeta, RemoteRefValue, OpenRemoteOptions } from './remote/transport';
export { openS3ObjectStore } from './store/s3/open';
export type { S3ObjectStore, S3ObjectStoreOptions, S3TransferStats } from './store/s3/store';
export type { CloneOptions, CloneReport } from './commands/clone';
export type { FetchOptions, FetchReport, RefUpdate } from './commands/fetch';
export type { PullOptions, PullReport } from './commands/pull';
export type { PushOptions, PushReport } from './commands/push';
export type { RemoteConfig, RemoteTarget } from './commands/remote';
export type { SyncOptions, SyncReport, SyncBranchReport } from './commands/sync';
export type { UpstreamStatus } from './commands/status';
// ---- coral serve (lib/server; docs/serve.md, docs/remotes.md) ----
export {
  buildServer,
  startServer,
  addToken,
  listTokens,
  revokeToken,
  setAnonymousRead,
  readServeConfig,
  setServeConfig,
  type CoralServer,
  type ServerOptions,
  type ServeLocation,
  type TokenInfo,
  type RouteModule,
  type ServerDeps,
  type ServerLimits,
  type Scope,
} from './server/index';
// ---- the client of `coral serve` (lib/client; docs/serve.md) ----
export {
  CoralClient,
  type CoralClientOptions,
  type ClientIngestOptions,
  type IngestProgress,
  type IngestSource,
  type IngestReply,
} from './client/client';
// ---- training integrations (lib/train; docs/training.md) ----
export {
  CheckpointManager,
  MODEL_FILE,
  OPTIMIZER_FILE,
  type TrainingState,
  type CheckpointManagerOptions,
  type CheckpointInfo,
  type CheckpointRef,
  type SaveHandle,
  type RetentionReport,
  type LoadedCheckpoint,
} from './train/checkpoint';
export {
  ExperimentTracker,
  Run,
  EXPERIMENT_PREFIX,
  type MetricPoint,
  type RunStatus,
  type RunSummary,
  type RunDetail,
  type RunComparison,
} from './train/experiment';
export { renderPlot, niceTicks, PALETTE, type PlotSeries, type PlotOptions, type RenderedPlot } from './train/plot';
export { Raster, encodePng } from './train/png';
export {
  CoralCallback,
  loadIntoModel,
  saveModel,
  modelWeights,
  optimizerWeights,
  weightName,
  type CoralCallbackOptions,
  type TfModelLike,
  type TfModuleLike,
  type TfTensorLike,
  type TfVariableLike,
} from './train/tfjs';
export { CheckpointWatcher, type WatchCommit, type WatchOptions, type WatchRepo } from './train/watch';
// ---- the git extension (lib/git, docs/git.md) ----
export * as gitExtension from './git/index';
