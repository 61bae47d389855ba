// Issue #14 over s3:// through the real CLI, on a real Ceph RADOS Gateway (scripts/ceph.sh): push -> clone ->
// byte-exact checkout of every commit, a fine-tune push that sends only its new objects, 4 processes pushing
// to one branch at once, pushes killed at seeded moments then rerun, a flipped byte in the bucket, and a
// partial clone with lazy reads and --all-objects.
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { CORAL_BIN, coral, coralAsync, ok, sha256, tempDirs, tmpdir, worktreeSnapshot as snap } from '../helpers/cli';
import { ceph, flipByte, makeBucket, rawClient, type CephEnv } from '../helpers/ceph';
import { family, rng, storedObjects, writeModel } from '../remote/helpers';

const dirs = tempDirs({ needDist: true });
let cephEnv: CephEnv;
let bucket = '';
beforeAll(async () => {
  cephEnv = await ceph();
  bucket = await makeBucket('e2e');
});

const run = (cwd: string, args: string[]) => ok(cwd, args, cephEnv.vars);
const json = <T = Record<string, unknown>>(cwd: string, args: string[]): T =>
  JSON.parse(run(cwd, [...args, '--json'])) as T;
const commit = (cwd: string, msg: string) => json<{ id: string }>(cwd, ['commit', '-a', '-m', msg]).id;

function workdir(): string {
  const d = tmpdir('coral-s3-e2e-');
  dirs.push(d);
  return d;
}

const hubUrl = () => `s3://${bucket}/hub-${crypto.randomBytes(4).toString('hex')}`;

/** The commit a branch points at in the bucket, or null. */
async function hubRef(url: string, branch = 'main'): Promise<string | null> {
  const [, b, prefix] = /^s3:\/\/([^/]+)\/(.*)$/.exec(url)!;
  const c = await rawClient();
  try {
    const out = await c.send(new GetObjectCommand({ Bucket: b, Key: `${prefix}/refs/heads/${branch}` }));
    const text = (await out.Body!.transformToString()).trim();
    return text || null;
  } catch {
    return null;
  } finally {
    c.destroy();
  }
}

/** A repository `a` with a base commit pushed to a new hub. */
function seeded(d: string): { a: string; url: string; base: string } {
  const a = path.join(d, 'a');
  fs.mkdirSync(a);
  run(a, ['init']);
  writeModel(path.join(a, 'model.safetensors'), family(0));
  run(a, ['add', '.']);
  const base = commit(a, 'base');
  const url = hubUrl();
  run(a, ['remote', 'add', 'origin', url, '--endpoint', cephEnv.endpoint]);
  run(a, ['push', '-u', 'origin', 'main']);
  return { a, url, base };
}

describe('remotes over s3:// on Ceph RGW', () => {
  it('push, clone, and every commit checks out byte for byte', () => {
    const d = workdir();
    const a = path.join(d, 'a');
    fs.mkdirSync(a);
    run(a, ['init']);
    const history: Array<{ id: string; files: Record<string, string> }> = [];
    writeModel(path.join(a, 'model.safetensors'), family(0));
    fs.writeFileSync(path.join(a, 'notes.txt'), 'base model\n');
    run(a, ['add', '.']);
    history.push({ id: commit(a, 'base'), files: snap(a) });
    writeModel(path.join(a, 'model.safetensors'), family(1));
    history.push({ id: commit(a, 'fine-tune 1'), files: snap(a) });
    writeModel(path.join(a, 'adapter.safetensors'), family(0, 7));
    run(a, ['add', 'adapter.safetensors']);
    history.push({ id: commit(a, 'adapter'), files: snap(a) });
    run(a, ['tag', 'v1']);
    const url = hubUrl();
    // The endpoint comes from the environment here (AWS_ENDPOINT_URL), and from --endpoint below.
    run(a, ['remote', 'add', 'origin', url]);
    const pushed = coral(a, ['push', '-u', 'origin', 'main', '--tags', '--json'], cephEnv.vars);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stderr).toBe(''); // no SDK warnings on the console
    const r = JSON.parse(pushed.stdout) as { objects: number; updates: Array<{ status: string }> };
    expect(r.updates.map((u) => u.status)).toEqual(['new', 'new']);
    expect(r.objects).toBeGreaterThan(0);

    const c = path.join(d, 'c');
    run(d, ['clone', '--endpoint', cephEnv.endpoint, url, c]);
    expect(run(c, ['config', 'remote.origin.endpoint']).trim()).toBe(cephEnv.endpoint);
    expect(run(c, ['fsck'])).toMatch(/ 0 problem/);
    for (const h of [...history].reverse()) {
      run(c, ['checkout', '--detach', h.id]);
      expect(snap(c), `commit ${h.id}`).toEqual(h.files);
    }
    run(c, ['checkout', 'main']);
    expect(run(c, ['log', '--oneline', '-1'])).toMatch(/\(HEAD -> main, origin\/main, tag: v1\)/);
    expect(run(c, ['status'])).toContain("Your branch is up to date with 'origin/main'.");
  });

  it('a second push after a fine-tune sends exactly the new objects; pushing again sends nothing', async () => {
    const d = workdir();
    const { a } = seeded(d);
    const before = await storedObjects(path.join(a, '.coral'));
    writeModel(path.join(a, 'model.safetensors'), family(1));
    commit(a, 'fine-tune');
    const after = await storedObjects(path.join(a, '.coral'));
    const added = [...after].filter(([id]) => !before.has(id));
    const addedBytes = added.reduce((n, [, size]) => n + size, 0);
    expect(added.length).toBeGreaterThan(0);
    const r = json<{ objects: number; objectBytes: number; metas: number }>(a, ['push']);
    expect(r.objects).toBe(added.length);
    expect(r.objectBytes).toBe(addedBytes);
    expect(r.metas).toBe(2);
    expect(json<{ objects: number; bytes: number }>(a, ['push'])).toMatchObject({ objects: 0, bytes: 0 });
  });

  it('4 processes push different commits to one branch at once: one lands, the others are refused, none is lost', async () => {
    const d = workdir();
    const { url } = seeded(d);
    const workers = [0, 1, 2, 3].map((i) => {
      const w = path.join(d, `w${i}`);
      run(d, ['clone', url, w]);
      writeModel(path.join(w, `part${i}.safetensors`), family(i, 20 + i));
      run(w, ['add', `part${i}.safetensors`]);
      return { w, id: commit(w, `part ${i}`), file: sha256(path.join(w, `part${i}.safetensors`)) };
    });
    const results = await Promise.all(workers.map((x) => coralAsync(x.w, ['push'], cephEnv.vars)));
    for (const r of results) expect([0, 11], r.stderr).toContain(r.code);
    const landed = results.map((r, i) => (r.code === 0 ? i : -1)).filter((i) => i >= 0);
    expect(landed.length).toBe(1);
    expect(await hubRef(url)).toBe(workers[landed[0]].id);
    for (const r of results.filter((x) => x.code === 11)) expect(r.stderr).toMatch(/CORAL_NON_FAST_FORWARD/);
    // The refused ones pull (a clean merge) and push again until all four are in.
    const done = new Set(landed);
    for (let round = 0; round < 8 && done.size < 4; round++)
      for (const [i, x] of workers.entries()) {
        if (done.has(i)) continue;
        run(x.w, ['pull']);
        const p = coral(x.w, ['push'], cephEnv.vars);
        if (p.code === 0) done.add(i);
        else expect(p.code, p.stderr).toBe(11);
      }
    const c = path.join(d, 'final');
    run(d, ['clone', url, c]);
    expect(run(c, ['fsck'])).toMatch(/ 0 problem/);
    for (const [i, x] of workers.entries()) expect(sha256(path.join(c, `part${i}.safetensors`))).toBe(x.file);
  });

  it('push killed at seeded moments, then rerun: the hub is always consistent and the rerun completes', async () => {
    const d = workdir();
    const { a, url, base } = seeded(d);
    writeModel(path.join(a, 'model.safetensors'), family(1));
    writeModel(path.join(a, 'extra.safetensors'), family(0, 9));
    run(a, ['add', 'extra.safetensors']);
    const tip = commit(a, 'fine-tune');
    const file = sha256(path.join(a, 'model.safetensors'));
    const next = rng(14);
    for (let i = 0; i < 3; i++) {
      const ms = Math.floor(200 + next() * 1200);
      await new Promise<void>((resolve) => {
        const p = spawn(process.execPath, [CORAL_BIN, 'push'], {
          cwd: a,
          env: { ...process.env, ...cephEnv.vars },
          stdio: 'ignore',
        });
        const t = setTimeout(() => p.kill('SIGKILL'), ms);
        p.on('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
      expect([base, tip]).toContain(await hubRef(url));
      const c = path.join(d, `mid-${i}`);
      run(d, ['clone', url, c]);
      expect(run(c, ['fsck']), `after a kill at ${ms} ms`).toMatch(/ 0 problem/);
      fs.rmSync(c, { recursive: true, force: true });
    }
    run(a, ['push']);
    expect(await hubRef(url)).toBe(tip);
    const c = path.join(d, 'after');
    run(d, ['clone', url, c]);
    expect(sha256(path.join(c, 'model.safetensors'))).toBe(file);
  });

  it('fetch killed at seeded moments, then rerun: the repository stays consistent and the rerun completes', async () => {
    const d = workdir();
    const { a, url } = seeded(d);
    const b = path.join(d, 'b');
    run(d, ['clone', url, b]);
    writeModel(path.join(a, 'model.safetensors'), family(1));
    const tip = commit(a, 'fine-tune');
    const file = sha256(path.join(a, 'model.safetensors'));
    run(a, ['push']);
    const next = rng(41);
    for (let i = 0; i < 2; i++) {
      await new Promise<void>((resolve) => {
        const p = spawn(process.execPath, [CORAL_BIN, 'fetch'], {
          cwd: b,
          env: { ...process.env, ...cephEnv.vars },
          stdio: 'ignore',
        });
        const t = setTimeout(() => p.kill('SIGKILL'), Math.floor(200 + next() * 1000));
        p.on('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
      expect(run(b, ['fsck'])).toMatch(/ 0 problem/);
    }
    run(b, ['fetch']);
    expect(fs.readFileSync(path.join(b, '.coral', 'refs', 'remotes', 'origin', 'main'), 'utf8').trim()).toBe(tip);
    run(b, ['pull']);
    expect(sha256(path.join(b, 'model.safetensors'))).toBe(file);
  });

  it('a flipped byte in a pack in the bucket is detected and named; nothing of it is written locally', async () => {
    const d = workdir();
    const { a, url } = seeded(d);
    const b = path.join(d, 'b');
    run(d, ['clone', url, b]);
    writeModel(path.join(a, 'model.safetensors'), family(1));
    commit(a, 'fine-tune');
    const before = new Set<string>();
    const c = await rawClient();
    const [, bk, prefix] = /^s3:\/\/([^/]+)\/(.*)$/.exec(url)!;
    const list = async () =>
      (await c.send(new ListObjectsV2Command({ Bucket: bk, Prefix: `${prefix}/objects/packs/` }))).Contents ?? [];
    for (const o of await list()) before.add(o.Key!);
    run(a, ['push']);
    const fresh = (await list()).filter((o) => o.Key!.endsWith('.h5') && !before.has(o.Key!));
    c.destroy();
    expect(fresh).toHaveLength(1);
    await flipByte(bk, fresh[0].Key!, Math.floor(fresh[0].Size! * 0.6));
    const local = await storedObjects(path.join(b, '.coral'));
    const f = coral(b, ['fetch'], cephEnv.vars);
    expect(f.code).toBe(9);
    expect(f.stderr).toMatch(/object [0-9a-f]{16,}/);
    expect(f.stderr).toMatch(/CORAL_(CHECKSUM_MISMATCH|CORRUPT_OBJECT)/);
    expect((await storedObjects(path.join(b, '.coral'))).size).toBe(local.size);
    expect(run(b, ['fsck'])).toMatch(/ 0 problem/);
  });

  it('partial clone: --filter fetches only matching objects, reads fetch the rest lazily, --all-objects completes', async () => {
    const d = workdir();
    const a = path.join(d, 'a');
    fs.mkdirSync(a);
    run(a, ['init']);
    writeModel(path.join(a, 'base.safetensors'), family(0, 1));
    writeModel(path.join(a, 'adapter.safetensors'), family(0, 2));
    run(a, ['add', '.']);
    const c1 = commit(a, 'one');
    const v1 = sha256(path.join(a, 'base.safetensors'));
    writeModel(path.join(a, 'base.safetensors'), family(1, 1));
    commit(a, 'two');
    const v2 = sha256(path.join(a, 'base.safetensors'));
    const url = hubUrl();
    run(a, ['remote', 'add', 'origin', url]);
    run(a, ['push', 'origin', 'main']);
    const all = await storedObjects(path.join(a, '.coral'));
    const p = path.join(d, 'p');
    const r = json<{ fetch: { objects: number; filtered: number } }>(d, [
      'clone',
      '--filter',
      'adapter.*',
      '--no-checkout',
      url,
      p,
    ]);
    expect(r.fetch.filtered).toBeGreaterThan(0);
    const held = await storedObjects(path.join(p, '.coral'));
    expect(held.size).toBeLessThan(all.size);
    expect(json<{ ok: boolean; promised: number }>(p, ['fsck'])).toMatchObject({ ok: true });
    run(p, ['reset', '--hard']);
    expect(sha256(path.join(p, 'base.safetensors'))).toBe(v2);
    run(p, ['checkout', '--detach', c1]);
    expect(sha256(path.join(p, 'base.safetensors'))).toBe(v1);
    expect((await storedObjects(path.join(p, '.coral'))).size).toBeGreaterThan(held.size);
    json(p, ['fetch', '--all-objects']);
    expect((await storedObjects(path.join(p, '.coral'))).size).toBe(all.size);
    expect(json<{ promised: number }>(p, ['fsck'])).toMatchObject({ promised: 0 });
  });
});
