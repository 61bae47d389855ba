// Casts and resizes through the repository: a BF16/F16 copy of a committed F32
// model is stored as CAST objects (≤ 1% of its size plus the skeleton) and
// checks out byte for byte; `similar` ranks the F32 original first; torch's
// own bf16/fp16 casts reproduce with no residual; an embedding grown by new
// tokens is stored as ROWS against the parent's version.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { castTensorSync } from '../../lib/codec';
import { showFile } from '../../lib/commands/show';
import { Repository } from '../../lib/repository';
import type { DType } from '../../lib/tensor/dtype';
import { hasTorch, python } from '../helpers/cli';
import { cliOk, f32, weights, writeSafetensors } from './helpers';

const dirs: string[] = [];
afterAll(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});

async function newRepo(): Promise<Repository> {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-cast-'));
  dirs.push(d);
  return Repository.init(d);
}

type Model = Record<string, { shape: number[]; data: Float32Array }>;

function model(seed: number, vocab = 3200): Model {
  return {
    'embed.weight': { shape: [vocab, 256], data: weights(vocab * 256, seed * 10 + 1, 0.02) },
    'l1.weight': { shape: [256, 512], data: weights(256 * 512, seed * 10 + 2) },
    'l1.bias': { shape: [512], data: weights(512, seed * 10 + 3) },
    'l2.weight': { shape: [512, 256], data: weights(512 * 256, seed * 10 + 4) },
    'norm.weight': { shape: [256], data: weights(256, seed * 10 + 5, 1) },
  };
}

function write(file: string, m: Model, dtype: DType = 'F32'): void {
  const t: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [k, v] of Object.entries(m)) {
    const x = { dtype: 'F32' as DType, shape: v.shape, data: f32(v.data) };
    t[k] = dtype === 'F32' ? x : { ...castTensorSync(x, dtype), shape: v.shape };
  }
  writeSafetensors(file, t, { format: 'pt' });
}

const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

async function storedBytes(repo: Repository, rev: string, file: string) {
  const e = (await repo.treeOf(rev)).files[file];
  let segments = 0;
  for (const s of e.segments) segments += (await repo.reader.info(s.object)).storedSize;
  const skeleton = (await repo.reader.info(e.skeleton)).storedSize;
  return { segments, skeleton, size: e.size };
}

describe('casts of a committed model', () => {
  let repo: Repository;
  const base = model(1);

  it('a BF16 and an F16 copy are stored as casts: <= 1% of their size plus the skeleton', async () => {
    repo = await newRepo();
    write(path.join(repo.worktree, 'model-fp32.safetensors'), base);
    write(path.join(repo.worktree, 'other-fp32.safetensors'), model(2)); // an unrelated model of the same shapes
    await repo.add([
      path.join(repo.worktree, 'model-fp32.safetensors'),
      path.join(repo.worktree, 'other-fp32.safetensors'),
    ]);
    await repo.commit({ message: 'fp32' });
    for (const dt of ['BF16', 'F16'] as const) {
      const name = `model-${dt.toLowerCase()}.safetensors`;
      write(path.join(repo.worktree, name), base, dt);
      await repo.add([path.join(repo.worktree, name)]);
      await repo.commit({ message: dt });
      const s = await storedBytes(repo, 'HEAD', name);
      expect(s.segments, dt).toBeLessThanOrEqual(0.01 * s.size);
      const f = await showFile(repo, 'HEAD', name);
      if ('target' in f) throw new Error('not a checkpoint');
      const fp32 = await showFile(repo, 'HEAD', 'model-fp32.safetensors');
      if ('target' in fp32) throw new Error('not a checkpoint');
      for (const t of f.tensors) {
        expect(t.codec, t.name).toBe('CAST');
        expect(t.base).toBe(fp32.tensors.find((x) => x.name === t.name)!.object);
        expect(t.derived).toEqual({ kind: 'cast', residual: 0, rounding: 'RNE', baseDtype: 'F32' });
      }
    }
    const st = await repo.stats();
    expect(st.castObjects).toBe(10);
  });

  it('checks out byte for byte from a fresh process view', async () => {
    const again = await Repository.open(repo.worktree);
    for (const name of ['model-bf16.safetensors', 'model-f16.safetensors']) {
      const want = sha(fs.readFileSync(path.join(repo.worktree, name)));
      fs.rmSync(path.join(repo.worktree, name));
      await again.checkout('HEAD', { paths: [path.join(again.worktree, name)] });
      expect(sha(fs.readFileSync(path.join(again.worktree, name)))).toBe(want);
    }
    await again.close();
  });

  it('`similar` ranks the F32 original first for the BF16 copy', async () => {
    const r = await repo.similar({ file: path.join(repo.worktree, 'model-bf16.safetensors') });
    const others = r.matches.filter((m) => !m.path.startsWith('model-bf16'));
    expect(others[0].path).toBe('model-fp32.safetensors');
    expect(others[0].matched).toBe(1);
    expect(r.matches.map((m) => m.path)).not.toContain('other-fp32.safetensors');
  });

  it('`coral show` and `coral stats` report the casts', () => {
    const out = cliOk(repo.worktree, ['show', 'HEAD:model-bf16.safetensors']);
    expect(out).toMatch(/embed\.weight {2}BF16\[3200,256\] {2}CAST \(cast of [0-9a-f]+ \(RNE\), residual 0 elements/);
    expect(cliOk(repo.worktree, ['stats'])).toMatch(/casts 10 {2}row-resized 0/);
  });
});

describe('chains', () => {
  async function series(depth: number) {
    const repo = await newRepo();
    await repo.config.set('core.maxChainDepth', depth);
    const file = path.join(repo.worktree, 'model.safetensors');
    const v1 = model(4);
    write(file, v1);
    await repo.add([file]);
    await repo.commit({ message: 'v1' });
    const v2: Model = {};
    for (const [k, v] of Object.entries(v1))
      v2[k] = { shape: v.shape, data: v.data.map((x, i) => (i % 7 === 0 ? x * (1 + 1e-3) : x)) };
    write(file, v2); // a fine-tune: stored as a delta on v1
    await repo.add([file]);
    await repo.commit({ message: 'v2' });
    const bf = path.join(repo.worktree, 'model-bf16.safetensors');
    write(bf, v2, 'BF16');
    const want = sha(fs.readFileSync(bf));
    await repo.add([bf]);
    await repo.commit({ message: 'bf16 of v2' });
    const f = await showFile(repo, 'HEAD', 'model-bf16.safetensors');
    if ('target' in f) throw new Error('not a checkpoint');
    fs.rmSync(bf);
    const again = await Repository.open(repo.worktree);
    await again.exportFile('HEAD', 'model-bf16.safetensors', bf);
    expect(sha(fs.readFileSync(bf))).toBe(want);
    await again.close();
    return f.tensors.find((t) => t.name === 'l1.weight')!;
  }

  it("a cast's base may itself be a delta (the cast sits one level above it)", async () => {
    const t = await series(8);
    expect(t.codec).toBe('CAST');
    expect(t.depth).toBe(2);
    expect(t.derived).toMatchObject({ kind: 'cast', residual: 0 });
  });

  it("at the depth limit the cast goes against the delta's base, with a residual", async () => {
    const t = await series(1);
    expect(t.codec).toBe('CAST');
    expect(t.depth).toBe(1);
    expect(t.derived!.residual).toBeGreaterThan(0);
  });
});

describe('a fine-tune that adds tokens to the embedding', () => {
  it('stores the grown embedding as ROWS on the parent version: new rows plus 1%', async () => {
    const repo = await newRepo();
    const file = path.join(repo.worktree, 'model.safetensors');
    const m = model(3);
    write(file, m);
    await repo.add([file]);
    await repo.commit({ message: 'v1' });
    const grown = new Float32Array(3216 * 256);
    grown.set(m['embed.weight'].data);
    grown.set(weights(16 * 256, 77, 0.02), 3200 * 256);
    write(file, { ...m, 'embed.weight': { shape: [3216, 256], data: grown } });
    const want = sha(fs.readFileSync(file));
    await repo.add([file]);
    await repo.commit({ message: 'v2: 16 new tokens' });
    const f = await showFile(repo, 'HEAD', 'model.safetensors');
    if ('target' in f) throw new Error('not a checkpoint');
    const e = f.tensors.find((t) => t.name === 'embed.weight')!;
    expect(e.codec).toBe('ROWS');
    expect(e.derived).toMatchObject({ kind: 'rows', baseRows: 3200, sharedRows: 3200, residual: 0 });
    expect(e.storedSize).toBeLessThanOrEqual(16 * 256 * 4 + 0.01 * 3216 * 256 * 4);
    expect((await repo.stats()).resizedObjects).toBe(1);
    fs.rmSync(file);
    const again = await Repository.open(repo.worktree);
    await again.exportFile('HEAD', 'model.safetensors', file);
    expect(sha(fs.readFileSync(file))).toBe(want);
    await again.close();
  });
});

describe.skipIf(!hasTorch())('torch-written bf16 and fp16 checkpoints', () => {
  it('torch .to(bfloat16) / .half() of a committed fp32 .pt reproduce with no residual', async () => {
    const repo = await newRepo();
    python(
      `
import sys, torch
torch.manual_seed(0)
sd = {'w1': torch.randn(384, 256) * 0.02, 'w2': torch.randn(256, 384) * 0.05, 'b': torch.randn(384)}
sd['w1'][0, :4] = torch.tensor([float('inf'), -float('inf'), -0.0, 1e-42])  # inf, -0, an f32 subnormal
sd['w2'][0, :3] = torch.tensor([70000.0, 65519.0, 3.4e38])                     # past F16's range
# NaNs with payloads and a negative NaN: torch writes canonical NaNs, coral's cast keeps payload bits
nan = torch.randn(1024) * 0.1
nan[:4] = torch.tensor([0x7fa00001, -0x00400000, 0x7fc00000, 0x7f800001], dtype=torch.int32).view(torch.float32)
sd['nan'] = nan
torch.save(sd, sys.argv[1] + '/fp32.pt')
torch.save({k: v.to(torch.bfloat16) for k, v in sd.items()}, sys.argv[1] + '/bf16.pt')
torch.save({k: v.half() for k, v in sd.items()}, sys.argv[1] + '/fp16.pt')
`,
      [repo.worktree],
    );
    await repo.add([path.join(repo.worktree, 'fp32.pt')]);
    await repo.commit({ message: 'fp32' });
    for (const name of ['bf16.pt', 'fp16.pt']) {
      const want = sha(fs.readFileSync(path.join(repo.worktree, name)));
      await repo.add([path.join(repo.worktree, name)]);
      await repo.commit({ message: name });
      const f = await showFile(repo, 'HEAD', name);
      if ('target' in f) throw new Error('not a checkpoint');
      for (const t of f.tensors) {
        expect(t.codec, `${name} ${t.name}`).toBe('CAST');
        if (t.name === 'nan') {
          // Only the NaNs whose bits torch canonicalises differently are in the residual.
          expect(t.derived!.residual, `${name} nan`).toBeGreaterThan(0);
          expect(t.derived!.residual, `${name} nan`).toBeLessThanOrEqual(4);
          continue;
        }
        expect(t.derived, `${name} ${t.name} ${JSON.stringify(t)}`).toMatchObject({
          kind: 'cast',
          residual: 0,
          rounding: 'RNE',
        });
      }
      fs.rmSync(path.join(repo.worktree, name));
      await repo.exportFile('HEAD', name, path.join(repo.worktree, name));
      expect(sha(fs.readFileSync(path.join(repo.worktree, name)))).toBe(want);
    }
  });
});
