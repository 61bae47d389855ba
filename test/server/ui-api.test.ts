// The web UI's JSON API (lib/server/ui, docs/ui.md, the contract in UI-API.md) through the real server
// (lib/server/app.ts) on loopback sockets: `coral ui`'s one-repository mode over a working repository, and
// `coral serve --ui` over a root of bare repositories behind tokens. Repositories are built in the test
// through the library (bench/lib/ui-repo.ts: seeded tensors, a loss metric per commit).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildUiRepo, safetensorsBytes } from '../../bench/lib/ui-repo';
import { InvalidArgumentError } from '../../lib/errors';
import { initBare } from '../../lib/remote/file';
import { Repository } from '../../lib/repository';
import { addToken, setAnonymousRead, startServer, type CoralServer } from '../../lib/server/index';
import { RESERVED_REPO_NAMES, checkRepoName } from '../../lib/server/repos';
import { layerOf } from '../../lib/server/ui/view';
import { ExperimentTracker } from '../../lib/train/experiment';

const tmp: string[] = [];
function tmpdir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmp.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

interface Reply<T = any> {
  status: number;
  body: T;
  type: string;
  text: string;
  location: string | null;
}

async function get<T = any>(base: string, p: string, token?: string): Promise<Reply<T>> {
  const res = await fetch(`${base}${p}`, {
    redirect: 'manual',
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return {
    status: res.status,
    text,
    type,
    body: type.includes('json') ? JSON.parse(text) : null,
    location: res.headers.get('location'),
  };
}

const COMMITS = 23;
const TENSORS = 30;
const ELEMENTS = 1024;

describe('layer / kind split of tensor names', () => {
  it('takes the first purely numeric dotted component as the layer', () => {
    expect(layerOf('model.layers.12.mlp.up_proj.weight')).toEqual({ layer: '12', kind: 'mlp.up_proj.weight' });
    expect(layerOf('h.3.attn.c_attn.bias')).toEqual({ layer: '3', kind: 'attn.c_attn.bias' });
    expect(layerOf('encoder.block.0.layer.1.DenseReluDense.wi.weight')).toEqual({
      layer: '0',
      kind: 'layer.1.DenseReluDense.wi.weight',
    });
    expect(layerOf('lm_head.weight')).toEqual({ layer: null, kind: 'lm_head.weight' });
    expect(layerOf('layer2.weight')).toEqual({ layer: null, kind: 'layer2.weight' });
    expect(layerOf('blocks.7')).toEqual({ layer: '7', kind: '' });
  });
});

describe('reserved repository names', () => {
  it('refuses ui and api with a typed error', () => {
    expect([...RESERVED_REPO_NAMES].sort()).toEqual(['api', 'ui']);
    for (const n of ['ui', 'api']) {
      let err: unknown;
      try {
        checkRepoName(n);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).code).toBe(InvalidArgumentError.code);
    }
    expect(checkRepoName('uix')).toBe('uix');
  });
});

describe('coral ui mode: one working repository, read-only, no token', () => {
  let dir: string;
  let ids: string[];
  let server: CoralServer;
  let base: string;
  let api: string;

  beforeAll(async () => {
    dir = path.join(tmpdir('coral-ui-api-'), 'my model');
    ids = await buildUiRepo(dir, { commits: COMMITS, tensors: TENSORS, elements: ELEMENTS, fast: true });
    const repo = await Repository.open(dir);
    try {
      await repo.createTag('v1', ids[5], { message: 'first release' }); // annotated
      await repo.createTag('light', ids[2]);
      const tracker = new ExperimentTracker(repo);
      const run = await tracker.start('lr-1e-3', { params: { lr: 1e-3 } });
      for (let s = 0; s < 4; s++) run.log(s, { loss: 1 / (s + 1), acc: s / 4 });
      await run.finish();
    } finally {
      await repo.close();
    }
    // An empty assets folder: the pages are "not built" whatever the checkout holds.
    server = await startServer({ repository: dir, ui: { dist: tmpdir('coral-ui-nodist-') } });
    base = server.url!;
    api = `${base}/api/r/my-model`;
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  it('lists the one repository under its directory name, made a valid name', async () => {
    const r = await get(base, '/api/repos');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ repos: [{ name: 'my-model' }] });
  });

  it('refs: head, branches and tags (annotated tags peeled to their commit)', async () => {
    const r = await get(api, '/refs');
    expect(r.status).toBe(200);
    const main = ids[ids.length - 1];
    expect(r.body.head).toBe('main');
    expect(r.body.headId).toBe(main);
    const branches = Object.fromEntries(r.body.branches.map((b: any) => [b.name, b.id]));
    expect(branches.main).toBe(main);
    expect(branches.side).toBe(ids[Math.floor(COMMITS / 2)]);
    expect(branches['exp/lr-1e-3']).toMatch(/^[0-9a-f]{64}$/);
    expect(r.body.tags).toEqual([
      { name: 'light', id: ids[2] },
      { name: 'v1', id: ids[5] },
    ]);
  });

  it('commits: pages newest first, every commit before its parents, cursor to the end', async () => {
    const seen: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: Reply = await get(api, `/commits?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.body.commits.length).toBeLessThanOrEqual(7);
      seen.push(...r.body.commits);
      cursor = r.body.next;
      pages++;
    } while (cursor);
    // main's history, the experiment run's 3 commits on top of HEAD (side is inside main's history).
    expect(seen.length).toBe(COMMITS + 3);
    expect(pages).toBe(Math.ceil((COMMITS + 3) / 7));
    expect(new Set(seen.map((c) => c.id)).size).toBe(seen.length);
    const pos = new Map(seen.map((c, i) => [c.id, i]));
    for (const c of seen) for (const p of c.parents) expect(pos.get(p)!).toBeGreaterThan(pos.get(c.id)!);
    const top = seen.find((c) => c.id === ids[ids.length - 1]);
    expect(top).toMatchObject({
      message: `step ${COMMITS - 1}\n`,
      author: 'bench <bench@example.com>',
      refs: ['main'],
      metrics: { loss: 2 / (1 + (COMMITS - 1) / 50) },
    });
    expect(new Date(top.time).toISOString()).toBe(top.time);
    expect(seen.find((c) => c.id === ids[5]).refs).toEqual(['tag: v1']);
    expect(seen.find((c) => c.id === ids[2]).refs).toEqual(['tag: light']);
    const root = seen.find((c) => c.id === ids[0]);
    expect(root.parents).toEqual([]);
    expect(seen[seen.length - 1].id).toBe(ids[0]);
  });

  it('commits of one revision, and bad parameters are 400s', async () => {
    const r = await get(api, '/commits?rev=side&limit=500');
    expect(r.status).toBe(200);
    expect(r.body.commits.map((c: any) => c.id)).toEqual(ids.slice(0, Math.floor(COMMITS / 2) + 1).reverse());
    expect(r.body.next).toBeNull();
    expect((await get(api, '/commits?rev=v1~2')).body.commits[0].id).toBe(ids[3]);
    expect((await get(api, `/commits?rev=${ids[4].slice(0, 10)}`)).body.commits[0].id).toBe(ids[4]);
    for (const q of ['limit=0', 'limit=501', 'limit=ten', 'cursor=nonsense', 'cursor=', 'limit=1&limit=2']) {
      const bad = await get(api, `/commits?${q}`);
      if (q === 'cursor=') {
        expect(bad.status).toBe(200); // an empty cursor is no cursor
        continue;
      }
      expect(bad.status, q).toBe(400);
      expect(bad.body.error.code).toBe('CORAL_INVALID_ARGUMENT');
    }
    const unknown = await get(api, '/commits?rev=nope');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('CORAL_REF_NOT_FOUND');
  });

  it('commit: files and every tensor with its stored attributes', async () => {
    const r = await get(api, '/commit/main');
    expect(r.status).toBe(200);
    expect(r.body.commit.id).toBe(ids[ids.length - 1]);
    expect(r.body.files).toHaveLength(1);
    const f = r.body.files[0];
    expect(f).toMatchObject({ path: 'model.safetensors', format: 'safetensors', lossy: false });
    expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(f.tensors).toHaveLength(TENSORS);
    for (const t of f.tensors) {
      expect(t).toMatchObject({ dtype: 'F32', shape: [ELEMENTS], logicalSize: ELEMENTS * 4, cast: false });
      expect(typeof t.codec).toBe('string');
      expect(t.storedSize).toBeGreaterThan(0);
      expect(t.id).toMatch(/^[0-9a-f]{32}$/);
      if (t.base === null) expect(t.chainDepth).toBe(0);
      else expect(t.chainDepth).toBeGreaterThanOrEqual(1);
    }
    const byId = await get(api, `/commit/${ids[0]}`);
    expect(byId.body.commit.parents).toEqual([]);
    // The tensors the second commit changed were stored against their first version.
    const second = await get(api, `/commit/${ids[1]}`);
    const deltas = second.body.files[0].tensors.filter((t: any) => t.base !== null);
    expect(deltas.length).toBeGreaterThan(0);
    const first = new Map(byId.body.files[0].tensors.map((t: any) => [t.name, t.id]));
    for (const t of deltas) {
      expect(t.base).toBe(first.get(t.name));
      expect(t.chainDepth).toBe(1);
      expect(t.storedSize).toBeLessThan(t.logicalSize);
    }
    // A revision with a slash, URL-encoded in the path (an experiment's branch).
    const run = await get(api, `/commit/${encodeURIComponent('exp/lr-1e-3~1')}`);
    expect(run.status).toBe(200);
    expect(run.body.commit.message).toMatch(/^experiment lr-1e-3: step/);
    const missing = await get(api, '/commit/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('CORAL_REF_NOT_FOUND');
    expect((await get(api, '/commit/main~999')).status).toBe(404);
    expect((await get(api, '/commit/ma..in')).status).toBe(400);
    const noRepo = await get(base, '/api/r/other/commit/main');
    expect(noRepo.status).toBe(404);
    expect(noRepo.body.error.code).toBe('CORAL_REMOTE_NOT_FOUND');
    expect((await get(base, '/api/r/ui/refs')).status).toBe(400);
  });

  it('diff: every tensor of both sides, layer and kind, metrics of the changed ones', async () => {
    const r = await get(api, '/diff?a=main~1&b=main');
    expect(r.status).toBe(200);
    expect(r.body.a).toBe(ids[ids.length - 2]);
    expect(r.body.b).toBe(ids[ids.length - 1]);
    const f = r.body.files[0];
    expect(f.status).toBe('modified');
    expect(f.tensors).toHaveLength(TENSORS);
    const modified = f.tensors.filter((t: any) => t.status === 'modified');
    expect(modified).toHaveLength(5);
    for (const t of modified) {
      expect(t.relL2).toBeGreaterThan(0);
      expect(t.fracChanged).toBeGreaterThan(0);
      expect(t.maxAbs).toBeGreaterThan(0);
      expect(t.nonFinite).toBe(0);
    }
    for (const t of f.tensors.filter((x: any) => x.status === 'unchanged'))
      expect(t).toMatchObject({ relL2: 0, fracChanged: 0, maxAbs: 0, nonFinite: 0 });
    const q = f.tensors.find((t: any) => t.name === 'model.layers.1.self_attn.k_proj.weight');
    expect(q).toMatchObject({ layer: '1', kind: 'self_attn.k_proj.weight', dtype: 'F32', shape: [ELEMENTS] });
    const same = await get(api, '/diff?a=main&b=main');
    expect(same.body.files[0].status).toBe('unchanged');
    expect((await get(api, '/diff?a=main')).status).toBe(400);
    expect((await get(api, '/diff?a=main&b=nope')).status).toBe(404);
  });

  it('diff/tensor: a histogram of b - a', async () => {
    const d = await get(api, '/diff?a=main~1&b=main');
    const t = d.body.files[0].tensors.find((x: any) => x.status === 'modified');
    const q = (extra: string) =>
      `/diff/tensor?a=main~1&b=main&path=model.safetensors&name=${encodeURIComponent(t.name)}${extra}`;
    const r = await get(api, q('&bins=8'));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: t.name, dtype: 'F32', shape: [ELEMENTS], total: ELEMENTS, nonFinite: 0 });
    expect(r.body.bins.edges).toHaveLength(9);
    expect(r.body.bins.counts).toHaveLength(8);
    expect(r.body.bins.counts.reduce((a: number, b: number) => a + b, 0)).toBe(ELEMENTS);
    expect(r.body.changed).toBe(ELEMENTS);
    expect(r.body.relL2).toBeCloseTo(t.relL2, 12);
    expect(r.body.maxAbs).toBe(t.maxAbs);
    const edges: number[] = r.body.bins.edges;
    for (let i = 1; i < edges.length; i++) expect(edges[i]).toBeGreaterThan(edges[i - 1]);
    expect(Math.max(Math.abs(edges[0]), Math.abs(edges[8]))).toBeCloseTo(t.maxAbs, 6);
    expect((await get(api, q(''))).body.bins.counts).toHaveLength(64); // default 64 bins
    expect((await get(api, q('&bins=0'))).status).toBe(400);
    expect((await get(api, q('&bins=5000'))).status).toBe(400);
    const noTensor = await get(api, '/diff/tensor?a=main~1&b=main&path=model.safetensors&name=nope');
    expect(noTensor.status).toBe(404);
    expect(noTensor.body.error.code).toBe('CORAL_OBJECT_NOT_FOUND');
    expect((await get(api, `/diff/tensor?a=main~1&b=main&path=other.bin&name=${t.name}`)).status).toBe(404);
    expect((await get(api, '/diff/tensor?a=main~1&b=main&path=model.safetensors')).status).toBe(400);
  });

  it('storage: totals, by codec, file, commit and chain depth', async () => {
    const r = await get(api, '/storage');
    expect(r.status).toBe(200);
    const s = r.body;
    expect(s.objects).toBeGreaterThan(TENSORS);
    const sum = (xs: any[], k: string) => xs.reduce((n, x) => n + x[k], 0);
    expect(sum(s.byCodec, 'objects')).toBe(s.objects);
    expect(sum(s.byCodec, 'logical')).toBe(s.logical);
    expect(sum(s.byCodec, 'stored')).toBe(s.stored);
    expect(sum(s.chainDepths, 'objects')).toBe(s.objects);
    expect(s.chainDepths[0].depth).toBe(0);
    expect(s.chainDepths.some((d: any) => d.depth >= 1)).toBe(true);
    expect(s.byFile).toEqual([{ path: 'model.safetensors', logical: expect.any(Number), stored: expect.any(Number) }]);
    expect(s.byCommit).toHaveLength(COMMITS + 3);
    const first = s.byCommit.find((c: any) => c.id === ids[0]);
    const later = s.byCommit.find((c: any) => c.id === ids[10]);
    expect(first.newStored).toBeGreaterThan(later.newStored); // the first commit stored every tensor
    expect(later.newStored).toBeGreaterThan(0);
    // The experiment run's later commits reuse its first commit's tree (HEAD's): nothing new. Its first
    // commit has no parent, so all it references counts as new there.
    expect(s.byCommit.filter((c: any) => c.newStored === 0)).toHaveLength(2);
  });

  it('experiments: the runs with their metrics over steps', async () => {
    const r = await get(api, '/experiments');
    expect(r.status).toBe(200);
    expect(r.body.runs).toHaveLength(1);
    expect(r.body.runs[0]).toMatchObject({
      name: 'lr-1e-3',
      params: { lr: 1e-3 },
      status: 'finished',
      metrics: {
        loss: [
          [0, 1],
          [1, 0.5],
          [2, 1 / 3],
          [3, 0.25],
        ],
        acc: [
          [0, 0],
          [1, 0.25],
          [2, 0.5],
          [3, 0.75],
        ],
      },
    });
  });

  it('pages: / redirects to /ui/, which is a 503 naming the build step when not built', async () => {
    const root = await get(base, '/');
    expect(root.status).toBe(302);
    expect(root.location).toBe('/ui/');
    const ui = await get(base, '/ui/');
    expect(ui.status).toBe(503);
    expect(ui.text).toContain('npm run build:ui');
    expect((await get(base, '/ui/assets/app.js')).status).toBe(503);
    // The API still works, and nothing writes: no remote routes in this mode.
    expect((await get(api, '/refs')).status).toBe(200);
    expect((await get(base, '/my-model/refs')).status).toBe(404);
  });
});

describe('built pages and coral serve --ui behind tokens', () => {
  let root: string;
  let server: CoralServer;
  let read: string;
  let limited: string;

  beforeAll(async () => {
    root = tmpdir('coral-ui-serve-');
    // Two bare repositories filled by a push from a working one, a plain directory, and a reserved name.
    const work = path.join(tmpdir('coral-ui-work-'), 'w');
    fs.mkdirSync(work);
    const repo = await Repository.init(work);
    fs.writeFileSync(
      path.join(work, 'm.safetensors'),
      safetensorsBytes([
        ['h.0.w', Float32Array.from([1, 2, 3, 4])],
        ['h.1.w', Float32Array.from([5, 6, 7, 8])],
      ]),
    );
    await repo.add([path.join(work, 'm.safetensors')]);
    await repo.commit({ message: 'one' });
    for (const n of ['alpha', 'beta']) {
      await initBare(path.join(root, n));
      await repo.remoteAdd(n, path.join(root, n));
      await repo.push(n);
    }
    await repo.close();
    fs.mkdirSync(path.join(root, 'not-a-repo'));
    fs.mkdirSync(path.join(root, 'api'));
    read = (await addToken({ root }, 'viewer', { scope: 'read' })).token;
    limited = (await addToken({ root }, 'beta-only', { scope: 'read', repos: ['beta'] })).token;
    const dist = tmpdir('coral-ui-dist-');
    fs.mkdirSync(path.join(dist, 'assets'));
    fs.writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>coral</title><div id="app"></div>\n');
    fs.writeFileSync(path.join(dist, 'assets', 'app-1234.js'), 'console.log("coral ui");\n');
    server = await startServer({ root, ui: { dist } });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  it('answers 401 JSON without a token, and lists what a token may read', async () => {
    const base = server.url!;
    const none = await get(base, '/api/repos');
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('CORAL_REMOTE_AUTH');
    const refs = await get(base, '/api/r/alpha/refs');
    expect(refs.status).toBe(401);
    expect(refs.body.error.code).toBe('CORAL_REMOTE_AUTH');
    expect((await get(base, '/api/repos', 'not-a-token')).status).toBe(401);
    expect((await get(base, '/api/repos', read)).body).toEqual({ repos: [{ name: 'alpha' }, { name: 'beta' }] });
    expect((await get(base, '/api/repos', limited)).body).toEqual({ repos: [{ name: 'beta' }] });
    const denied = await get(base, '/api/r/alpha/refs', limited);
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('CORAL_PERMISSION_DENIED');
    const ok = await get(base, '/api/r/alpha/commits', read);
    expect(ok.status).toBe(200);
    expect(ok.body.commits.map((c: any) => c.message)).toEqual(['one\n']);
    const detail = await get(base, '/api/r/beta/commit/main', limited);
    expect(detail.body.files[0].tensors.map((t: any) => t.name)).toEqual(['h.0.w', 'h.1.w']);
    expect((await get(base, '/api/r/api/refs', read)).status).toBe(400);
    expect((await get(base, '/api/r/gamma/refs', read)).status).toBe(404);
  });

  it('anonymous read opens a repository to the API without a token', async () => {
    await setAnonymousRead({ root }, 'beta', true);
    try {
      expect((await get(server.url!, '/api/repos')).body).toEqual({ repos: [{ name: 'beta' }] });
      expect((await get(server.url!, '/api/r/beta/refs')).status).toBe(200);
      expect((await get(server.url!, '/api/r/alpha/refs')).status).toBe(401);
    } finally {
      await setAnonymousRead({ root }, 'beta', false);
    }
  });

  it('serves the built pages under /ui/ (no token needed for the pages themselves)', async () => {
    const base = server.url!;
    const index = await get(base, '/ui/');
    expect(index.status).toBe(200);
    expect(index.type).toContain('text/html');
    expect(index.text).toContain('<div id="app">');
    const js = await get(base, '/ui/assets/app-1234.js');
    expect(js.status).toBe(200);
    expect(js.text).toContain('coral ui');
    expect((await get(base, '/ui')).location).toBe('/ui/');
    expect((await get(base, '/ui/assets/missing.js')).status).toBe(404);
    // The remote routes are still there (clone over HTTP), behind the same tokens.
    expect((await get(base, '/alpha/refs')).status).toBe(401);
    expect((await get(base, '/alpha/refs', read)).status).toBe(200);
  });
});
