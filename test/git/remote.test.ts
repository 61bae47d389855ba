// Payload transfer with git remotes (pre-push hook, smudge fetch), and coral git gc.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  baseWeights,
  coralOk,
  denseUpdate,
  git,
  gitEnv,
  initRepo,
  run,
  sha256,
  writeCheckpoint,
  type GitEnv,
} from './helpers';

const envs: GitEnv[] = [];
function env(): GitEnv {
  const e = gitEnv();
  envs.push(e);
  return e;
}
afterAll(() => {
  for (const e of envs) fs.rmSync(e.root, { recursive: true, force: true });
});

function packBytes(dir: string): number {
  const p = path.join(dir, 'objects', 'packs');
  return fs.existsSync(p) ? fs.readdirSync(p).reduce((n, f) => n + fs.statSync(path.join(p, f)).size, 0) : 0;
}

describe('git extension: remotes', () => {
  it('push sends payloads to the bare remote; a fresh clone checks out byte for byte', () => {
    const e = env();
    const dir = initRepo(e);
    const f = path.join(dir, 'model.safetensors');
    const w0 = baseWeights(5, 64, 64);
    writeCheckpoint(f, w0);
    git(e, dir, 'add', '.');
    git(e, dir, 'commit', '-q', '-m', 'v0');
    const h0 = sha256(f);
    writeCheckpoint(f, denseUpdate(w0, 6));
    git(e, dir, 'commit', '-q', '-am', 'v1');
    const h1 = sha256(f);
    const bare = path.join(e.root, 'remote.git');
    git(e, e.root, 'init', '-q', '-b', 'main', '--bare', bare);
    git(e, dir, 'remote', 'add', 'origin', bare);
    const push = run(e, dir, 'git', ['push', '-q', 'origin', 'main']);
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toMatch(/sent \d+ payload object\(s\)/);
    expect(packBytes(path.join(bare, 'coral'))).toBeGreaterThan(0);

    // A fresh clone: the filter comes from the user's (global) config.
    coralOk(e, e.root, 'git', 'install');
    const clone = path.join(e.root, 'clone');
    const c = run(e, e.root, 'git', ['clone', '-q', bare, clone]);
    expect(c.code, c.stderr).toBe(0);
    expect(sha256(path.join(clone, 'model.safetensors'))).toBe(h1);
    expect(git(e, clone, 'status', '--porcelain')).toBe('');
    git(e, clone, 'checkout', '-q', 'HEAD~1');
    expect(sha256(path.join(clone, 'model.safetensors'))).toBe(h0);
    expect(git(e, clone, 'status', '--porcelain')).toBe('');
  });

  it('a payload push that fails fails git push, and the remote ref does not move', () => {
    const e = env();
    const dir = initRepo(e);
    writeCheckpoint(path.join(dir, 'model.safetensors'), baseWeights(8));
    git(e, dir, 'add', '.');
    git(e, dir, 'commit', '-q', '-m', 'v0');
    const bare = path.join(e.root, 'remote.git');
    git(e, e.root, 'init', '-q', '-b', 'main', '--bare', bare);
    git(e, dir, 'remote', 'add', 'origin', bare);
    // The payload store of this remote cannot be created (its parent is a regular file).
    fs.writeFileSync(path.join(e.root, 'not-a-dir'), 'x');
    git(e, dir, 'config', 'remote.origin.coralurl', path.join(e.root, 'not-a-dir', 'coral'));
    const push = run(e, dir, 'git', ['push', 'origin', 'main']);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/coral:/);
    expect(run(e, bare, 'git', ['rev-parse', '--verify', '-q', 'refs/heads/main']).code).not.toBe(0);
  });

  it('coral git gc drops the payloads of a deleted branch and keeps what refs and reflogs reach', () => {
    const e = env();
    const dir = initRepo(e);
    const f = path.join(dir, 'model.safetensors');
    writeCheckpoint(f, baseWeights(9, 64, 64));
    git(e, dir, 'add', '.');
    git(e, dir, 'commit', '-q', '-m', 'v0');
    const h0 = sha256(f);
    git(e, dir, 'checkout', '-q', '-b', 'experiment');
    writeCheckpoint(f, baseWeights(99, 64, 64)); // unrelated weights: new whole objects
    git(e, dir, 'commit', '-q', '-am', 'experiment');
    git(e, dir, 'checkout', '-q', 'main');
    const store = path.join(dir, '.git', 'coral');
    // Still reachable from the branch: nothing goes.
    let r = JSON.parse(coralOk(e, dir, 'git', 'gc', '--prune=now', '--json'));
    expect(r.removedObjects).toBe(0);
    git(e, dir, 'branch', '-D', 'experiment');
    // The reflog of HEAD still names the experiment commit: kept.
    r = JSON.parse(coralOk(e, dir, 'git', 'gc', '--prune=now', '--json'));
    expect(r.removedObjects).toBe(0);
    git(e, dir, 'reflog', 'expire', '--expire=now', '--all');
    const before = packBytes(store);
    r = JSON.parse(coralOk(e, dir, 'git', 'gc', '--prune=now', '--json'));
    expect(r.removedObjects).toBeGreaterThan(0);
    expect(packBytes(store)).toBeLessThan(before);
    fs.rmSync(f);
    git(e, dir, 'checkout', '--', 'model.safetensors');
    expect(sha256(f)).toBe(h0);
  });
});

describe('git extension: the git-lfs backend', () => {
  it('pushes payloads as git-lfs objects to a local bare repository; a clone fetches them through git-lfs', () => {
    const e = env();
    const dir = initRepo(e);
    coralOk(e, dir, 'git', 'install', '--local', '--backend', 'lfs');
    expect(git(e, dir, 'config', 'coral.backend').trim()).toBe('lfs');
    const f = path.join(dir, 'model.safetensors');
    const w0 = baseWeights(15, 64, 64);
    writeCheckpoint(f, w0);
    git(e, dir, 'add', '.');
    git(e, dir, 'commit', '-q', '-m', 'v0');
    const h0 = sha256(f);
    writeCheckpoint(f, denseUpdate(w0, 16));
    git(e, dir, 'commit', '-q', '-am', 'v1');
    const h1 = sha256(f);
    // The pointer names the git-lfs copy of every object it needs (delta bases included).
    const ptr = git(e, dir, 'cat-file', 'blob', 'HEAD:model.safetensors');
    expect(ptr).toMatch(/^lfs [0-9a-f]{32} [0-9a-f]{64} \d+$/m);
    const bare = path.join(e.root, 'remote.git');
    git(e, e.root, 'init', '-q', '-b', 'main', '--bare', bare);
    git(e, dir, 'remote', 'add', 'origin', bare);
    const push = run(e, dir, 'git', ['push', '-q', 'origin', 'main']);
    expect(push.code, push.stderr).toBe(0);
    expect(fs.existsSync(path.join(bare, 'lfs', 'objects'))).toBe(true);
    expect(fs.existsSync(path.join(bare, 'coral'))).toBe(false);
    // The pusher keeps no second copy in .git/lfs.
    const lfsLocal = path.join(dir, '.git', 'lfs', 'objects');
    const files = fs.existsSync(lfsLocal)
      ? fs
          .readdirSync(lfsLocal, { recursive: true })
          .filter((n) => fs.statSync(path.join(lfsLocal, String(n))).isFile())
      : [];
    expect(files).toEqual([]);

    coralOk(e, e.root, 'git', 'install');
    const clone = path.join(e.root, 'clone');
    const c = run(e, e.root, 'git', ['clone', '-q', bare, clone]);
    expect(c.code, c.stderr).toBe(0);
    expect(sha256(path.join(clone, 'model.safetensors'))).toBe(h1);
    git(e, clone, 'checkout', '-q', 'HEAD~1');
    expect(sha256(path.join(clone, 'model.safetensors'))).toBe(h0);
    expect(git(e, clone, 'status', '--porcelain')).toBe('');
  });
});
