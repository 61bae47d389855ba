/** Refs, HEAD, reflogs, lock files, config, revision parsing and commit-graph queries. */
export { LockFile, withLock, pidAlive, type LockOptions, type LockOwner } from './lock';
export {
  RefStore,
  ZERO_ID,
  type HeadState,
  type ReflogEntry,
  type UpdateRefOptions,
  type HeadUpdateOptions,
  type RefStoreOptions,
} from './refs';
export { resolveRevision, resolveBase, peelToCommit } from './revparse';
export { Config, type ConfigValue } from './config';
export { mergeBase, isAncestor, walkCommits, type WalkOptions } from './ancestry';
export { refNameProblem, isValidRefName, checkRefName, checkShortRefName } from '../models/refname';
