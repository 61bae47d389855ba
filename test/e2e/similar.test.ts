// End to end: `coral add` keeps the similarity index (also with two concurrent
// writers), `coral show --json` reports codec and base, `coral fsck
// --rebuild-index` rebuilds both indexes, `coral similar` answers provenance.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RepoSimilarity, similaritySettings } from '../../lib/ingest/similarity';
import { Repository } from '../../lib/repository';
import { baseModel, cliAsync, cliOk, fineTune, writeModel } from '../ingest/helpers';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-similar-e2e-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function indexIds(): Promise<string[]> {
  const repo = await Repository.open(dir);
  const sim = await RepoSimilarity.open(repo.layout.simindex, similaritySettings(repo.config));
  const ids = sim.store.index.ids().sort();
  await sim.close();
  await repo.close();
  return ids;
}

describe('coral similar / similarity index (CLI)', () => {
  const base = baseModel(1);

  it('two concurrent adds keep the index consistent', async () => {
    cliOk(dir, ['init']);
    writeModel(path.join(dir, 'base.safetensors'), base);
    cliOk(dir, ['add', 'base.safetensors']);
    cliOk(dir, ['commit', '-m', 'base']);
    writeModel(path.join(dir, 'a.safetensors'), fineTune(base, 2), 'model.');
    writeModel(path.join(dir, 'b.safetensors'), baseModel(3));
    const [ra, rb] = await Promise.all([
      cliAsync(dir, ['add', 'a.safetensors']),
      cliAsync(dir, ['add', 'b.safetensors']),
    ]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    cliOk(dir, ['commit', '-m', 'a and b']);
    const ids = await indexIds();
    expect(ids.length).toBe(18); // 3 files x 6 distinct tensors
    const fsck = JSON.parse(cliOk(dir, ['fsck', '--json']));
    expect(fsck.ok).toBe(true);
  });

  it('show --json reports the delta base found through the index', () => {
    const a = JSON.parse(cliOk(dir, ['show', 'HEAD:a.safetensors', '--json']));
    const b = JSON.parse(cliOk(dir, ['show', 'HEAD:base.safetensors', '--json']));
    const obj = Object.fromEntries(b.tensors.map((t: { name: string; object: string }) => [t.name, t.object]));
    const w = a.tensors.find((t: { name: string }) => t.name === 'model.l1.weight');
    expect(w.base).toBe(obj['l1.weight']);
    expect(w.codec).toMatch(/^DELTA_|SPARSE_UPDATE/);
    expect(w.depth).toBe(1);
  });

  it('fsck --rebuild-index rebuilds the similarity index', async () => {
    const before = await indexIds();
    fs.rmSync(path.join(dir, '.coral', 'simindex'), { recursive: true, force: true });
    const out = cliOk(dir, ['fsck', '--rebuild-index']);
    expect(out).toMatch(/similarity index rebuilt: 18 entries/);
    expect(await indexIds()).toEqual(before);
  });

  it('similar ranks the true base first (worktree file and rev:path)', () => {
    writeModel(path.join(dir, 'query.safetensors'), fineTune(base, 5), 'renamed.');
    const r = JSON.parse(cliOk(dir, ['similar', 'query.safetensors', '--json', '-k', '3']));
    expect(r.matches[0].path).toBe('base.safetensors');
    expect(r.matches[0].matched).toBe(1);
    expect(r.matches.map((m: { path: string }) => m.path)).not.toContain('b.safetensors');
    const r2 = JSON.parse(cliOk(dir, ['similar', 'HEAD:a.safetensors', '--json']));
    expect(r2.matches[0].path).toBe('base.safetensors');
    const text = cliOk(dir, ['similar', 'HEAD:a.safetensors']);
    expect(text).toMatch(/base\.safetensors/);
    const stats = JSON.parse(cliOk(dir, ['stats', '--json']));
    expect(stats.deltaObjects).toBeGreaterThanOrEqual(3);
    expect(stats.chainDepths['1']).toBe(stats.deltaObjects);
  });
});
