// lib/worktree/pathspec.ts: the one place user paths become worktree paths (issue #12 merged context.ts's
// relPath/pathspec into it).
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../lib/errors';
import { displayPath, pathspec, treePath, treePathspec } from '../../../lib/worktree/pathspec';

const wt = path.resolve('/tmp/coral-wt');

describe('pathspec', () => {
  it('resolves against the cwd given, with the root as the empty path', () => {
    expect(pathspec(wt, path.join(wt, 'ckpt'), 'model.pt')).toBe('ckpt/model.pt');
    expect(pathspec(wt, path.join(wt, 'ckpt'), '.')).toBe('ckpt');
    expect(pathspec(wt, wt, '.')).toBe('');
    expect(() => pathspec(wt, wt, '../x')).toThrow(InvalidArgumentError);
  });

  it('treePath refuses the root, paths outside and paths in .coral', () => {
    expect(treePath(wt, path.join(wt, 'a', 'b.safetensors'))).toBe('a/b.safetensors');
    expect(() => treePath(wt, wt)).toThrow(/outside the repository/);
    expect(() => treePath(wt, path.join(wt, '..', 'x'))).toThrow(/outside the repository/);
    expect(() => treePath(wt, path.join(wt, '.coral', 'HEAD'))).toThrow(/inside \.coral/);
  });

  it('treePathspec accepts the root as every path', () => {
    expect(treePathspec(wt, wt)).toBe('');
    expect(treePathspec(wt, path.join(wt, 'd'))).toBe('d');
  });

  it('displayPath shows a worktree path from where the user stands', () => {
    expect(displayPath(wt, path.join(wt, 'ckpt'), 'data/x')).toBe('../data/x');
    expect(displayPath(wt, wt, 'data/x')).toBe('data/x');
  });
});
