// The working-tree primitives (lib/worktree/files.ts), in process, on a real
// temp directory: nothing is written or deleted beyond a symlink or into
// .coral, failures leave no temp file, emptied directories go away.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChecksumMismatchError, DirtyWorktreeError, UnsafePathError } from '../../../lib/errors';
import { RepoLayout } from '../../../lib/layout';
import {
  checkNotInCoral,
  checkWritable,
  isWorktreeTempName,
  lstatWorktree,
  placeWorktreeFile,
  removeWorktreeFile,
  sweepStaleTemps,
  writeWorktreeFile,
  writeWorktreeSymlink,
} from '../../../lib/worktree/files';

let top: string;
let layout: RepoLayout;
beforeEach(() => {
  top = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-wtu-'));
  fs.mkdirSync(path.join(top, 'repo', '.coral', 'refs', 'heads'), { recursive: true });
  fs.writeFileSync(path.join(top, 'repo', '.coral', 'refs', 'heads', 'main'), 'old\n');
  fs.mkdirSync(path.join(top, 'outside'));
  fs.writeFileSync(path.join(top, 'outside', 'x'), 'precious');
  layout = new RepoLayout(path.join(top, 'repo'));
});
afterEach(() => fs.rmSync(top, { recursive: true, force: true }));

const w = (rel: string) => path.join(layout.worktree, ...rel.split('/'));
const bytes = Buffer.from('new bytes');
const expect1 = { size: bytes.length, sha256: crypto.createHash('sha256').update(bytes).digest('hex') };
async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}
function leftovers(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (isWorktreeTempName(e.name) || /^wt-\d+-/.test(e.name)) out.push(path.join(d, e.name));
      if (e.isDirectory()) walk(path.join(d, e.name));
    }
  };
  walk(top);
  return out;
}

describe('writeWorktreeFile', () => {
  it('creates parents, verifies, renames, and leaves no temp file', async () => {
    expect(await writeWorktreeFile(layout, 'a/b/c.bin', [bytes], { expect: expect1 })).toEqual(expect1);
    expect(fs.readFileSync(w('a/b/c.bin'))).toEqual(bytes);
    expect(leftovers()).toEqual([]);
  });

  it('refuses a path beyond a symlinked directory (outside, or into .coral), with or without clobber', async () => {
    fs.symlinkSync(path.join(top, 'outside'), w('sub'));
    fs.symlinkSync('.coral/refs/heads', w('lnk'));
    for (const clobber of [false, true]) {
      expect(await code(writeWorktreeFile(layout, 'sub/x', [bytes], { clobber }))).toBe(UnsafePathError.code);
      expect(await code(writeWorktreeFile(layout, 'lnk/main', [bytes], { clobber }))).toBe(UnsafePathError.code);
      expect(await code(writeWorktreeSymlink(layout, 'lnk/main', '/etc/passwd', { clobber }))).toBe(
        UnsafePathError.code,
      );
    }
    expect(await code(checkWritable(layout, ['ok/file', 'sub/x']))).toBe(UnsafePathError.code);
    await checkWritable(layout, ['sub/x'], (p) => p === 'sub'); // a tracked link about to be removed
    expect(fs.readFileSync(path.join(top, 'outside', 'x'), 'utf8')).toBe('precious');
    expect(fs.readFileSync(path.join(layout.coral, 'refs', 'heads', 'main'), 'utf8')).toBe('old\n');
    expect(leftovers()).toEqual([]);
  });

  it('refuses when the real path of the directory is inside .coral (the worktree root itself reached through a link)', async () => {
    // A worktree whose `.coral` is reached by another name: the real-path check catches what the name check cannot.
    expect(
      await code(
        writeWorktreeFile({ worktree: layout.coral, coral: layout.coral, tmp: layout.tmp }, 'refs/heads/main', [bytes]),
      ),
    ).toBe(UnsafePathError.code);
    expect(fs.readFileSync(path.join(layout.coral, 'refs', 'heads', 'main'), 'utf8')).toBe('old\n');
  });

  it('replaces a symlink at the destination itself, never its target', async () => {
    fs.symlinkSync(path.join(top, 'outside', 'x'), w('f'));
    await writeWorktreeFile(layout, 'f', [bytes]);
    expect(fs.lstatSync(w('f')).isFile()).toBe(true);
    expect(fs.readFileSync(path.join(top, 'outside', 'x'), 'utf8')).toBe('precious');
  });

  it('on a checksum mismatch keeps the old file and removes the temp file', async () => {
    fs.writeFileSync(w('f'), 'old');
    expect(
      await code(writeWorktreeFile(layout, 'f', [bytes], { expect: { ...expect1, sha256: '0'.repeat(64) } })),
    ).toBe(ChecksumMismatchError.code);
    expect(fs.readFileSync(w('f'), 'utf8')).toBe('old');
    expect(leftovers()).toEqual([]);
  });

  it('replaces an empty directory, refuses a non-empty one and a file in the way (unless clobber)', async () => {
    fs.mkdirSync(w('d/e'), { recursive: true });
    await writeWorktreeFile(layout, 'd/e', [bytes]);
    expect(fs.readFileSync(w('d/e'))).toEqual(bytes);
    fs.mkdirSync(w('full'));
    fs.writeFileSync(w('full/mine'), 'mine');
    expect(await code(writeWorktreeFile(layout, 'full', [bytes], { clobber: true }))).toBe(DirtyWorktreeError.code);
    expect(fs.readFileSync(w('full/mine'), 'utf8')).toBe('mine');
    fs.writeFileSync(w('file'), 'untracked');
    expect(await code(checkWritable(layout, ['file/x']))).toBe(DirtyWorktreeError.code);
    expect(await code(writeWorktreeFile(layout, 'file/x', [bytes]))).toBe(DirtyWorktreeError.code);
    await writeWorktreeFile(layout, 'file/x', [bytes], { clobber: true });
    expect(fs.readFileSync(w('file/x'))).toEqual(bytes);
    expect(leftovers()).toEqual([]);
  });

  it('handles file names of 255 bytes', async () => {
    const name = 'n'.repeat(255);
    await writeWorktreeFile(layout, `d/${name}`, [bytes]);
    expect(fs.readFileSync(w(`d/${name}`))).toEqual(bytes);
  });
});

describe('checkNotInCoral (writes outside the worktree)', () => {
  it('refuses a destination whose real path is inside .coral, even through a link or a missing tail', async () => {
    fs.symlinkSync(layout.coral, path.join(top, 'outside', 'link'));
    for (const dest of [
      path.join(top, 'outside', 'link', 'config'),
      path.join(top, 'outside', 'link', 'new', 'deeper'),
      path.join(layout.coral, 'x'),
    ])
      expect(await code(checkNotInCoral(layout, dest)), dest).toBe(UnsafePathError.code);
    await checkNotInCoral(layout, path.join(top, 'outside', 'fine', 'x'));
    await checkNotInCoral(layout, w('in/worktree'));
  });
});

describe('removeWorktreeFile', () => {
  it('removes the file and the directories it leaves empty, stopping at a non-empty one', async () => {
    await writeWorktreeFile(layout, 'a/b/c', [bytes]);
    await writeWorktreeFile(layout, 'a/keep', [bytes]);
    expect(await removeWorktreeFile(layout, 'a/b/c')).toBe(true);
    expect(fs.existsSync(w('a/b'))).toBe(false);
    expect(fs.existsSync(w('a/keep'))).toBe(true);
    expect(await removeWorktreeFile(layout, 'a/keep')).toBe(true);
    expect(fs.existsSync(w('a'))).toBe(false);
    expect(fs.existsSync(layout.worktree)).toBe(true);
  });

  it('never deletes beyond a symlink, nor a symlink target, nor a directory', async () => {
    fs.symlinkSync(path.join(top, 'outside'), w('sub'));
    expect(await removeWorktreeFile(layout, 'sub/x')).toBe(false);
    expect(await lstatWorktree(layout, 'sub/x')).toBeNull();
    fs.symlinkSync(path.join(top, 'outside', 'x'), w('l'));
    expect(await removeWorktreeFile(layout, 'l')).toBe(true);
    expect(fs.readFileSync(path.join(top, 'outside', 'x'), 'utf8')).toBe('precious');
    fs.mkdirSync(w('dir'));
    expect(await removeWorktreeFile(layout, 'dir')).toBe(false);
    expect(fs.existsSync(w('dir'))).toBe(true);
  });
});

describe('temp files', () => {
  it('placeWorktreeFile renames a prepared file in with the same checks', async () => {
    fs.mkdirSync(layout.tmp, { recursive: true });
    const src = path.join(layout.tmp, 'merge-1-ab');
    fs.writeFileSync(src, bytes);
    fs.symlinkSync(path.join(top, 'outside'), w('sub'));
    expect(await code(placeWorktreeFile(layout, 'sub/x', src))).toBe(UnsafePathError.code);
    expect(await placeWorktreeFile(layout, 'm/x', src)).toBe(true);
    expect(fs.readFileSync(w('m/x'))).toEqual(bytes);
  });

  it('sweepStaleTemps removes only the temp files of dead writers', () => {
    fs.mkdirSync(layout.tmp, { recursive: true });
    const dead = path.join(layout.tmp, 'wt-999999999-abcdef');
    const mergeDead = path.join(layout.tmp, 'merge-999999999-abcdef.safetensors');
    const mine = path.join(layout.tmp, `wt-${process.pid}-abcdef`);
    const other = path.join(layout.tmp, 'something-else');
    for (const f of [dead, mergeDead, mine, other]) fs.writeFileSync(f, 'x');
    expect(sweepStaleTemps(layout)).toBe(2);
    expect([dead, mergeDead, mine, other].map((f) => fs.existsSync(f))).toEqual([false, false, true, true]);
  });
});
