// Overlapping object writes (ingest pipeline), the parent fast path of base
// selection, and merge results written ahead of the worktree update.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BaseSelector } from '../../lib/ingest/bases';
import { ingestFile } from '../../lib/ingest/ingest';
import { Repository } from '../../lib/repository';
import type { DType } from '../../lib/tensor/dtype';
import { tensor } from '../../lib/tensor/tensor';
import { baseModel, f32, fineTune, perturb, weights, writeModel, writeSafetensors } from './helpers';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});

async function newRepo(config: Record<string, unknown> = {}): Promise<Repository> {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-pipeline-'));
  dirs.push(d);
  const repo = await Repository.init(d);
  for (const [k, v] of Object.entries(config)) await repo.config.set(k, v as never);
  return repo;
}

const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

describe('object writer with overlapping puts', () => {
  it('stores an id once when puts of it overlap, and publishes every object on flush', async () => {
    const repo = await newRepo();
    await repo.withWriter('test', async (w) => {
      const a = tensor('F32', [4096], f32(weights(4096, 1)));
      const b = tensor('F32', [4096], f32(weights(4096, 2)));
      // Not awaited one by one: the second put of `a` overlaps the first.
      const [ra, ra2, rb] = await Promise.all([w.put(a), w.put(a), w.put(b)]);
      expect(ra.stored).toBe(true);
      expect(ra2.stored).toBe(false);
      expect(ra2.id).toBe(ra.id);
      expect(rb.stored).toBe(true);
      expect(await w.has(ra.id)).toBe(true);
      await w.flush();
      expect(await repo.store.has(ra.id)).toBe(true);
      expect(await repo.store.has(rb.id)).toBe(true);
    });
    await repo.close();
  });

  it('ingests a file with duplicate segments byte-exact (the duplicate waits for the put under way)', async () => {
    const repo = await newRepo();
    const w1 = weights(64 * 64, 5);
    const file = path.join(repo.worktree, 'dup.safetensors');
    writeSafetensors(file, {
      a: { dtype: 'F32', shape: [64, 64], data: f32(w1) },
      b: { dtype: 'F32', shape: [64, 64], data: f32(w1) },
      c: { dtype: 'F32', shape: [64, 64], data: f32(weights(64 * 64, 6)) },
    });
    const { entry, report } = await repo.withWriter('test', (w) => ingestFile(w, file, 'dup.safetensors', null));
    expect(report.segments).toBe(3);
    expect(report.dedupedObjects).toBe(1);
    expect(entry.segments[0].object).toBe(entry.segments[1].object);
    expect(entry.sha256).toBe(sha(fs.readFileSync(file)));
    const out = path.join(repo.worktree, 'out.bin');
    await repo.add([file]);
    await repo.commit({ message: 'dup' });
    await repo.exportFile('HEAD', 'dup.safetensors', out);
    expect(sha(fs.readFileSync(out))).toBe(entry.sha256);
    await repo.close();
  });
});

describe('base selection: parent fast path', () => {
  async function selectorRun(parentTrust: number) {
    const repo = await newRepo({ 'similarity.minCosine': 0.5 });
    const base = baseModel(1);
    writeModel(path.join(repo.worktree, 'a.safetensors'), base);
    writeModel(path.join(repo.worktree, 'b.safetensors'), fineTune(base, 3, 0.02)); // a sibling the index finds
    await repo.add([path.join(repo.worktree, 'a.safetensors'), path.join(repo.worktree, 'b.safetensors')]);
    await repo.commit({ message: 'base + sibling' });
    const parentTree = await repo.treeOf('HEAD');
    const next = fineTune(base, 7, 1e-3); // close to a's version
    const file = path.join(repo.worktree, 'a.safetensors');
    writeModel(file, next);
    const { openIngestPolicy } = await import('../../lib/ingest/bases');
    const { segmentNames } = await import('../../lib/ingest/ingest');
    const names = segmentNames(parentTree.files['a.safetensors']);
    const parent = async (q: { name: string }) => {
      const s = names.get(q.name);
      return s ? { id: s.object } : null;
    };
    await repo.config.set('similarity.parentTrust', parentTrust);
    const policy = await openIngestPolicy(repo, parent);
    try {
      const { entry } = await repo.withWriter('test', (w) =>
        ingestFile(w, file, 'a.safetensors', policy.findBase, policy.hooks),
      );
      expect(entry.sha256).toBe(sha(fs.readFileSync(file)));
      return { stats: { ...(policy.selector as BaseSelector).stats }, repo, entry, names };
    } finally {
      await policy.close();
    }
  }

  it('takes a close parent without scoring index candidates', async () => {
    const { stats, repo, entry, names } = await selectorRun(0.01);
    expect(stats.parentFastPath).toBeGreaterThan(0);
    expect(stats.chosenIndex).toBe(0);
    // Every large tensor is a delta against the parent's same-named tensor.
    const w = entry.tensors.find((t) => t.name === 'l1.weight')!;
    const info = await repo.reader.info(entry.segments[w.segment].object);
    expect(info.base).toBe(names.get('l1.weight')!.object);
    await repo.close();
  });

  it('searches and scores the index when parentTrust is 0', async () => {
    const { stats, repo } = await selectorRun(0);
    expect(stats.parentFastPath).toBe(0);
    expect(stats.scored).toBeGreaterThan(stats.queries - 1);
    await repo.close();
  });
});

describe('large segments through reused scratch buffers', () => {
  // Tensors of 5 MiB and more are read, base-decoded and checked out through lib/odb/scratch.ts.
  const big = (seed: number, n: number, rel = 0): Float32Array => {
    const a = weights(n, seed);
    return rel ? perturb(a, seed + 7, rel) : a;
  };
  for (const trust of [0.01, 0] as const) {
    it(`adds a base and two fine-tunes of large tensors byte-exact (parentTrust ${trust})`, async () => {
      const repo = await newRepo({ 'similarity.parentTrust': trust });
      const file = path.join(repo.worktree, 'm.safetensors');
      const n = (5 << 20) / 4 + 1024; // just over the scratch threshold, not a block multiple
      const versions: Buffer[] = [];
      const base = { a: big(1, n), b: big(2, n), c: big(3, 1000) };
      const mk = (v: typeof base) =>
        writeSafetensors(file, {
          a: { dtype: 'F32', shape: [n], data: f32(v.a) },
          b: { dtype: 'F32', shape: [n], data: f32(v.b) },
          c: { dtype: 'F32', shape: [1000], data: f32(v.c) },
        });
      let cur = base;
      for (let k = 0; k < 3; k++) {
        mk(cur);
        versions.push(fs.readFileSync(file));
        await repo.add([file]);
        await repo.commit({ message: `v${k}` });
        cur = { a: perturb(cur.a, 10 + k, 2e-3), b: perturb(cur.b, 20 + k, 2e-3), c: cur.c };
      }
      for (let k = 0; k < 3; k++) {
        fs.rmSync(file);
        await repo.checkout(`HEAD~${2 - k}`, { paths: [file] });
        expect(sha(fs.readFileSync(file))).toBe(sha(versions[k]));
      }
      await repo.close();
    });
  }
});

describe('small segments as concurrent tasks', () => {
  // Segments up to 2 MiB run their lookup and put as tasks, several at once (lib/ingest/ingest.ts).
  // Sizes cycle from a few bytes to just over the task threshold, with duplicates spaced closer
  // than the task window, so tasks finish out of file order.
  const sizes = [16, 1000, 65536, 300, (2 << 20) / 4, 7, 40000, (2 << 20) / 4 + 256, 128];
  const model = (rel: number) => {
    const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
    const name = (i: number) => `t${String(i).padStart(2, '0')}`;
    for (let i = 0; i < 60; i++) {
      // Every tenth tensor repeats the one three before it.
      if (i % 10 === 9) {
        out[name(i)] = out[name(i - 3)];
        continue;
      }
      const n = sizes[i % sizes.length];
      const w = weights(n, 100 + i);
      out[name(i)] = { dtype: 'F32', shape: [n], data: f32(rel ? perturb(w, 200 + i, rel) : w) };
    }
    return out;
  };

  it('records each segment under its own content id and checks out both versions byte-exact', async () => {
    const repo = await newRepo();
    const file = path.join(repo.worktree, 'many.safetensors');
    const versions: Buffer[] = [];
    const { contentIdSync } = await import('../../lib/hash');
    for (const rel of [0, 2e-3]) {
      writeSafetensors(file, model(rel));
      const bytes = fs.readFileSync(file);
      versions.push(bytes);
      const [report] = (await repo.add([file])).files;
      expect(report.segments).toBe(60);
      // The repeats; the fine-tune also keeps the first version's skeleton (the same header).
      expect(report.dedupedObjects).toBe(rel ? 7 : 6);
      if (rel) expect(report.deltaObjects).toBeGreaterThan(30);
      await repo.commit({ message: `rel ${rel}` });
      const entry = (await repo.treeOf('HEAD')).files['many.safetensors'];
      for (const s of entry.segments) {
        const view = tensor(s.dtype as DType, s.shape, bytes.subarray(s.offset, s.offset + s.length));
        expect(s.object).toBe(contentIdSync(view));
      }
    }
    for (let k = 0; k < 2; k++) {
      fs.rmSync(file);
      await repo.checkout(`HEAD~${1 - k}`, { paths: [file] });
      expect(sha(fs.readFileSync(file))).toBe(sha(versions[k]));
    }
    await repo.close();
  });

  it('rejects with the failure of a task in flight, and stores nothing of the file', async () => {
    const repo = await newRepo();
    const file = path.join(repo.worktree, 'many.safetensors');
    writeSafetensors(file, model(0));
    const boom = new Error('lookup failed for t23');
    const findBase = async (q: { name: string }) => {
      if (q.name === 't23') throw boom;
      return null;
    };
    await expect(repo.withWriter('test', (w) => ingestFile(w, file, 'many.safetensors', findBase))).rejects.toBe(boom);
    const packs = fs
      .readdirSync(path.join(repo.worktree, '.coral', 'objects', 'packs'))
      .filter((f) => f.endsWith('.h5'));
    expect(packs).toEqual([]);
    await repo.close();
  });
});
