// End-to-end: the working tree is only ever touched through the safe
// primitives of lib/worktree/files.ts (issue #11): no write or delete through a
// symlinked directory or into .coral, file <-> directory switches, temp files
// of killed checkouts, odd file names, a damaged index, 255-byte file names.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coral, f32, ok, sha256, tmpdir, weights, writeSafetensors, tempDirs } from '../helpers/cli';

const dirs = tempDirs();
function scratch(): string {
  const d = tmpdir('coral-wt-');
  dirs.push(d);
  return d;
}
function repoDir(): string {
  const d = path.join(scratch(), 'repo');
  fs.mkdirSync(d);
  ok(d, ['init']);
  return d;
}

/** A small safetensors checkpoint, distinct per seed. */
function model(file: string, seed: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, {
    w: { dtype: 'F32', shape: [64, 32], data: f32(weights(64 * 32, seed)) },
    b: { dtype: 'F32', shape: [64], data: f32(weights(64, seed + 1000)) },
  });
}

function commitAll(d: string, msg: string): void {
  ok(d, ['add', '.']);
  ok(d, ['commit', '-m', msg]);
}

/** Every file under `dir` (recursively, not following links) whose name looks like a coral temp file. */
function temps(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      const q = path.join(p, e.name);
      if (/coral-tmp-|\.coral-[0-9a-f]{12}$|^wt-\d+-|^merge-\d+-/.test(e.name)) out.push(path.relative(dir, q));
      if (e.isDirectory()) walk(q);
    }
  };
  walk(dir);
  return out;
}

function errCode(r: { stderr: string }): string | undefined {
  return /\((CORAL_[A-Z_]+)\)\s*$/.exec(r.stderr.trim())?.[1];
}

function headRef(d: string): string {
  return fs.readFileSync(path.join(d, '.coral', 'HEAD'), 'utf8');
}

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('checkout never writes or deletes through a symlinked directory', () => {
  it('refuses to write sub/x when sub is an untracked symlink to a directory outside', () => {
    const d = repoDir();
    model(path.join(d, 'a.safetensors'), 1);
    commitAll(d, 'base');
    ok(d, ['checkout', '-b', 'side']);
    model(path.join(d, 'sub', 'x.safetensors'), 2);
    commitAll(d, 'side adds sub/x');
    ok(d, ['checkout', 'main']);
    expect(fs.existsSync(path.join(d, 'sub'))).toBe(false); // emptied directory removed, as git does

    const elsewhere = path.join(path.dirname(d), 'elsewhere');
    model(path.join(elsewhere, 'x.safetensors'), 99);
    const before = sha256(path.join(elsewhere, 'x.safetensors'));
    fs.symlinkSync(elsewhere, path.join(d, 'sub'));

    for (const args of [
      ['checkout', 'side'],
      ['checkout', '-f', 'side'],
      ['checkout', 'side', '--', 'sub/x.safetensors'],
    ]) {
      const r = coral(d, args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(errCode(r)).toBe('CORAL_UNSAFE_PATH');
      expect(r.stderr).toContain('sub');
      expect(sha256(path.join(elsewhere, 'x.safetensors'))).toBe(before);
      expect(headRef(d)).toBe('ref: refs/heads/main\n');
    }
    expect(fs.readdirSync(elsewhere)).toEqual(['x.safetensors']);
    expect(temps(d)).toEqual([]);

    // add and status do not follow the link either.
    const add = coral(d, ['add', 'sub/x.safetensors']);
    expect(errCode(add)).toBe('CORAL_UNSAFE_PATH');
    ok(d, ['add', '.']);
    const st = JSON.parse(ok(d, ['status', '--json']));
    // The link itself is staged as a link (as git does); nothing beyond it is.
    expect(st.files).toEqual([{ path: 'sub', staged: 'added', unstaged: null }]);
    expect(st.untracked).not.toContain('sub/x.safetensors');
  });

  it('does not delete through a symlink that replaced a tracked directory', () => {
    const d = repoDir();
    model(path.join(d, 'a.safetensors'), 1);
    commitAll(d, 'base');
    ok(d, ['checkout', '-b', 'side']);
    model(path.join(d, 'sub', 'x.safetensors'), 2);
    commitAll(d, 'side adds sub/x');
    const elsewhere = path.join(path.dirname(d), 'elsewhere');
    model(path.join(elsewhere, 'x.safetensors'), 99);
    const before = sha256(path.join(elsewhere, 'x.safetensors'));
    fs.rmSync(path.join(d, 'sub'), { recursive: true });
    fs.symlinkSync(elsewhere, path.join(d, 'sub'));
    // sub/x is beyond a symlink: not in the worktree any more.
    const st = JSON.parse(ok(d, ['status', '--json']));
    expect(st.files).toEqual([{ path: 'sub/x.safetensors', staged: null, unstaged: 'deleted' }]);
    ok(d, ['checkout', '-f', 'main']);
    expect(sha256(path.join(elsewhere, 'x.safetensors'))).toBe(before);
    expect(fs.lstatSync(path.join(d, 'sub')).isSymbolicLink()).toBe(true);
  });

  it('never writes into .coral through a symlink (refs, config)', () => {
    const d = repoDir();
    model(path.join(d, 'a.safetensors'), 1);
    commitAll(d, 'base');
    const mainRef = fs.readFileSync(path.join(d, '.coral', 'refs', 'heads', 'main'), 'utf8');
    const config = fs.readFileSync(path.join(d, '.coral', 'config'), 'utf8');
    for (const [branch, file, target] of [
      ['evil-refs', 'lnk/main', '.coral/refs/heads'],
      ['evil-config', 'lnk/config', '.coral'],
    ]) {
      ok(d, ['checkout', '-b', branch, 'main']);
      model(path.join(d, ...file.split('/')), 7);
      commitAll(d, `adds ${file}`);
      ok(d, ['checkout', 'main']);
      expect(fs.existsSync(path.join(d, 'lnk'))).toBe(false);
      fs.symlinkSync(target, path.join(d, 'lnk'));
      for (const args of [
        ['checkout', branch],
        ['checkout', '-f', branch],
        ['checkout', branch, '--', file],
      ]) {
        const r = coral(d, args);
        expect(errCode(r), args.join(' ')).toBe('CORAL_UNSAFE_PATH');
      }
      expect(fs.readFileSync(path.join(d, '.coral', 'refs', 'heads', 'main'), 'utf8')).toBe(mainRef);
      expect(fs.readFileSync(path.join(d, '.coral', 'config'), 'utf8')).toBe(config);
      ok(d, ['status']);
      fs.unlinkSync(path.join(d, 'lnk'));
    }
    // `show -o` into the worktree goes through the same checks.
    fs.symlinkSync('.coral', path.join(d, 'lnk'));
    const r = coral(d, ['show', 'evil-config:lnk/config', '-o', 'lnk/config']);
    expect(r.code).not.toBe(0);
    expect(fs.readFileSync(path.join(d, '.coral', 'config'), 'utf8')).toBe(config);
  });
});

describe('file <-> directory switches', () => {
  it('checks out a path that is a file on one branch and a directory on the other, both ways, leaving no temp files', () => {
    const d = repoDir();
    model(path.join(d, 'm'), 1);
    model(path.join(d, 'keep.safetensors'), 5);
    commitAll(d, 'm is a file');
    const mFile = sha256(path.join(d, 'm'));
    ok(d, ['checkout', '-b', 'dir']);
    ok(d, ['rm', 'm']);
    model(path.join(d, 'm', 'x.safetensors'), 2);
    commitAll(d, 'm is a directory');
    const mx = sha256(path.join(d, 'm', 'x.safetensors'));
    for (const force of [false, true]) {
      const f = force ? ['-f'] : [];
      ok(d, ['checkout', ...f, 'main']);
      expect(fs.statSync(path.join(d, 'm')).isFile()).toBe(true);
      expect(sha256(path.join(d, 'm'))).toBe(mFile);
      ok(d, ['checkout', ...f, 'dir']);
      expect(sha256(path.join(d, 'm', 'x.safetensors'))).toBe(mx);
      expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([]);
    }
    expect(temps(d)).toEqual([]);
  });

  it('refuses to replace a directory holding untracked files, and leaves no temp file behind', () => {
    const d = repoDir();
    model(path.join(d, 'm'), 1);
    commitAll(d, 'm is a file');
    ok(d, ['checkout', '-b', 'dir']);
    ok(d, ['rm', 'm']);
    model(path.join(d, 'm', 'x.safetensors'), 2);
    commitAll(d, 'm is a directory');
    fs.writeFileSync(path.join(d, 'm', 'notes.txt'), 'mine');
    const r = coral(d, ['checkout', '-f', 'main']);
    expect(r.code).not.toBe(0);
    expect(errCode(r)).toBe('CORAL_DIRTY_WORKTREE');
    expect(fs.readFileSync(path.join(d, 'm', 'notes.txt'), 'utf8')).toBe('mine');
    expect(temps(d)).toEqual([]);
  });
});

describe('temp files of killed writers', () => {
  it('are removed by the next command when their writer is dead; a kill after the rename shows as a modification', () => {
    const d = repoDir();
    model(path.join(d, 'a.safetensors'), 1);
    commitAll(d, 'base');
    ok(d, ['checkout', '-b', 'side']);
    model(path.join(d, 'a.safetensors'), 2);
    commitAll(d, 'side');
    ok(d, ['checkout', 'main']);
    const onMain = sha256(path.join(d, 'a.safetensors'));

    // Killed before the rename: the temp file is left, then swept by the next command.
    const k1 = coral(d, ['checkout', 'side'], { CORAL_CRASH_AT: 'worktree:before-rename' });
    expect(k1.code).not.toBe(0);
    expect(temps(d).length).toBe(1);
    expect(sha256(path.join(d, 'a.safetensors'))).toBe(onMain);
    const st1 = JSON.parse(ok(d, ['status', '--json']));
    expect(st1.files).toEqual([]);
    expect(temps(d)).toEqual([]);

    // Killed after the rename: new bytes, old index and HEAD. status says the file is modified.
    const k2 = coral(d, ['checkout', 'side'], { CORAL_CRASH_AT: 'worktree:after-rename' });
    expect(k2.code).not.toBe(0);
    expect(headRef(d)).toBe('ref: refs/heads/main\n');
    expect(sha256(path.join(d, 'a.safetensors'))).not.toBe(onMain);
    const st2 = JSON.parse(ok(d, ['status', '--json']));
    expect(st2.files).toEqual([{ path: 'a.safetensors', staged: null, unstaged: 'modified' }]);
    expect(temps(d)).toEqual([]);

    // Temp files named for a dead pid are swept, in .coral/tmp and beside files; a live writer's stay.
    const dead = deadPid();
    const live = process.pid;
    fs.mkdirSync(path.join(d, 'sub'));
    const stale = [
      path.join(d, '.coral', 'tmp', `wt-${dead}-0123456789ab`),
      path.join(d, 'sub', `.coral-tmp-${dead}-0123456789ab`),
    ];
    const fresh = [
      path.join(d, '.coral', 'tmp', `wt-${live}-0123456789ab`),
      path.join(d, 'sub', `.coral-tmp-${live}-0123456789ab`),
    ];
    for (const f of [...stale, ...fresh]) fs.writeFileSync(f, Buffer.alloc(1024));
    const st3 = JSON.parse(ok(d, ['status', '--json']));
    expect(st3.untracked).toEqual([]);
    for (const f of stale) expect(fs.existsSync(f)).toBe(false);
    for (const f of fresh) expect(fs.existsSync(f)).toBe(true);
  });
});

describe('odd file names', () => {
  it('handles files named __proto__, constructor, toString and hasOwnProperty everywhere', () => {
    const d = repoDir();
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    names.forEach((n, i) => model(path.join(d, n), 10 + i));
    const r = ok(d, ['add', '__proto__']);
    expect(r).toBeDefined();
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([
      { path: '__proto__', staged: 'added', unstaged: null },
    ]);
    ok(d, ['add', '.']);
    const st = JSON.parse(ok(d, ['status', '--json']));
    expect(st.files.map((f: { path: string }) => f.path).sort()).toEqual([...names].sort());
    ok(d, ['commit', '-m', 'odd names']);
    const sums = Object.fromEntries(names.map((n) => [n, sha256(path.join(d, n))]));
    ok(d, ['show', 'HEAD']);
    ok(d, ['diff', 'HEAD']);
    ok(d, ['checkout', '-b', 'other']);
    for (const n of names) ok(d, ['rm', n]);
    model(path.join(d, 'plain.safetensors'), 3);
    commitAll(d, 'no odd names');
    for (const n of names) expect(fs.existsSync(path.join(d, n))).toBe(false);
    ok(d, ['checkout', 'main']);
    for (const n of names) expect(sha256(path.join(d, n))).toBe(sums[n]);
    expect(JSON.parse(ok(d, ['status', '--json']))).toMatchObject({ files: [], untracked: [] });
    model(path.join(d, 'constructor'), 50);
    ok(d, ['add', 'constructor']);
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([
      { path: 'constructor', staged: 'modified', unstaged: null },
    ]);
    ok(d, ['commit', '-m', 'main changes constructor']);
    // A three-way merge over the odd names (the other side changes __proto__), then --abort.
    ok(d, ['checkout', '-b', 'm2', 'HEAD~1']);
    model(path.join(d, '__proto__'), 60);
    commitAll(d, 'm2 changes __proto__');
    const proto2 = sha256(path.join(d, '__proto__'));
    ok(d, ['checkout', 'main']);
    const ctor = sha256(path.join(d, 'constructor'));
    ok(d, ['merge', 'm2', '--no-commit']);
    expect(sha256(path.join(d, '__proto__'))).toBe(proto2);
    ok(d, ['merge', '--abort']);
    expect(sha256(path.join(d, '__proto__'))).toBe(sums.__proto__);
    ok(d, ['merge', 'm2', '-m', 'merge m2']);
    expect(sha256(path.join(d, '__proto__'))).toBe(proto2);
    expect(sha256(path.join(d, 'constructor'))).toBe(ctor);
    expect(JSON.parse(ok(d, ['status', '--json']))).toMatchObject({ files: [], untracked: [] });
  });

  it('checks out a 252- and a 255-byte file name (temp names fit NAME_MAX)', () => {
    const d = repoDir();
    model(path.join(d, 'a.safetensors'), 1);
    commitAll(d, 'base');
    ok(d, ['checkout', '-b', 'long']);
    const long = ['x'.repeat(240) + '.safetensors', 'y'.repeat(243) + '.safetensors'];
    expect(long.map((n) => Buffer.byteLength(n))).toEqual([252, 255]);
    long.forEach((n, i) => model(path.join(d, 'dir', n), 20 + i));
    const sums = long.map((n) => sha256(path.join(d, 'dir', n)));
    commitAll(d, 'long names');
    ok(d, ['checkout', 'main']);
    expect(fs.existsSync(path.join(d, 'dir'))).toBe(false);
    ok(d, ['checkout', 'long']);
    long.forEach((n, i) => expect(sha256(path.join(d, 'dir', n))).toBe(sums[i]));
    fs.rmSync(path.join(d, 'dir', long[1]));
    ok(d, ['checkout', 'long', '--', `dir/${long[1]}`]);
    expect(sha256(path.join(d, 'dir', long[1]))).toBe(sums[1]);
    expect(temps(d)).toEqual([]);
  });
});

describe('a damaged staging index', () => {
  it('is a typed error naming the fix, and `coral reset` / `fsck --rebuild-index` rebuild it from HEAD', () => {
    const d = repoDir();
    model(path.join(d, 'a.safetensors'), 1);
    model(path.join(d, 'b.safetensors'), 2);
    commitAll(d, 'base');
    const index = path.join(d, '.coral', 'index');
    const good = fs.readFileSync(index);

    fs.writeFileSync(index, good.subarray(0, Math.floor(good.length / 2))); // truncated
    const r = coral(d, ['status']);
    expect(r.code).not.toBe(0);
    expect(errCode(r)).toBe('CORAL_CORRUPT_INDEX');
    expect(r.stderr).toContain('coral reset');
    ok(d, ['reset']);
    expect(JSON.parse(ok(d, ['status', '--json']))).toMatchObject({ files: [], untracked: [] });

    for (const bad of ['{"version":1,"files":{"a.safetensors":{"entry":null}}}', 'not json', '[]']) {
      fs.writeFileSync(index, bad);
      expect(errCode(coral(d, ['status']))).toBe('CORAL_CORRUPT_INDEX');
      expect(errCode(coral(d, ['add', '.']))).toBe('CORAL_CORRUPT_INDEX');
      ok(d, ['fsck', '--rebuild-index']);
      expect(JSON.parse(ok(d, ['status', '--json']))).toMatchObject({ files: [], untracked: [] });
    }
    // A worktree edit survives the rebuild and shows as unstaged.
    model(path.join(d, 'a.safetensors'), 3);
    fs.writeFileSync(index, 'garbage');
    ok(d, ['reset']);
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([
      { path: 'a.safetensors', staged: null, unstaged: 'modified' },
    ]);
  });
});
