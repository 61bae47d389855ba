import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tempDirs } from '../../helpers/cli';
import { describe, expect, it } from 'vitest';
import { IgnoreRules, walkWorktree } from '../../../lib/worktree/ignore';

const dirs = tempDirs();

function tree(files: Record<string, string>): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-ignore-'));
  dirs.push(d);
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
    fs.writeFileSync(path.join(d, f), text);
  }
  return d;
}

describe('IgnoreRules', () => {
  it('follows gitignore precedence: deeper files win, .coralignore after .gitignore, case-sensitive', async () => {
    const d = tree({
      '.gitignore': '*.bin\n*.tmp\n',
      '.coralignore': '!keep.bin\n',
      'sub/.gitignore': '!*.tmp\n',
      'sub/.coralignore': '/only-here.txt\n',
    });
    const r = new IgnoreRules(d);
    expect(await r.ignores('a.bin', false)).toBe(true);
    expect(await r.ignores('keep.bin', false)).toBe(false);
    expect(await r.ignores('A.BIN', false)).toBe(false);
    expect(await r.ignores('x.tmp', false)).toBe(true);
    expect(await r.ignores('sub/x.tmp', false)).toBe(false);
    expect(await r.ignores('sub/only-here.txt', false)).toBe(true);
    expect(await r.ignores('sub/deeper/only-here.txt', false)).toBe(false);
    const noGit = new IgnoreRules(d, { useGitignore: false });
    expect(await noGit.ignores('a.bin', false)).toBe(false);
  });

  it('a file under an ignored directory stays ignored, even if re-included; the walk keeps tracked ones', async () => {
    const d = tree({
      '.coralignore': 'build/\n!build/keep.txt\n',
      'build/keep.txt': 'k',
      'build/out.txt': 'o',
      'a.txt': 'a',
    });
    const r = new IgnoreRules(d);
    expect(await r.ignores('build/keep.txt', false)).toBe(true);
    expect(await walkWorktree(d, d, { rules: r })).toEqual(['.coralignore', 'a.txt']);
    expect(await walkWorktree(d, d, { rules: r, tracked: new Set(['build/out.txt']) })).toEqual([
      '.coralignore',
      'a.txt',
      'build/out.txt',
    ]);
    expect(await walkWorktree(d, d)).toEqual(['.coralignore', 'a.txt', 'build/keep.txt', 'build/out.txt']);
  });
});
