// Symlinks are stored as symlinks (as git does): add records the target and
// never follows the link (nor descends a linked directory), status compares
// with readlink, checkout recreates the link without writing through it,
// diff and show describe it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coral, f32, ok, sha256, tmpdir, weights, writeSafetensors, tempDirs } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });
function newDir(): string {
  const d = tmpdir();
  dirs.push(d);
  return d;
}

function ckpt(file: string, seed: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, { w: { dtype: 'F32', shape: [32, 16], data: f32(weights(512, seed)) } });
}

const isLink = (p: string) => fs.lstatSync(p).isSymbolicLink();

describe('symlinks', () => {
  it('add records links (file, directory, dangling) and checkout recreates them', () => {
    const d = newDir();
    ok(d, ['init']);
    ckpt(path.join(d, 'runs/7/model.safetensors'), 7);
    fs.symlinkSync('runs/7/model.safetensors', path.join(d, 'latest.safetensors'));
    fs.symlinkSync('runs/7', path.join(d, 'current'));
    fs.symlinkSync('does/not/exist', path.join(d, 'dangling'));
    ok(d, ['add', '.']);
    const st = JSON.parse(ok(d, ['status', '--json']));
    expect(st.files.map((f: { path: string }) => f.path)).toEqual([
      'current',
      'dangling',
      'latest.safetensors',
      'runs/7/model.safetensors',
    ]);
    expect(st.untracked).toEqual([]);
    ok(d, ['commit', '-m', 'links']);

    const show = JSON.parse(ok(d, ['show', 'HEAD:latest.safetensors', '--json']));
    expect(show).toMatchObject({ format: 'symlink', target: 'runs/7/model.safetensors', tensors: [] });
    expect(ok(d, ['show', 'HEAD:current'])).toContain('current -> runs/7');
    expect(ok(d, ['show', 'HEAD'])).toContain('latest.safetensors  (symlink -> runs/7/model.safetensors)');

    for (const f of ['current', 'dangling', 'latest.safetensors']) fs.rmSync(path.join(d, f));
    fs.rmSync(path.join(d, 'runs'), { recursive: true });
    ok(d, ['checkout', '-f', 'main']);
    expect(isLink(path.join(d, 'latest.safetensors'))).toBe(true);
    expect(fs.readlinkSync(path.join(d, 'latest.safetensors'))).toBe('runs/7/model.safetensors');
    expect(fs.readlinkSync(path.join(d, 'current'))).toBe('runs/7');
    expect(fs.readlinkSync(path.join(d, 'dangling'))).toBe('does/not/exist');
    expect(isLink(path.join(d, 'runs/7/model.safetensors'))).toBe(false);
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([]);
    // Restoring one path recreates a dangling link too.
    fs.rmSync(path.join(d, 'dangling'));
    ok(d, ['checkout', 'HEAD', '--', 'dangling']);
    expect(fs.readlinkSync(path.join(d, 'dangling'))).toBe('does/not/exist');
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([]);
  });

  it('status compares the target; diff describes it; a file behind a linked directory is refused', () => {
    const d = newDir();
    ok(d, ['init']);
    ckpt(path.join(d, 'runs/7/model.safetensors'), 7);
    ckpt(path.join(d, 'runs/8/model.safetensors'), 8);
    fs.symlinkSync('runs/7/model.safetensors', path.join(d, 'latest.safetensors'));
    fs.symlinkSync('runs/7', path.join(d, 'current'));
    ok(d, ['add', '.']);
    ok(d, ['commit', '-m', 'links']);

    // Retarget the link: status and diff compare the link itself, not the file behind it.
    fs.rmSync(path.join(d, 'latest.safetensors'));
    fs.symlinkSync('runs/8/model.safetensors', path.join(d, 'latest.safetensors'));
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([
      { path: 'latest.safetensors', staged: null, unstaged: 'modified' },
    ]);
    const diff = JSON.parse(ok(d, ['diff', '--json']));
    expect(diff).toEqual([
      expect.objectContaining({
        path: 'latest.safetensors',
        change: 'modified',
        oldTarget: 'runs/7/model.safetensors',
        newTarget: 'runs/8/model.safetensors',
        tensors: [],
      }),
    ]);
    expect(ok(d, ['diff'])).toContain('(symlink -> runs/8/model.safetensors, was symlink -> runs/7/model.safetensors)');

    // Editing the target file does not modify the link.
    fs.rmSync(path.join(d, 'latest.safetensors'));
    fs.symlinkSync('runs/7/model.safetensors', path.join(d, 'latest.safetensors'));
    ckpt(path.join(d, 'runs/7/model.safetensors'), 9);
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([
      { path: 'runs/7/model.safetensors', staged: null, unstaged: 'modified' },
    ]);

    // A regular file where the link was is a modification.
    fs.rmSync(path.join(d, 'current'));
    fs.writeFileSync(path.join(d, 'current'), 'runs/7');
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toContainEqual({
      path: 'current',
      staged: null,
      unstaged: 'modified',
    });
    const typeChange = (JSON.parse(ok(d, ['diff', '--json'])) as Array<{ path: string }>).find(
      (c) => c.path === 'current',
    );
    expect(typeChange).toMatchObject({ change: 'modified', format: 'raw', oldTarget: 'runs/7' });
    expect(typeChange).not.toHaveProperty('newTarget');
    expect(ok(d, ['diff'])).toContain('was symlink -> runs/7)');
    fs.rmSync(path.join(d, 'current'));
    fs.symlinkSync('runs/7', path.join(d, 'current'));

    const r = coral(d, ['add', 'current/model.safetensors']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('beyond a symbolic link');
  });

  it('checkout never writes through a link: the file it points to stays untouched', () => {
    const d = newDir();
    const outside = path.join(newDir(), 'precious.safetensors');
    ckpt(outside, 1);
    const outsideHash = sha256(outside);
    ok(d, ['init']);
    ckpt(path.join(d, 'model.safetensors'), 2);
    fs.symlinkSync(outside, path.join(d, 'ext.safetensors'));
    ok(d, ['add', '.']);
    ok(d, ['commit', '-m', 'one']);
    const committed = sha256(path.join(d, 'model.safetensors'));
    // The user swaps the committed file for a link to the precious file, then forces a checkout.
    fs.rmSync(path.join(d, 'model.safetensors'));
    fs.symlinkSync(outside, path.join(d, 'model.safetensors'));
    fs.rmSync(path.join(d, 'ext.safetensors'));
    fs.writeFileSync(path.join(d, 'ext.safetensors'), 'not a link');
    ok(d, ['checkout', '-f', 'main']);
    expect(isLink(path.join(d, 'model.safetensors'))).toBe(false);
    expect(sha256(path.join(d, 'model.safetensors'))).toBe(committed);
    expect(isLink(path.join(d, 'ext.safetensors'))).toBe(true);
    expect(fs.readlinkSync(path.join(d, 'ext.safetensors'))).toBe(outside);
    expect(sha256(outside)).toBe(outsideHash);
  });
});
