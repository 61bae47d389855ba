/**
 * coral-native: version control for neural-network weights.
 * Public exports only; see docs/api.md.
 */
export * from './errors';
export { DTYPES, DTYPE_NAMES, isDType, dtypeFromCode, type DType, type DTypeInfo } from './tensor/dtype';
export { tensor, numel, byteLength, checkShape, asBytes, typedView, type Tensor } from './tensor/tensor';
export { contentId, contentIdSync, contentIds, xxh3, type ContentId } from './hash';
export { ASYNC_THRESHOLD_BYTES } from './native';
export {
  Repository, type CommitOptions, type LogEntry, type StatusReport, type FileStatus, type AddReport,
} from './repo/repository';
export type { FileChange, TensorChange, TensorMetrics } from './repo/diff';
export type { GcReport, FsckReport, FsckProblem, StatsReport } from './repo/maintenance';
export type { Commit, Tree, FileEntry, SegmentEntry, TensorEntry, TagObject, Signature } from './models';
import { native } from './native';

/** Native runtime facts and knobs. */
export const runtime = {
  /** sha256 of the native sources the loaded binary was built from. */
  sourceDigest: native.sourceDigest,
  features: native.features,
  threads: (): number => native.threads(),
  setThreads: (n: number): void => native.setThreads(n),
  counters: () => native.counters(),
};
