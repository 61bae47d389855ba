/**
 * Annotated tags: a named, signed pointer to a commit with a message and JSON
 * metadata (e.g. evaluation metrics of the tagged checkpoint). Stored as
 * canonical JSON with `"type":"tag","v":1`. The ref `refs/tags/<tag>` points at
 * the tag object; revision parsing peels it to the commit.
 *
 * @example
 * encodeTag({ object: commitId, tag: 'v1.0', tagger: sig, message: 'release', metadata: { acc: 0.91 } });
 */
import { CorruptObjectError, InvalidArgumentError } from '../errors';
import { canonicalJson, parseCanonical } from './canonical';
import { refNameProblem } from './refname';
import { checkSignature, type Signature } from './signature';
import { fail, header, metaId, onlyKeys, plainObject, str, type ErrClass } from './validate';

export interface TagObject {
  /** The tagged commit id. */
  object: string;
  /** Tag name (the part after refs/tags/). */
  tag: string;
  tagger: Signature;
  message: string;
  /** Free-form JSON data, e.g. metrics. */
  metadata: Record<string, unknown>;
}

const KEYS = ['type', 'v', 'object', 'tag', 'tagger', 'message', 'metadata'] as const;

function check(Err: ErrClass, x: unknown, where: string, stored: boolean): TagObject {
  const o = plainObject(Err, x, where);
  if (stored) {
    onlyKeys(Err, o, KEYS, where);
    header(Err, o, 'tag', where);
  } else {
    onlyKeys(Err, o, KEYS.slice(2), where);
  }
  const object = metaId(Err, o.object, `${where}.object`);
  const tag = str(Err, o.tag, `${where}.tag`);
  const problem = refNameProblem(tag);
  if (problem) throw fail(Err, `${where}.tag`, `${JSON.stringify(tag)} is not a valid tag name: ${problem}`);
  const tagger = checkSignature(o.tagger, `${where}.tagger`, Err);
  const message = str(Err, o.message, `${where}.message`);
  const metadata = plainObject(Err, o.metadata, `${where}.metadata`);
  return { object, tag, tagger, message, metadata };
}

/** Canonical bytes of an annotated tag. */
export function encodeTag(t: TagObject): Buffer {
  const v = check(InvalidArgumentError, t, 'tag', false);
  return Buffer.from(canonicalJson({ type: 'tag', v: 1, ...v }), 'utf8');
}

/** Parses and validates tag bytes (CorruptObjectError when malformed). */
export function decodeTag(bytes: Uint8Array): TagObject {
  return tagFromJson(parseCanonical(bytes, 'tag'));
}

/** @internal */
export function tagFromJson(v: unknown): TagObject {
  return check(CorruptObjectError, v, 'tag', true);
}
