// Symlink entries (lib/worktree/symlink.ts): format 'symlink', no segments or
// tensors; the encoding adds no field, so older trees keep their bytes.
import { describe, expect, it } from 'vitest';
import { CorruptObjectError, InvalidArgumentError } from '../../../lib/errors';
import { canonicalJson, decodeTree, encodeTree } from '../../../lib/models';
import { fileEntry, H, tree } from './fixtures';

const link = (over = {}) =>
  fileEntry({ format: 'symlink', size: 9, segments: [], tensors: [], skeleton: H('a'), ...over });

describe('symlink tree entries', () => {
  it('round-trip with the same keys as any file entry', () => {
    const t = tree({ 'latest.pt': link() });
    const bytes = encodeTree(t);
    expect(decodeTree(bytes)).toEqual(t);
    expect(Object.keys(JSON.parse(bytes.toString()).files['latest.pt']).sort()).toEqual(
      Object.keys(JSON.parse(encodeTree(tree({ x: fileEntry() })).toString()).files.x).sort(),
    );
  });

  it('are rejected with segments, tensors, or an empty or oversized target', () => {
    const base = fileEntry();
    for (const bad of [
      link({ segments: base.segments, tensors: base.tensors, size: base.size }),
      link({ size: 0 }),
      link({ size: 5000 }),
    ]) {
      expect(() => encodeTree(tree({ l: bad }))).toThrow(InvalidArgumentError);
      const stored = Buffer.from(canonicalJson({ type: 'tree', v: 1, files: { l: bad } }));
      expect(() => decodeTree(stored)).toThrow(CorruptObjectError);
    }
  });
});
