// The git extension end to end with the real git binary: clean/smudge through
// the long-running filter process, update chains, byte-exact checkouts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  baseWeights,
  denseUpdate,
  git,
  gitEnv,
  initRepo,
  lowRankUpdate,
  randomF32,
  run,
  sha256,
  sparseUpdate,
  writeCheckpoint,
  type GitEnv,
  type Weights,
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

function packCount(dir: string): number {
  const p = path.join(dir, '.git', 'coral', 'objects', 'packs');
  return fs.existsSync(p) ? fs.readdirSync(p).filter((f) => f.endsWith('.h5')).length : 0;
}

function pointerOf(e: GitEnv, dir: string, rev: string): string {
  return git(e, dir, 'cat-file', 'blob', `${rev}:model.safetensors`);
}

describe('git extension: history of a checkpoint', () => {
  it('stores dense, sparse and low-rank updates and a new parameter; checks every commit out byte for byte', () => {
    const e = env();
    const dir = initRepo(e);
    const f = path.join(dir, 'model.safetensors');
    const versions: Weights[] = [];
    let w = baseWeights(7, 192, 128);
    versions.push(w);
    w = denseUpdate(w, 11);
    versions.push(w);
    w = sparseUpdate(w, 'layer0.weight', 0.01, 12);
    versions.push(w);
    w = lowRankUpdate(w, 'layer1.weight', 13);
    versions.push(w);
    w = { ...w, 'head.weight': { shape: [10, 128], data: randomF32(1280, 14) } };
    versions.push(w);
    const hashes: string[] = [];
    versions.forEach((v, i) => {
      writeCheckpoint(f, v);
      hashes.push(sha256(f));
      git(e, dir, 'add', 'model.safetensors');
      git(e, dir, 'commit', '-q', '-m', `v${i}`);
      expect(git(e, dir, 'status', '--porcelain')).toBe('');
    });

    // The blob git stores is the pointer: small text, one line per group.
    const p1 = pointerOf(e, dir, 'HEAD~3');
    expect(p1.startsWith('coral-pointer 1\n')).toBe(true);
    expect(p1).toMatch(/^group layer0\.weight F32 \[192,128\] [0-9a-f]{32} delta:/m);
    const p2 = pointerOf(e, dir, 'HEAD~2');
    expect(p2).toMatch(/^group layer0\.weight F32 \[192,128\] [0-9a-f]{32} sparse:SPARSE_UPDATE@/m);
    // Unchanged groups keep their content id (exact equality, no threshold).
    const id = (p: string, name: string) =>
      new RegExp(`^group ${name.replace('.', '\\.')} \\S+ \\S+ (\\S+)`, 'm').exec(p)![1];
    expect(id(p2, 'layer1.weight')).toBe(id(p1, 'layer1.weight'));
    // The rank-1 update: factors plus an exact residual.
    const p3 = pointerOf(e, dir, 'HEAD~1');
    expect(p3).toMatch(/^group layer1\.weight F32 \[192,128\] [0-9a-f]{32} low-rank:DELTA_[A-Z]+@[0-9a-f]{32}/m);
    const p4 = pointerOf(e, dir, 'HEAD');
    expect(p4).toMatch(/^group head\.weight F32 \[10,128\] [0-9a-f]{32} whole:/m);

    // Byte-exact checkout of every commit, status clean after each.
    for (let i = 0; i < versions.length; i++) {
      git(e, dir, 'checkout', '-q', `HEAD@{0}`); // no-op keeps reflog simple
      git(e, dir, 'checkout', '-q', `main~${versions.length - 1 - i}`);
      expect(sha256(f)).toBe(hashes[i]);
      expect(git(e, dir, 'status', '--porcelain')).toBe('');
    }
    git(e, dir, 'checkout', '-q', 'main');
    expect(sha256(f)).toBe(hashes[hashes.length - 1]);

    // reset --hard and checkout of an old commit's file after deleting it.
    fs.writeFileSync(f, 'garbage');
    git(e, dir, 'reset', '-q', '--hard');
    expect(sha256(f)).toBe(hashes[hashes.length - 1]);
    fs.rmSync(f);
    git(e, dir, 'checkout', 'main~4', '--', 'model.safetensors');
    expect(sha256(f)).toBe(hashes[0]);
    git(e, dir, 'reset', '-q', '--hard');
  });

  it('stores dense steps on the anchor, a sparse step on the previous version; coral.maxChainLength bounds the updates since a whole value', () => {
    const e = env();
    const dir = initRepo(e);
    git(e, dir, 'config', 'coral.maxChainLength', '3');
    const f = path.join(dir, 'model.safetensors');
    let w = baseWeights(21, 192, 128);
    const versions: Weights[] = [w];
    for (const step of [22, 23, 'sparse', 25, 26] as const) {
      w = step === 'sparse' ? sparseUpdate(w, 'layer0.weight', 0.01, 24) : denseUpdate(w, step);
      versions.push(w);
    }
    const hashes: string[] = [];
    const ptrs: string[] = [];
    versions.forEach((v, i) => {
      writeCheckpoint(f, v);
      hashes.push(sha256(f));
      git(e, dir, 'add', 'model.safetensors');
      git(e, dir, 'commit', '-q', '-m', `v${i}`);
      ptrs.push(pointerOf(e, dir, 'HEAD'));
    });
    const group = (p: string, name: string) => {
      const m = new RegExp(`^group ${name.replace('.', '\\.')} \\S+ \\S+ (\\S+) (\\S+)`, 'm').exec(p)!;
      return { id: m[1], storage: m[2] };
    };
    const l0 = ptrs.map((p) => group(p, 'layer0.weight'));
    const l1 = ptrs.map((p) => group(p, 'layer1.weight'));
    // Dense steps: updates on the whole value of v0, not on the version before.
    expect(l1[1].storage).toMatch(new RegExp(`^delta:DELTA_[A-Z]+@${l1[0].id}$`));
    expect(l1[2].storage).toMatch(new RegExp(`^delta:DELTA_[A-Z]+@${l1[0].id}$`));
    // The sparse step is sparse against v2 only: stored on the previous version.
    expect(l0[3].storage).toBe(`sparse:SPARSE_UPDATE@${l0[2].id}`);
    // layer1 (unchanged in v3): its 3rd update at v4, whole again at v5 (its 4th).
    expect(l1[3].id).toBe(l1[2].id);
    expect(l1[4].storage).toMatch(new RegExp(`^delta:DELTA_[A-Z]+@${l1[0].id}$`));
    expect(l1[5].storage).toMatch(/^whole:/);
    // layer0: updates at v1, v2, v3, so whole at v4, and v5 an update on it.
    expect(l0[4].storage).toMatch(/^whole:/);
    expect(l0[5].storage).toMatch(new RegExp(`^delta:DELTA_[A-Z]+@${l0[4].id}$`));
    for (let i = 0; i < versions.length; i++) {
      git(e, dir, 'checkout', '-q', `main~${versions.length - 1 - i}`);
      expect(sha256(f)).toBe(hashes[i]);
      expect(git(e, dir, 'status', '--porcelain')).toBe('');
    }
    git(e, dir, 'checkout', '-q', 'main');
  });

  it('re-adding an unchanged file writes no payload', () => {
    const e = env();
    const dir = initRepo(e);
    const f = path.join(dir, 'model.safetensors');
    writeCheckpoint(f, baseWeights(3));
    git(e, dir, 'add', 'model.safetensors');
    git(e, dir, 'commit', '-q', '-m', 'v0');
    const packs = packCount(dir);
    const blob = git(e, dir, 'rev-parse', ':model.safetensors');
    // Same bytes, new mtime: git runs clean again.
    const bytes = fs.readFileSync(f);
    fs.rmSync(f);
    fs.writeFileSync(f, bytes);
    git(e, dir, 'add', 'model.safetensors');
    expect(git(e, dir, 'rev-parse', ':model.safetensors')).toBe(blob);
    expect(packCount(dir)).toBe(packs);
    expect(fs.readFileSync(e.log, 'utf8')).toMatch(/cleaned model\.safetensors stored=0 deduped=4/);
  });

  it('one filter process serves a 50-file git add and a 50-file checkout', () => {
    const e = env();
    const dir = initRepo(e, 'repo', ['*.safetensors']);
    for (let i = 0; i < 50; i++)
      writeCheckpoint(
        path.join(dir, 'ckpt', `m${String(i).padStart(2, '0')}.safetensors`),
        baseWeights(100 + i, 16, 16),
      );
    fs.writeFileSync(e.log, '');
    git(e, dir, 'add', 'ckpt');
    const log = fs.readFileSync(e.log, 'utf8').trim().split('\n');
    const starts = log.filter((l) => / start filter-process/.test(l));
    expect(starts.length).toBe(1);
    expect(log.filter((l) => / clean ckpt\//.test(l)).length).toBe(50);
    git(e, dir, 'commit', '-q', '-m', '50 files');
    const before = fs.readdirSync(path.join(dir, 'ckpt')).map((n) => sha256(path.join(dir, 'ckpt', n)));
    fs.rmSync(path.join(dir, 'ckpt'), { recursive: true });
    fs.writeFileSync(e.log, '');
    git(e, dir, 'checkout', '--', 'ckpt');
    const after = fs.readdirSync(path.join(dir, 'ckpt')).map((n) => sha256(path.join(dir, 'ckpt', n)));
    expect(after).toEqual(before);
    const log2 = fs.readFileSync(e.log, 'utf8').trim().split('\n');
    expect(log2.filter((l) => / start filter-process/.test(l)).length).toBe(1);
    // Delayed: decoded in the background, collected through list_available_blobs.
    expect(log2.filter((l) => / smudge-delayed /.test(l)).length).toBe(50);
    expect(git(e, dir, 'status', '--porcelain')).toBe('');
  });

  it('a broken payload is an error naming the file, never pointer text or a partial file', () => {
    const e = env();
    const dir = initRepo(e);
    const f = path.join(dir, 'model.safetensors');
    writeCheckpoint(f, baseWeights(5));
    git(e, dir, 'add', 'model.safetensors');
    git(e, dir, 'commit', '-q', '-m', 'v0');
    fs.rmSync(f);
    fs.rmSync(path.join(dir, '.git', 'coral', 'objects'), { recursive: true });
    const r = run(e, dir, 'git', ['checkout', '--', 'model.safetensors']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/model\.safetensors/);
    expect(fs.existsSync(f)).toBe(false);
  });

  it('git diff lists groups added, removed and modified from stored payloads; log -p and --stat work', () => {
    const e = env();
    const dir = initRepo(e);
    const f = path.join(dir, 'model.safetensors');
    const w0 = baseWeights(21, 64, 32);
    writeCheckpoint(f, w0);
    git(e, dir, 'add', '.');
    git(e, dir, 'commit', '-q', '-m', 'v0');
    const w1: Weights = sparseUpdate(w0, 'layer0.weight', 0.05, 3);
    delete w1['layer0.bias'];
    w1['extra.bias'] = { shape: [8], data: randomF32(8, 4) };
    writeCheckpoint(f, w1);
    fs.writeFileSync(e.log, '');
    const wt = git(e, dir, 'diff');
    expect(wt).toMatch(/^diff --coral a\/model\.safetensors b\/model\.safetensors$/m);
    expect(wt).toMatch(/^\+ extra\.bias {2}F32\[8\] {2}added/m);
    expect(wt).toMatch(/^- layer0\.bias {2}F32\[64\] {2}removed/m);
    expect(wt).toMatch(
      /^~ layer0\.weight {2}F32\[64, 32\] {2}\d+\.\d% of elements changed, rel L2 [0-9.e-]+, max abs [0-9.e-]+, stored as sparse update \(SPARSE_UPDATE\)/m,
    );
    expect(wt).not.toMatch(/layer1\.weight/);
    git(e, dir, 'commit', '-q', '-am', 'v1');
    const cached = git(e, dir, 'diff', 'HEAD~1', 'HEAD');
    expect(cached).toMatch(/^~ layer0\.weight/m);
    // No smudge happened for these diffs: the filter handed pointers back.
    expect(fs.readFileSync(e.log, 'utf8')).not.toMatch(/smudged|smudge-delayed/);
    const stat = git(e, dir, 'diff', '--stat', 'HEAD~1', 'HEAD');
    expect(stat).toMatch(/model\.safetensors \| \d+ [+-]+/);
    const logp = git(e, dir, 'log', '-p', '-1');
    expect(logp).toMatch(/^\+extra\.bias {2}F32\[8\]/m);
    expect(logp).toMatch(/^-layer0\.bias {2}F32\[64\]/m);
    const colored = git(e, dir, '-c', 'color.diff=always', 'diff', 'HEAD~1', 'HEAD');
    expect(colored).toContain('\x1b[32m+ extra.bias');
  });
});

describe('git extension: other formats', () => {
  it('a real PyTorch .pt (shared storages, views) and an unparsable file round-trip byte for byte', () => {
    const e = env();
    const dir = initRepo(e, 'repo', ['*.pt', '*.bin']);
    const pt = path.join(dir, 'model.pt');
    const py = (seed: number) =>
      run(e, dir, '/usr/bin/python3', [
        '-c',
        `import torch; torch.manual_seed(${seed}); w = torch.randn(64, 32); ` +
          `torch.save({'w': w, 'wT': w.t(), 'row': w[3], 'b': torch.randn(32), 'step': ${seed}}, 'model.pt')`,
      ]);
    expect(py(1).code).toBe(0);
    fs.writeFileSync(path.join(dir, 'blob.bin'), Buffer.from(randomF32(5000, 3).buffer));
    const h0 = sha256(pt);
    const hb = sha256(path.join(dir, 'blob.bin'));
    git(e, dir, 'add', '.');
    git(e, dir, 'commit', '-q', '-m', 'v0');
    const ptr = git(e, dir, 'cat-file', 'blob', 'HEAD:model.pt');
    expect(ptr).toMatch(/^format pytorch$/m);
    expect(ptr).toMatch(/^views \d+$/m);
    expect(py(2).code).toBe(0);
    git(e, dir, 'commit', '-q', '-am', 'v1');
    const h1 = sha256(pt);
    git(e, dir, 'checkout', '-q', 'HEAD~1');
    expect(sha256(pt)).toBe(h0);
    expect(sha256(path.join(dir, 'blob.bin'))).toBe(hb);
    git(e, dir, 'checkout', '-q', 'main');
    expect(sha256(pt)).toBe(h1);
    expect(git(e, dir, 'status', '--porcelain')).toBe('');
  });
  it('a safetensors file, one with trailing bytes and a truncated one round-trip byte for byte', () => {
    const e = env();
    const dir = initRepo(e, 'repo', ['*.safetensors']);
    const good = path.join(dir, 'model.safetensors');
    writeCheckpoint(good, baseWeights(5, 256, 256));
    const whole = fs.readFileSync(good);
    // The header is valid in both; the payload is not what it says: the clean stores them as `coral add`
    // would, as plain files.
    fs.writeFileSync(path.join(dir, 'trailing.safetensors'), Buffer.concat([whole, Buffer.from('TRAILING')]));
    fs.writeFileSync(path.join(dir, 'cut.safetensors'), whole.subarray(0, whole.length - 100));
    const names = ['model.safetensors', 'trailing.safetensors', 'cut.safetensors'];
    const before = names.map((n) => sha256(path.join(dir, n)));
    git(e, dir, 'add', '.');
    git(e, dir, 'commit', '-q', '-m', 'v0');
    expect(git(e, dir, 'cat-file', 'blob', 'HEAD:model.safetensors')).toMatch(/^format safetensors$/m);
    for (const n of names.slice(1)) expect(git(e, dir, 'cat-file', 'blob', `HEAD:${n}`)).toMatch(/^format raw$/m);
    for (const n of names) fs.rmSync(path.join(dir, n));
    git(e, dir, 'checkout', '--', '.');
    expect(names.map((n) => sha256(path.join(dir, n)))).toEqual(before);
    expect(git(e, dir, 'status', '--porcelain')).toBe('');
    // Nothing is left in the payload store's scratch space.
    const tmp = path.join(dir, '.git', 'coral', 'tmp');
    expect(fs.existsSync(tmp) ? fs.readdirSync(tmp) : []).toEqual([]);
  });
});
