/** Pure value types <-> canonical bytes (no I/O), plus the loose meta object store. */
export {
  canonicalJson,
  sha256Hex,
  isSha256Hex,
  parseCanonical,
  MAX_JSON_DEPTH,
  MAX_META_BYTES,
  type JsonValue,
} from './canonical';
export {
  checkSignature,
  signatureNow,
  formatSignatureDate,
  formatTzOffset,
  parseTzOffset,
  MAX_TZ_OFFSET,
  type Signature,
} from './signature';
export { encodeCommit, decodeCommit, type Commit } from './commit';
export {
  encodeTree,
  decodeTree,
  checkTreePath,
  fileTable,
  treePathProblem,
  MAX_PATH_LENGTH,
  type Tree,
  type FileEntry,
  type SegmentEntry,
  type TensorEntry,
  type LossyMark,
} from './tree';
export { encodeTag, decodeTag, type TagObject } from './tag';
export { decodeMeta, type MetaObject, type MetaType } from './meta';
export { refNameProblem, isValidRefName, checkRefName, checkShortRefName } from './refname';
