// `coral ui` and `coral serve --ui` as real child processes on loopback (docs/ui.md): a repository built
// with the CLI in the test, the printed URL, the JSON API and the pages (a fake build of the pages in a
// temp dir through CORAL_UI_DIST, and the 503 when there is none), tokens for serve --ui, a refused
// non-loopback host, and a clean stop on SIGTERM and SIGINT.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coral, f32, ok, tempDirs, tmpdir, weights, writeSafetensors } from '../helpers/cli';
import { startCoralServer, startServe, type ServeProcess } from '../helpers/serve';

const dirs = tempDirs({ needDist: true });

function workdir(): string {
  const d = tmpdir('coral-ui-e2e-');
  dirs.push(d);
  return d;
}

function model(file: string, seed: number): void {
  const t = (n: number, s: number) => ({ dtype: 'F32', shape: [n], data: f32(weights(n, s)) });
  writeSafetensors(file, {
    'model.layers.0.self_attn.q_proj.weight': t(64, seed),
    'model.layers.1.self_attn.q_proj.weight': t(64, seed + 1),
    'lm_head.weight': t(32, 7),
  });
}

/** A repository with two commits and a tag, made with the CLI. */
function repository(): string {
  const dir = path.join(workdir(), 'weights');
  fs.mkdirSync(dir);
  ok(dir, ['init']);
  model(path.join(dir, 'model.safetensors'), 1);
  ok(dir, ['add', 'model.safetensors']);
  ok(dir, ['commit', '-m', 'base']);
  model(path.join(dir, 'model.safetensors'), 2);
  ok(dir, ['commit', '-a', '-m', 'tuned']);
  ok(dir, ['tag', 'v1']);
  return dir;
}

/** Starts `coral ui --port 0` in `cwd` and reads the URL it prints. */
function startUi(cwd: string, env: Record<string, string> = {}): Promise<ServeProcess> {
  return startCoralServer(['ui', '--port', '0'], { url: /^coral ui: (http:\/\/127\.0\.0\.1:\d+)\/ui\/$/m, cwd, env });
}

const getJson = async (url: string, token?: string) => {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, body: (await res.json()) as any };
};

describe('coral ui', () => {
  it('serves the repository it stands in: the API, the pages, / -> /ui/; stops on SIGTERM', async () => {
    const dir = repository();
    const dist = workdir();
    fs.mkdirSync(path.join(dist, 'assets'));
    fs.writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>coral</title><main id="app"></main>\n');
    fs.writeFileSync(path.join(dist, 'assets', 'index-abc.css'), 'main{color:#000}\n');
    // From a subdirectory: the repository is found upward, as every command does.
    fs.mkdirSync(path.join(dir, 'sub'));
    const ui = await startUi(path.join(dir, 'sub'), { CORAL_UI_DIST: dist });
    try {
      expect((await getJson(`${ui.url}/api/repos`)).body).toEqual({ repos: [{ name: 'weights' }] });
      const commits = await getJson(`${ui.url}/api/r/weights/commits`);
      expect(commits.status).toBe(200);
      expect(commits.body.commits.map((c: any) => c.message)).toEqual(['tuned\n', 'base\n']);
      expect(commits.body.commits[0].refs).toEqual(['main', 'tag: v1']);
      const diff = await getJson(`${ui.url}/api/r/weights/diff?a=main~1&b=v1`);
      const tensors = diff.body.files[0].tensors;
      expect(tensors.map((t: any) => [t.name, t.status, t.layer, t.kind])).toEqual([
        ['lm_head.weight', 'unchanged', null, 'lm_head.weight'],
        ['model.layers.0.self_attn.q_proj.weight', 'modified', '0', 'self_attn.q_proj.weight'],
        ['model.layers.1.self_attn.q_proj.weight', 'modified', '1', 'self_attn.q_proj.weight'],
      ]);
      const home = await fetch(`${ui.url}/`, { redirect: 'manual' });
      expect(home.status).toBe(302);
      expect(home.headers.get('location')).toBe('/ui/');
      const page = await fetch(`${ui.url}/ui/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<main id="app">');
      const css = await fetch(`${ui.url}/ui/assets/index-abc.css`);
      expect(css.status).toBe(200);
      expect(css.headers.get('content-type')).toContain('text/css');
      // Read-only: the remote's routes are not served.
      expect((await fetch(`${ui.url}/weights/refs`)).status).toBe(404);
      expect((await fetch(`${ui.url}/weights/init`, { method: 'POST' })).status).toBe(404);
    } finally {
      expect(await ui.stop('SIGTERM')).toBe(0);
    }
  }, 60_000);

  it('answers /ui/ with 503 naming the build step when the pages are not built; SIGINT stops it', async () => {
    const dir = repository();
    const ui = await startUi(dir, { CORAL_UI_DIST: path.join(workdir(), 'nothing-here') });
    try {
      const page = await fetch(`${ui.url}/ui/`);
      expect(page.status).toBe(503);
      expect(await page.text()).toContain('npm run build:ui');
      expect((await getJson(`${ui.url}/api/r/weights/refs`)).body.head).toBe('main');
    } finally {
      expect(await ui.stop('SIGINT')).toBe(0);
    }
  }, 60_000);

  it('refuses a host that is not loopback, and a directory that is no repository', () => {
    const dir = repository();
    const r = coral(dir, ['ui', '--host', '0.0.0.0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('loopback');
    const bad = coral(dir, ['ui', '--port', '99999']);
    expect(bad.code).toBe(2);
    const none = coral(workdir(), ['ui']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain('CORAL_NOT_A_REPOSITORY');
  });
});

describe('coral serve --ui', () => {
  it('serves the API of every repository behind the tokens (401 JSON without one)', async () => {
    const dir = repository();
    const root = path.join(workdir(), 'srv');
    fs.mkdirSync(root);
    const read = ok(root, ['serve', 'token', 'add', 'viewer', '--scope', 'read', root]).trim();
    const write = ok(root, ['serve', 'token', 'add', 'ci', '--scope', 'write', root]).trim();
    const s = await startServe([root, '--ui'], { CORAL_UI_DIST: path.join(workdir(), 'none') });
    try {
      ok(dir, ['remote', 'add', 'srv', `${s.url}/weights`]);
      ok(dir, ['push', 'srv', 'main'], { CORAL_TOKEN: write });
      const denied = await getJson(`${s.url}/api/repos`);
      expect(denied.status).toBe(401);
      expect(denied.body.error.code).toBe('CORAL_REMOTE_AUTH');
      expect((await getJson(`${s.url}/api/r/weights/commits`)).status).toBe(401);
      expect((await getJson(`${s.url}/api/repos`, read)).body).toEqual({ repos: [{ name: 'weights' }] });
      const commits = await getJson(`${s.url}/api/r/weights/commits`, read);
      expect(commits.body.commits.map((c: any) => c.message)).toEqual(['tuned\n', 'base\n']);
      const storage = await getJson(`${s.url}/api/r/weights/storage`, read);
      expect(storage.status).toBe(200);
      expect(storage.body.byFile.map((f: any) => f.path)).toEqual(['model.safetensors']);
      expect((await fetch(`${s.url}/ui/`)).status).toBe(503);
      // A repository may not take a reserved name.
      ok(dir, ['remote', 'add', 'bad', `${s.url}/api`]);
      const push = coral(dir, ['push', 'bad', 'main'], { CORAL_TOKEN: write });
      expect(push.code).not.toBe(0);
      expect(push.stderr).toContain('reserved');
      expect(fs.existsSync(path.join(root, 'api'))).toBe(false);
    } finally {
      expect(await s.stop('SIGTERM')).toBe(0);
    }
  }, 60_000);

  it('without --ui there is no API', async () => {
    const root = path.join(workdir(), 'srv');
    fs.mkdirSync(root);
    const s = await startServe([root]);
    try {
      expect((await fetch(`${s.url}/api/repos`)).status).toBe(404);
      expect((await fetch(`${s.url}/ui/`)).status).toBe(404);
    } finally {
      await s.stop('SIGTERM');
    }
  }, 60_000);
});
