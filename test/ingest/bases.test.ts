import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RepoSimilarity, rebuildSimilarityIndex, similaritySettings } from '../../lib/ingest/similarity';
import { Repository } from '../../lib/repository';
import { baseModel, fineTune, weights, writeModel, type Model } from './helpers';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});

async function newRepo(config: Record<string, unknown> = {}): Promise<Repository> {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bases-'));
  dirs.push(d);
  const repo = await Repository.init(d);
  for (const [k, v] of Object.entries(config)) await repo.config.set(k, v as never);
  return repo;
}

async function addCommit(repo: Repository, file: string, m: Model, prefix = ''): Promise<string> {
  fs.mkdirSync(path.dirname(path.join(repo.worktree, file)), { recursive: true });
  writeModel(path.join(repo.worktree, file), m, prefix);
  await repo.add([path.join(repo.worktree, file)]);
  return repo.commit({ message: file });
}

const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

async function segInfo(repo: Repository, rev: string, file: string) {
  const e = (await repo.treeOf(rev)).files[file];
  const out: Record<string, { object: string; codec: string; base: string | null; depth: number }> = {};
  for (const t of e.tensors) {
    const s = e.segments[t.segment];
    const i = await repo.reader.info(s.object);
    out[t.name] = { object: s.object, codec: i.codec, base: i.base, depth: i.depth };
  }
  return out;
}

describe('delta-aware ingestion with the similarity index', () => {
  it('stores a renamed-tensor fine-tune in a new file as deltas against the base it finds', async () => {
    const repo = await newRepo();
    const base = baseModel(1);
    await addCommit(repo, 'base.safetensors', base);
    await addCommit(repo, 'other.safetensors', baseModel(2)); // an unrelated model of the same shapes
    await addCommit(repo, 'ft/finetuned.safetensors', fineTune(base, 7), 'model.');
    const b = await segInfo(repo, 'HEAD', 'base.safetensors');
    const f = await segInfo(repo, 'HEAD', 'ft/finetuned.safetensors');
    for (const k of ['l1.weight', 'l2.weight', 'l3.weight']) {
      expect(f[`model.${k}`].base, k).toBe(b[k].object);
      expect(f[`model.${k}`].codec).toMatch(/^DELTA_|SPARSE_UPDATE/);
    }
    const s = await repo.stats();
    expect(s.deltaObjects).toBeGreaterThanOrEqual(3);
    expect(s.chainDepths['1']).toBeGreaterThanOrEqual(3);
    // Byte-exact on export.
    const out = path.join(repo.worktree, 'check.bin');
    await repo.exportFile('HEAD', 'ft/finetuned.safetensors', out);
    expect(sha(fs.readFileSync(out))).toBe(sha(fs.readFileSync(path.join(repo.worktree, 'ft/finetuned.safetensors'))));
    await repo.close();
  });

  it('finds nothing with similarity.enabled=false (and writes no index)', async () => {
    const repo = await newRepo({ 'similarity.enabled': false });
    const base = baseModel(1);
    await addCommit(repo, 'base.safetensors', base);
    await addCommit(repo, 'ft.safetensors', fineTune(base, 7), 'model.');
    const f = await segInfo(repo, 'HEAD', 'ft.safetensors');
    expect(Object.values(f).every((x) => x.base === null)).toBe(true);
    expect(fs.existsSync(repo.layout.simindex)).toBe(false);
    await repo.close();
  });

  it('never substitutes a small tensor that is similar to a stored one: only lossless deltas', async () => {
    // minNumel 1: even 16-element biases are indexed and get similar bases proposed.
    const repo = await newRepo({ 'similarity.minNumel': 1, 'similarity.minCosine': 0.5 });
    const bias = weights(16, 3);
    const near = new Float32Array(bias);
    near[5] = Math.fround(near[5] * (1 + 1e-6)); // one ulp-ish change: cosine ~1
    near[9] = -0; // and a signed zero
    const big = weights(64 * 64, 4);
    await addCommit(repo, 'a.safetensors', { w: big, b: bias });
    await addCommit(repo, 'b.safetensors', { 'x.w': big, 'x.b': near });
    const a = await segInfo(repo, 'HEAD', 'a.safetensors');
    const b = await segInfo(repo, 'HEAD', 'b.safetensors');
    expect(b['x.b'].object).not.toBe(a['b'].object);
    const t = await repo.readTensor('HEAD', 'b.safetensors', 'x.b');
    expect(Buffer.from(t.data).equals(Buffer.from(near.buffer))).toBe(true);
    expect(Object.is(new Float32Array(t.data.slice().buffer)[9], -0)).toBe(true);
    const out = path.join(repo.worktree, 'check.bin');
    await repo.exportFile('HEAD', 'b.safetensors', out);
    expect(fs.readFileSync(out).equals(fs.readFileSync(path.join(repo.worktree, 'b.safetensors')))).toBe(true);
    await repo.close();
  });

  it('keeps the index across reopen and rebuilds it from the objects (attributes or decoding)', async () => {
    for (const storeFingerprints of [false, true]) {
      const repo = await newRepo({ 'similarity.storeFingerprints': storeFingerprints });
      const base = baseModel(1);
      await addCommit(repo, 'base.safetensors', base);
      await addCommit(repo, 'ft.safetensors', fineTune(base, 3));
      await repo.close();
      const again = await Repository.open(repo.worktree);
      const settings = similaritySettings(again.config);
      const sim = await RepoSimilarity.open(again.layout.simindex, settings);
      const ids = sim.store.index.ids().sort();
      await sim.close();
      expect(ids.length).toBe(12); // 6 tensors x 2 files, all >= minNumel
      fs.rmSync(again.layout.simindex, { recursive: true, force: true });
      const r = await rebuildSimilarityIndex(again.layout.simindex, again, settings);
      expect(r.entries).toBe(12);
      if (storeFingerprints) expect(r).toMatchObject({ fromAttributes: 12, decoded: 0 });
      else expect(r).toMatchObject({ fromAttributes: 0, decoded: 12 });
      const sim2 = await RepoSimilarity.open(again.layout.simindex, settings);
      expect(sim2.store.index.ids().sort()).toEqual(ids);
      await sim2.close();
      // A corrupt snapshot is replaced on open (the index is a cache), and rebuild refills it.
      fs.writeFileSync(path.join(again.layout.simindex, 'index.csx'), 'garbage');
      expect((await again.rebuildSimilarityIndex()).entries).toBe(12);
      await again.close();
    }
  });

  it('bounds delta chains by core.maxChainDepth and checks out every commit byte-exact', async () => {
    const repo = await newRepo({ 'core.maxChainDepth': 2 });
    let m = baseModel(5);
    const commits: Array<{ id: string; sha: string }> = [];
    for (let i = 0; i < 7; i++) {
      const id = await addCommit(repo, 'ckpt.safetensors', m);
      commits.push({ id, sha: sha(fs.readFileSync(path.join(repo.worktree, 'ckpt.safetensors'))) });
      m = fineTune(m, 20 + i);
    }
    const s = await repo.stats();
    expect(s.maxChainDepth).toBe(2);
    expect(s.deltaObjects).toBeGreaterThan(6);
    for (const d of Object.keys(s.chainDepths)) expect(Number(d)).toBeLessThanOrEqual(2);
    for (const c of commits) {
      for (const x of Object.values(await segInfo(repo, c.id, 'ckpt.safetensors')))
        expect(x.depth).toBeLessThanOrEqual(2);
      const fresh = await Repository.open(repo.worktree); // cold cache: every chain decoded from the packs
      const out = path.join(repo.worktree, 'out.bin');
      await fresh.exportFile(c.id, 'ckpt.safetensors', out);
      expect(sha(fs.readFileSync(out))).toBe(c.sha);
      await fresh.close();
    }
    await repo.close();
  });

  it('ranks the true base first for a worktree file and for a committed rev:path', async () => {
    const repo = await newRepo();
    const base = baseModel(1);
    await addCommit(repo, 'unrelated.safetensors', baseModel(9));
    await addCommit(repo, 'base.safetensors', base);
    await addCommit(repo, 'sibling.safetensors', fineTune(base, 11, 0.1));
    writeModel(path.join(repo.worktree, 'query.safetensors'), fineTune(base, 12, 0.1), 'model.');
    const r = await repo.similar({ file: path.join(repo.worktree, 'query.safetensors') });
    expect(r.matches[0].path).toBe('base.safetensors');
    expect(r.matches[0].matched).toBe(1);
    expect(r.matches[0].score).toBeGreaterThan(r.matches[1].score);
    expect(r.matches.find((x) => x.path === 'unrelated.safetensors')).toBeUndefined();
    const r2 = await repo.similar({ rev: 'HEAD', path: 'sibling.safetensors' });
    expect(r2.matches[0].path).toBe('base.safetensors');
    expect(r2.matches.some((x) => x.path === 'sibling.safetensors')).toBe(false);
    await repo.close();
  });
});
