// .coralignore (and .gitignore unless core.useGitignore is false), with
// gitignore syntax, in any directory: `add <dir>` and the untracked list skip
// ignored paths; naming one in `add` is refused without -f; tracked files stay
// tracked.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coral, ok, tmpdir, tempDirs } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });

function write(d: string, files: Record<string, string>): void {
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
    fs.writeFileSync(path.join(d, f), text);
  }
}

function staged(d: string): string[] {
  return (JSON.parse(ok(d, ['status', '--json'])).files as Array<{ path: string }>).map((f) => f.path);
}

function untracked(d: string): string[] {
  return JSON.parse(ok(d, ['status', '--json'])).untracked as string[];
}

/** A worktree with root and nested ignore files of both kinds. */
function project(): string {
  const d = tmpdir();
  dirs.push(d);
  ok(d, ['init']);
  write(d, {
    '.coralignore': '__pycache__/\n*.py\n!keep.py\n*.log\n',
    '.gitignore': 'wandb/\n',
    'model.npy': 'x',
    'train.py': 'print(1)\n',
    'keep.py': 'print(2)\n',
    '__pycache__/train.cpython-311.pyc': 'pyc',
    'runs/__pycache__/a.pyc': 'pyc',
    'runs/a.log': 'log',
    'runs/.coralignore': '!keep.log\n*.tmp\n',
    'runs/keep.log': 'log',
    'runs/b.tmp': 'tmp',
    'b.tmp': 'tmp',
    'wandb/run-1/files.txt': 'w',
  });
  return d;
}

describe('ignore files', () => {
  it('add . and the untracked list skip ignored paths, with nested files and negations as git does', () => {
    const d = project();
    const expected = [
      '.coralignore',
      '.gitignore',
      'b.tmp',
      'keep.py',
      'model.npy',
      'runs/.coralignore',
      'runs/keep.log',
    ];
    expect(untracked(d)).toEqual(expected);
    ok(d, ['add', '.']);
    expect(staged(d)).toEqual(expected);
    expect(untracked(d)).toEqual([]);
    // add <dir> below the root uses the same rules.
    write(d, { 'runs/c.log': 'log', 'runs/c.npy': 'y' });
    ok(d, ['add', 'runs']);
    expect(staged(d)).toContain('runs/c.npy');
    expect(staged(d)).not.toContain('runs/c.log');
  });

  it('naming an ignored path is refused with a hint to use -f; -f adds it; tracked files stay tracked', () => {
    const d = project();
    for (const p of ['train.py', '__pycache__/train.cpython-311.pyc', 'runs/__pycache__', 'wandb']) {
      const r = coral(d, ['add', p]);
      expect(r.code, p).not.toBe(0);
      expect(r.stderr).toContain('ignored');
      expect(r.stderr).toContain('-f');
    }
    expect(staged(d)).toEqual([]);
    ok(d, ['add', '-f', 'train.py']);
    ok(d, ['add', '--force', 'wandb']);
    expect(staged(d)).toEqual(['train.py', 'wandb/run-1/files.txt']);
    ok(d, ['commit', '-m', 'forced']);
    // A tracked file matching a pattern: status reports its edit, add . stages it, naming it works.
    write(d, { 'train.py': 'print(3)\n' });
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([
      { path: 'train.py', staged: null, unstaged: 'modified' },
    ]);
    ok(d, ['add', '.']);
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toContainEqual({
      path: 'train.py',
      staged: 'modified',
      unstaged: null,
    });
    write(d, { 'train.py': 'print(4)\n', 'wandb/run-1/files.txt': 'w2' });
    ok(d, ['add', 'train.py', 'wandb']);
    expect(staged(d)).toContain('wandb/run-1/files.txt');
    expect(untracked(d)).not.toContain('wandb/run-1/files.txt');
  });

  it('core.useGitignore false: only .coralignore counts', () => {
    const d = project();
    expect(untracked(d).some((f) => f.startsWith('wandb/'))).toBe(false);
    ok(d, ['config', 'core.useGitignore', 'false']);
    expect(untracked(d)).toContain('wandb/run-1/files.txt');
    expect(untracked(d)).not.toContain('train.py');
  });
});
