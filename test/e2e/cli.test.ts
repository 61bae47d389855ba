// End-to-end: the real `coral` CLI in temp directories. Every command runs in
// a fresh process, so every step also exercises reopening the repository.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  coral,
  coralAsync,
  f32,
  hasTorch,
  ok,
  perturb,
  python,
  sha256,
  tmpdir,
  weights,
  writeSafetensors,
  tempDirs,
} from '../helpers/cli';

const dirs = tempDirs({ needDist: true });
function repoDir(): string {
  const d = tmpdir();
  dirs.push(d);
  ok(d, ['init']);
  return d;
}

function model(file: string, seed: number, opts: { rel?: number; fraction?: number; base?: number } = {}): void {
  const shapes: Record<string, number[]> = {
    'encoder.weight': [256, 128],
    'encoder.bias': [256],
    'decoder.weight': [128, 256],
    'decoder.bias': [128],
    'head.weight': [10, 128],
  };
  const tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  let k = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    let w = weights(n, (opts.base ?? seed) * 100 + k++);
    if (opts.base !== undefined) w = perturb(w, seed * 100 + k, opts.rel ?? 1e-3, opts.fraction ?? 1);
    tensors[name] = { dtype: 'F32', shape, data: f32(w) };
  }
  writeSafetensors(file, tensors, { seed: String(seed) });
}

describe('coral CLI end to end', () => {
  it('multi-commit history with branches and tags round-trips every file byte-for-byte', () => {
    const d = repoDir();
    const ck = path.join(d, 'ckpt', 'model.safetensors');
    fs.mkdirSync(path.dirname(ck));
    const npy = path.join(d, 'stats.npy');
    const committed: Array<{ id: string; files: Record<string, string> }> = [];
    const snapshot = (id: string) => {
      const files: Record<string, string> = {};
      for (const f of [ck, npy]) if (fs.existsSync(f)) files[path.relative(d, f)] = sha256(f);
      committed.push({ id, files });
    };
    const commitId = (msg: string) => JSON.parse(ok(d, ['commit', '-m', msg, '--json'])).id as string;

    model(ck, 1);
    ok(d, ['add', 'ckpt']);
    const st = JSON.parse(ok(d, ['status', '--json']));
    expect(st.files).toEqual([{ path: 'ckpt/model.safetensors', staged: 'added', unstaged: null }]);
    snapshot(commitId('base'));
    ok(d, ['tag', 'v1', '-m', 'first', '--metric', 'loss=2.5', '--metric', 'acc=0.41']);

    for (let s = 2; s <= 4; s++) {
      model(ck, s, { base: 1, rel: 1e-3 * s });
      ok(d, ['add', ck]);
      snapshot(commitId(`step ${s}`));
    }
    ok(d, ['checkout', '-b', 'experiment']);
    model(ck, 9, { base: 1, rel: 1e-2, fraction: 0.01 });
    // A non-safetensors file in the same commit: a NumPy array written by hand.
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
    const padded = header + ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
    const hb = Buffer.alloc(10);
    hb.write('\x93NUMPY', 0, 'latin1');
    hb[6] = 1;
    hb[7] = 0;
    hb.writeUInt16LE(padded.length, 8);
    fs.writeFileSync(
      npy,
      Buffer.concat([hb, Buffer.from(padded, 'latin1'), Buffer.from(new Float32Array([1.5, -0, NaN]).buffer)]),
    );
    ok(d, ['add', '.']);
    snapshot(commitId('sparse experiment'));
    ok(d, ['tag', 'exp-1']);

    // History is intact when read back by fresh processes.
    const log = JSON.parse(ok(d, ['log', '--json']));
    expect(log.map((e: { id: string }) => e.id)).toEqual(committed.map((c) => c.id).reverse());
    expect(ok(d, ['log', '--oneline', 'main'])).toContain('step 4');
    const tags = JSON.parse(ok(d, ['tag', '--json']));
    const v1 = tags.find((t: { name: string }) => t.name === 'v1');
    expect(v1.annotated).toBe(true);
    expect(v1.tag.metadata.metrics).toEqual({ loss: 2.5, acc: 0.41 });
    expect(v1.commit).toBe(committed[0].id);
    const branches = JSON.parse(ok(d, ['branch', '--json']));
    expect(branches.map((b: { name: string }) => b.name).sort()).toEqual(['experiment', 'main']);

    // Every commit checks out byte-for-byte.
    for (const c of committed) {
      ok(d, ['checkout', '--detach', c.id]);
      for (const [rel, h] of Object.entries(c.files)) expect(sha256(path.join(d, rel)), `${rel} at ${c.id}`).toBe(h);
      if (!c.files['stats.npy']) expect(fs.existsSync(npy)).toBe(false);
    }
    ok(d, ['checkout', 'main']);
    expect(sha256(ck)).toBe(committed[3].files['ckpt/model.safetensors']);
    expect(ok(d, ['checkout', 'v1'])).toContain('HEAD is now at');
    expect(sha256(ck)).toBe(committed[0].files['ckpt/model.safetensors']);
    ok(d, ['checkout', 'experiment']);

    // Diff between revisions reports per-tensor change metrics (v1 -> a 1% sparse update of it).
    const diff = JSON.parse(ok(d, ['diff', 'v1', 'experiment', '--json']));
    const f = diff.find((x: { path: string }) => x.path === 'ckpt/model.safetensors');
    expect(f.change).toBe('modified');
    const enc = f.tensors.find((t: { name: string }) => t.name === 'encoder.weight');
    expect(enc.metrics.changedFraction).toBeGreaterThan(0.005);
    expect(enc.metrics.changedFraction).toBeLessThan(0.02);
    expect(enc.metrics.relL2).toBeGreaterThan(0);
    expect(diff.find((x: { path: string }) => x.path === 'stats.npy').change).toBe('added');
    expect(ok(d, ['diff', 'main', 'experiment'])).toMatch(/~ encoder\.weight .*changed/);

    // compare shows tag metrics side by side.
    const cmp = JSON.parse(ok(d, ['compare', 'v1', 'exp-1', '--json']));
    expect(cmp.a.metrics).toEqual({ loss: 2.5, acc: 0.41 });
    expect(cmp.summary.tensorsModified).toBe(5);

    // show --json reports codecs and delta bases per tensor.
    const show = JSON.parse(ok(d, ['show', 'main', '--json']));
    const tensors = show.files['ckpt/model.safetensors'].tensors;
    expect(tensors.some((t: { base: string | null }) => t.base)).toBe(true);

    const stats = JSON.parse(ok(d, ['stats', '--json']));
    expect(stats.commits).toBe(5);
    expect(stats.ratio).toBeGreaterThan(1.2);
    expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
  });

  it('status and diff see worktree edits; checkout refuses to clobber them', () => {
    const d = repoDir();
    const ck = path.join(d, 'm.safetensors');
    model(ck, 1);
    ok(d, ['add', ck]);
    ok(d, ['commit', '-m', 'one']);
    expect(ok(d, ['status'])).toContain('working tree clean');
    ok(d, ['branch', 'other']);
    model(ck, 2, { base: 1, rel: 0.5 });
    const st = JSON.parse(ok(d, ['status', '--json']));
    expect(st.files).toEqual([{ path: 'm.safetensors', staged: null, unstaged: 'modified' }]);
    const diff = JSON.parse(ok(d, ['diff', '--json']));
    expect(diff[0].tensors.length).toBe(5);
    ok(d, ['add', ck]);
    ok(d, ['commit', '-m', 'two']);
    model(ck, 3, { base: 1, rel: 0.1 });
    const r = coral(d, ['checkout', 'other']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/CORAL_DIRTY_WORKTREE/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    ok(d, ['checkout', '-f', 'other']);
  });

  it('errors are one line with a code and a non-zero exit', () => {
    const d = tmpdir();
    dirs.push(d);
    const r = coral(d, ['log']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^coral: not a coral repository.*\(CORAL_NOT_A_REPOSITORY\)\n$/);
    ok(d, ['init']);
    expect(coral(d, ['commit', '-m', 'x']).stderr).toMatch(/CORAL_NOTHING_TO_COMMIT/);
    expect(coral(d, ['checkout', 'nope']).code).toBe(4);
    expect(coral(d, ['frobnicate']).code).toBe(2);
    expect(coral(d, ['log', '--bogus']).code).toBe(2);
    expect(coral(d, ['add', 'missing.bin']).stderr).toMatch(/did not match/);
    fs.writeFileSync(path.join(d, 'bad.safetensors'), Buffer.from([255, 255, 255, 255, 0, 0, 0, 0, 1, 2]));
    // Without --strict an unparsable checkpoint is stored as a plain file (test/e2e/plain-files.test.ts).
    const bad = coral(d, ['add', '--strict', 'bad.safetensors']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/CORAL_(FORMAT|LIMIT_EXCEEDED)/);
  });

  it('concurrent committers lose no update', async () => {
    const d = repoDir();
    const n = 4;
    for (let i = 0; i < n; i++) model(path.join(d, `w${i}.safetensors`), 10 + i);
    const results = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const a = await coralAsync(d, ['add', `w${i}.safetensors`]);
        if (a.code !== 0) return { add: a, commit: null };
        return { add: a, commit: await coralAsync(d, ['commit', '-m', `writer ${i}`, '--json']) };
      }),
    );
    const ids: string[] = [];
    for (const r of results) {
      expect(r.add.code, r.add.stderr).toBe(0);
      // A writer whose file was already committed by another gets "nothing to commit" (exit 7).
      expect([0, 7], r.commit!.stderr).toContain(r.commit!.code);
      if (r.commit!.code === 0) ids.push(JSON.parse(r.commit!.stdout).id);
    }
    expect(ids.length).toBeGreaterThan(0);
    const log = JSON.parse(ok(d, ['log', '--json'])).map((e: { id: string }) => e.id);
    for (const id of ids) expect(log).toContain(id);
    const show = JSON.parse(ok(d, ['show', '--json']));
    expect(Object.keys(show.files).sort()).toEqual(Array.from({ length: n }, (_, i) => `w${i}.safetensors`));
    expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
  });

  it('a crash mid-add or mid-commit leaves a repository that passes fsck', async () => {
    const d = repoDir();
    const ck = path.join(d, 'm.safetensors');
    model(ck, 1);
    ok(d, ['add', ck]);
    ok(d, ['commit', '-m', 'one']);
    const before = JSON.parse(ok(d, ['log', '--json']));
    for (const point of ['add:after-pack', 'commit:before-ref']) {
      model(ck, 2, { base: 1 });
      if (point === 'commit:before-ref') ok(d, ['add', ck]);
      const args = point.startsWith('add') ? ['add', ck] : ['commit', '-m', 'crash'];
      const r = await coralAsync(d, args, { CORAL_CRASH_AT: point });
      expect(r.signal).toBe('SIGKILL');
      const f = JSON.parse(ok(d, ['fsck', '--json']));
      expect(f.ok, JSON.stringify(f.problems)).toBe(true);
      expect(JSON.parse(ok(d, ['log', '--json']))).toEqual(before);
    }
    // A kill at an arbitrary moment of a larger add: same guarantee.
    const big = path.join(d, 'big.safetensors');
    writeSafetensors(big, { w: { dtype: 'F32', shape: [4096, 1024], data: f32(weights(4096 * 1024, 77)) } });
    const p = coralAsync(d, ['add', big]);
    await new Promise((r) => setTimeout(r, 150));
    const { execSync } = await import('node:child_process');
    try {
      execSync(`pkill -9 -f "coral.js add ${big}"`);
    } catch {
      /* it may have finished already */
    }
    await p;
    expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
    // And the repository keeps working.
    ok(d, ['add', ck, big]);
    ok(d, ['commit', '-m', 'after crash']);
    expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
  });

  it('detects a corrupted pack byte and names the object', () => {
    const d = repoDir();
    const ck = path.join(d, 'm.safetensors');
    model(ck, 5);
    ok(d, ['add', ck]);
    ok(d, ['commit', '-m', 'one']);
    const packs = fs.readdirSync(path.join(d, '.coral', 'objects', 'packs')).filter((f) => f.endsWith('.h5'));
    expect(packs.length).toBe(1);
    const pack = path.join(d, '.coral', 'objects', 'packs', packs[0]);
    const buf = fs.readFileSync(pack);
    // Flip a byte in the largest run of object data: the last quarter of the file is payload.
    const at = Math.floor(buf.length * 0.8);
    buf[at] ^= 0xff;
    fs.writeFileSync(pack, buf);
    const r = coral(d, ['fsck', '--json']);
    expect(r.code).toBe(9);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(false);
    expect(report.problems[0].message).toMatch(/[0-9a-f]{32}/);
    fs.rmSync(ck);
    const co = coral(d, ['checkout', '-f', 'main', '--', 'm.safetensors']);
    expect(co.code).toBe(9);
    expect(co.stderr).toMatch(/CORAL_(CHECKSUM_MISMATCH|CORRUPT_OBJECT)/);
  });

  it('gc keeps everything reachable and drops the rest', () => {
    const d = repoDir();
    const ck = path.join(d, 'm.safetensors');
    model(ck, 1);
    ok(d, ['add', ck]);
    ok(d, ['commit', '-m', 'one']);
    const h1 = sha256(ck);
    ok(d, ['checkout', '-b', 'tmp']);
    model(ck, 2);
    ok(d, ['add', ck]);
    ok(d, ['commit', '-m', 'throwaway']);
    ok(d, ['checkout', 'main']);
    ok(d, ['branch', '-D', 'tmp']);
    // Staged but uncommitted content must survive gc too.
    model(ck, 3, { base: 1 });
    ok(d, ['add', ck]);
    const h3 = sha256(ck);
    // Default grace period: nothing this young is pruned.
    expect(JSON.parse(ok(d, ['gc', '--json'])).removedObjects).toBe(0);
    const g1 = JSON.parse(ok(d, ['gc', '--prune=now', '--json']));
    // The deleted branch is still in the reflog, so nothing goes yet (git semantics).
    expect(g1.removedObjects).toBe(0);
    fs.rmSync(path.join(d, '.coral', 'logs'), { recursive: true, force: true });
    const g2 = JSON.parse(ok(d, ['gc', '--prune=now', '--json']));
    expect(g2.removedObjects).toBeGreaterThan(0);
    expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
    ok(d, ['commit', '-m', 'staged survives']);
    expect(sha256(ck)).toBe(h3);
    ok(d, ['checkout', '--detach', 'main~1']);
    expect(sha256(ck)).toBe(h1);
  });

  it.skipIf(!hasTorch())('stores torch.save checkpoints byte-exactly', () => {
    const d = repoDir();
    python(
      `import torch, sys
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
m(torch.randn(4, 64)).sum().backward(); opt.step()
torch.save({'model': m.state_dict(), 'optimizer': opt.state_dict(), 'epoch': 3}, sys.argv[1] + '/ckpt.pt')
torch.save(m.half().state_dict(), sys.argv[1] + '/half.bin')`,
      [d],
    );
    const h = { pt: sha256(path.join(d, 'ckpt.pt')), bin: sha256(path.join(d, 'half.bin')) };
    ok(d, ['add', 'ckpt.pt', 'half.bin']);
    ok(d, ['commit', '-m', 'torch']);
    const show = JSON.parse(ok(d, ['show', 'HEAD:ckpt.pt', '--json']));
    expect(show.format).toBe('pytorch');
    expect(show.tensors.map((t: { name: string }) => t.name)).toContain('model.0.weight');
    fs.rmSync(path.join(d, 'ckpt.pt'));
    fs.rmSync(path.join(d, 'half.bin'));
    ok(d, ['checkout', '-f', 'main']);
    expect(sha256(path.join(d, 'ckpt.pt'))).toBe(h.pt);
    expect(sha256(path.join(d, 'half.bin'))).toBe(h.bin);
    const loaded = python(
      `import torch, sys
c = torch.load(sys.argv[1] + '/ckpt.pt', weights_only=False)
print(c['epoch'], tuple(c['model']['0.weight'].shape))`,
      [d],
    );
    expect(loaded.trim()).toBe('3 (32, 64)');
  });
});
