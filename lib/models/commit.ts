/**
 * Commits: a tree, any number of ordered parents, author and committer
 * signatures, a message and free-form JSON metadata (e.g. training step,
 * metrics). Stored as canonical JSON with `"type":"commit","v":1`; the id is
 * sha256 of those bytes (see MetaStore).
 *
 * @example
 * const bytes = encodeCommit({ tree, parents: [], author: sig, committer: sig, message: 'init', metadata: {} });
 * decodeCommit(bytes).message // 'init'
 */
import { CorruptObjectError, InvalidArgumentError } from '../errors';
import { canonicalJson, parseCanonical } from './canonical';
import { checkSignature, type Signature } from './signature';
import { arr, fail, header, metaId, onlyKeys, plainObject, str, type ErrClass } from './validate';

export type { Signature } from './signature';

export interface Commit {
  /** Id of the tree object (sha256 hex). */
  tree: string;
  /** Parent commit ids, in order (first parent first). Empty for a root commit. */
  parents: string[];
  author: Signature;
  committer: Signature;
  message: string;
  /** Free-form JSON data (must be canonical-JSON encodable). */
  metadata: Record<string, unknown>;
}

const KEYS = ['type', 'v', 'tree', 'parents', 'author', 'committer', 'message', 'metadata'] as const;

function check(Err: ErrClass, x: unknown, where: string, stored: boolean): Commit {
  const o = plainObject(Err, x, where);
  if (stored) {
    onlyKeys(Err, o, KEYS, where);
    header(Err, o, 'commit', where);
  } else {
    onlyKeys(Err, o, KEYS.slice(2), where);
  }
  const tree = metaId(Err, o.tree, `${where}.tree`);
  const parents = arr(Err, o.parents, `${where}.parents`).map((p, i) => metaId(Err, p, `${where}.parents[${i}]`));
  if (new Set(parents).size !== parents.length) throw fail(Err, `${where}.parents`, 'duplicate parent id');
  const author = checkSignature(o.author, `${where}.author`, Err);
  const committer = checkSignature(o.committer, `${where}.committer`, Err);
  const message = str(Err, o.message, `${where}.message`);
  const metadata = plainObject(Err, o.metadata, `${where}.metadata`);
  return { tree, parents, author, committer, message, metadata };
}

/** Canonical bytes of a commit. Invalid fields throw InvalidArgumentError naming the field. */
export function encodeCommit(c: Commit): Buffer {
  const v = check(InvalidArgumentError, c, 'commit', false);
  return Buffer.from(canonicalJson({ type: 'commit', v: 1, ...v }), 'utf8');
}

/** Parses and validates commit bytes; anything malformed or non-canonical is a CorruptObjectError. */
export function decodeCommit(bytes: Uint8Array): Commit {
  return commitFromJson(parseCanonical(bytes, 'commit'));
}

/** @internal validates an already parsed (canonical) JSON value as a stored commit. */
export function commitFromJson(v: unknown): Commit {
  return check(CorruptObjectError, v, 'commit', true);
}
