/**
 * Decoding any meta object (commit, tree, tag) by its `type` field.
 *
 * @example
 * const m = decodeMeta(bytes);
 * if (m.type === 'commit') console.log(m.value.message);
 */
import { CorruptObjectError } from '../errors';
import { parseCanonical } from './canonical';
import { commitFromJson, type Commit } from './commit';
import { tagFromJson, type TagObject } from './tag';
import { treeFromJson, type Tree } from './tree';

export type MetaType = 'commit' | 'tree' | 'tag';

export type MetaObject =
  { type: 'commit'; value: Commit } | { type: 'tree'; value: Tree } | { type: 'tag'; value: TagObject };

/** Parses meta bytes of any type; CorruptObjectError when malformed or of unknown type. */
export function decodeMeta(bytes: Uint8Array): MetaObject {
  const v = parseCanonical(bytes, 'meta object');
  const type = v !== null && typeof v === 'object' && !Array.isArray(v) ? v.type : undefined;
  switch (type) {
    case 'commit':
      return { type, value: commitFromJson(v) };
    case 'tree':
      return { type, value: treeFromJson(v) };
    case 'tag':
      return { type, value: tagFromJson(v) };
    default:
      throw new CorruptObjectError(`meta object: unknown type ${JSON.stringify(type)}`);
  }
}
