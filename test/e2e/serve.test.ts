// Issue #15 through real processes and sockets: `coral serve` as a child process on a free loopback port,
// the real `coral` CLI pushing, cloning, fetching and pulling over http://. Covers byte-exact checkout of
// every commit, the byte counts of a second push, tokens (none, read-only, revoked, anonymous read),
// SIGTERM with uploads in flight, SIGKILL mid-push then restart, and two servers over one Ceph bucket.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSync } from '../../lib/codec';
import { xxh3 } from '../../lib/hash';
import { frameHeader, PACK_CONTENT_TYPE } from '../../lib/remote/http-wire';
import { LocalPackStore } from '../../lib/store/local';
import { ceph, makeBucket } from '../helpers/ceph';
import {
  coral,
  coralAsync,
  ok,
  sha256,
  tempDirs,
  tmpdir,
  okJson as json,
  commitAll as commit,
  worktreeSnapshot as snapshot,
} from '../helpers/cli';
import { startServe, type ServeProcess } from '../helpers/serve';
import { family, packCount, storedObjects, writeModel } from '../remote/helpers';

const dirs = tempDirs({ needDist: true });

function workdir(): string {
  const d = tmpdir('coral-serve-e2e-');
  dirs.push(d);
  return d;
}

/** A served root with one write and one read token. */
function servedRoot(): { root: string; write: string; read: string } {
  const root = path.join(workdir(), 'srv');
  fs.mkdirSync(root);
  const write = ok(root, ['serve', 'token', 'add', 'ci', '--scope', 'write', root]).trim();
  const read = ok(root, ['serve', 'token', 'add', 'viewer', '--scope', 'read', root]).trim();
  return { root, write, read };
}

async function withServer<T>(
  args: string[],
  fn: (s: ServeProcess) => Promise<T>,
  env: Record<string, string> = {},
): Promise<T> {
  const s = await startServe(args, env);
  try {
    return await fn(s);
  } finally {
    await s.stop('SIGKILL');
  }
}

/** A repository with three commits (base, fine-tune, an added adapter); returns each commit's files. */
function history(a: string): Array<{ id: string; files: Record<string, string> }> {
  fs.mkdirSync(a, { recursive: true });
  ok(a, ['init']);
  const out: Array<{ id: string; files: Record<string, string> }> = [];
  writeModel(path.join(a, 'model.safetensors'), family(0));
  fs.writeFileSync(path.join(a, 'notes.txt'), 'base model\n');
  ok(a, ['add', '.']);
  out.push({ id: commit(a, 'base'), files: snapshot(a) });
  writeModel(path.join(a, 'model.safetensors'), family(1));
  out.push({ id: commit(a, 'fine-tune 1'), files: snapshot(a) });
  writeModel(path.join(a, 'adapter.safetensors'), family(0, 7));
  ok(a, ['add', 'adapter.safetensors']);
  out.push({ id: commit(a, 'adapter'), files: snapshot(a) });
  return out;
}

/** Starts a pack upload of one real object and sends only `sendBytes` of it; resolves the open request. */
async function stalledUpload(
  url: string,
  token: string,
  opts: { finish?: boolean } = {},
): Promise<{ req: http.ClientRequest; done: Promise<number | string>; finish: () => void }> {
  const t = { dtype: 'F32' as const, shape: [4096], data: new Uint8Array(16384).map((_, i) => (i * 7) & 0xff) };
  const enc = encodeSync(t);
  const checksum = await xxh3(enc.bytes);
  const req = http.request(`${url}/packs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': PACK_CONTENT_TYPE },
  });
  const done = new Promise<number | string>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  req.write(
    frameHeader({
      op: 'put',
      id: enc.id,
      attrs: { codec: enc.codec, dtype: 'F32', shape: [4096], rawSize: 16384 },
      size: enc.bytes.length,
      checksum,
    }),
  );
  const half = Math.floor(enc.bytes.length / 2);
  await new Promise<void>((r) => req.write(enc.bytes.subarray(0, half), () => r()));
  void opts;
  return {
    req,
    done,
    finish: () => {
      req.write(enc.bytes.subarray(half));
      req.end(frameHeader({ op: 'commit' }));
    },
  };
}

describe('coral serve: the HTTP remote', () => {
  it('push, clone and every commit byte for byte; a fine-tune push moves only its new objects; fetch and pull', async () => {
    const { root, write } = servedRoot();
    const env = { CORAL_TOKEN: write };
    await withServer([root], async (s) => {
      const d = path.dirname(root);
      const a = path.join(d, 'a');
      const hist = history(a);
      const url = `${s.url}/hub`;
      ok(a, ['remote', 'add', 'origin', url]);
      const pushed = json<{ objects: number; updates: Array<{ status: string }> }>(
        a,
        ['push', '-u', 'origin', 'main'],
        env,
      );
      expect(pushed.updates.map((u) => u.status)).toEqual(['new']);
      // The served repository holds every object of the local one.
      const local = await storedObjects(path.join(a, '.coral'));
      const remote = await storedObjects(path.join(root, 'hub'));
      expect([...local.keys()].filter((id) => !remote.has(id))).toEqual([]);

      const c = path.join(d, 'c');
      ok(d, ['clone', url, c], env);
      expect(ok(c, ['fsck'])).toMatch(/0 problem/);
      for (const h of [...hist].reverse()) {
        ok(c, ['checkout', '--detach', h.id]);
        expect(snapshot(c), `commit ${h.id}`).toEqual(h.files);
      }
      ok(c, ['checkout', 'main']);

      // A fine-tune: the second push sends exactly the objects it added locally.
      const before = await storedObjects(path.join(a, '.coral'));
      writeModel(path.join(a, 'model.safetensors'), family(2));
      commit(a, 'fine-tune 2');
      const after = await storedObjects(path.join(a, '.coral'));
      const added = [...after].filter(([id]) => !before.has(id));
      expect(added.length).toBeGreaterThan(0);
      const r = json<{ objects: number; objectBytes: number; metas: number }>(a, ['push'], env);
      expect(r.objects).toBe(added.length);
      expect(r.objectBytes).toBe(added.reduce((n, [, size]) => n + size, 0));
      expect(r.metas).toBe(2);
      expect(json<{ objects: number; bytes: number }>(a, ['push'], env)).toMatchObject({ objects: 0, bytes: 0 });

      // The clone fetches and pulls it over http, with the token from its config this time.
      ok(c, ['config', 'remote.origin.token', write]);
      const fetched = json<{ objects: number; objectBytes: number }>(c, ['fetch']);
      expect(fetched.objects).toBe(added.length);
      ok(c, ['pull']);
      expect(snapshot(c)).toEqual(snapshot(a));
      expect(ok(c, ['fsck'])).toMatch(/0 problem/);
      // Metrics saw the traffic.
      const m = await (await fetch(`${s.url}/metrics`)).text();
      expect(m).toMatch(/coral_http_requests_total\{method="POST",route="\/:name\/packs",status="200"\} [1-9]/);
    });
  });

  it('tokens: none, read-only, revoked, limited to other repositories; anonymous read per repository', async () => {
    const { root, write, read } = servedRoot();
    await withServer([root], async (s) => {
      const d = path.dirname(root);
      const a = path.join(d, 'a');
      history(a);
      const url = `${s.url}/m`;
      const noToken = coral(a, ['push', url, 'main'], { CORAL_TOKEN: '' });
      expect(noToken.code).toBe(10);
      expect(noToken.stderr).toContain('CORAL_REMOTE_AUTH');
      const readOnly = coral(a, ['push', url, 'main'], { CORAL_TOKEN: read });
      expect(readOnly.code).toBe(10);
      expect(readOnly.stderr).toContain('CORAL_PERMISSION_DENIED');
      ok(a, ['push', url, 'main'], { CORAL_TOKEN: write });
      // Reading with the read token works; after revocation it does not.
      ok(d, ['clone', url, path.join(d, 'c1')], { CORAL_TOKEN: read });
      ok(root, ['serve', 'token', 'revoke', 'viewer', root]);
      const revoked = coral(d, ['clone', url, path.join(d, 'c2')], { CORAL_TOKEN: read });
      expect(revoked.code).toBe(10);
      expect(revoked.stderr).toContain('CORAL_REMOTE_AUTH');
      expect(fs.existsSync(path.join(d, 'c2', '.coral'))).toBe(false);
      const listed = ok(root, ['serve', 'token', 'list', root]);
      expect(listed).toContain('ci\twrite');
      expect(listed).not.toContain('viewer');
      expect(listed).not.toContain(write);
      // A token for another repository only.
      const other = ok(root, ['serve', 'token', 'add', 'elsewhere', '--scope', 'write', '--repo', 'x', root]).trim();
      expect(coral(d, ['clone', url, path.join(d, 'c3')], { CORAL_TOKEN: other }).stderr).toContain(
        'CORAL_PERMISSION_DENIED',
      );
      // Anonymous read of this repository: clone without a token; pushing still needs one.
      ok(root, ['serve', 'anonymous-read', 'm', 'on', root]);
      ok(d, ['clone', url, path.join(d, 'c4')], { CORAL_TOKEN: '' });
      expect(coral(a, ['push', url, 'main:other'], { CORAL_TOKEN: '' }).stderr).toContain('CORAL_REMOTE_AUTH');
    });
  });

  it('SIGTERM: an upload that finishes within the grace period lands, a stalled one is dropped; exit 0', async () => {
    const { root, write } = servedRoot();
    ok(root, ['serve', 'config', 'serve.shutdownGraceSeconds', '3', root]);
    const d = path.dirname(root);
    const a = path.join(d, 'a');
    history(a);
    const s = await startServe([root]);
    let code: number | string;
    try {
      ok(a, ['push', `${s.url}/m`, 'main'], { CORAL_TOKEN: write });
      const packs = packCount(path.join(root, 'm'));
      const finishing = await stalledUpload(`${s.url}/m`, write);
      const stalled = await stalledUpload(`${s.url}/m`, write);
      const exited = s.stop('SIGTERM');
      finishing.finish();
      expect(await finishing.done).toBe(200);
      code = await exited;
      expect(['ECONNRESET', 'EPIPE', 503]).toContain(await stalled.done);
      expect(packCount(path.join(root, 'm'))).toBe(packs + 1); // the finished upload only
    } finally {
      await s.stop('SIGKILL');
    }
    expect(code).toBe(0);
    expect(s.stderr()).toContain('shutting down');
    // Restart: the repository is whole and usable.
    await withServer([root], async (s2) => {
      const store = await LocalPackStore.open(path.join(root, 'm'));
      try {
        expect(await store.verify()).toEqual([]);
      } finally {
        await store.close();
      }
      const c = path.join(d, 'c');
      ok(d, ['clone', `${s2.url}/m`, c], { CORAL_TOKEN: write });
      expect(ok(c, ['fsck'])).toMatch(/0 problem/);
      expect(snapshot(c)).toEqual(snapshot(a));
    });
  });

  it('SIGKILL mid-push (before and after the pack is published): restart, consistent, the rerun completes', async () => {
    const { root, write } = servedRoot();
    const env = { CORAL_TOKEN: write };
    const d = path.dirname(root);
    const a = path.join(d, 'a');
    history(a);
    ok(d, ['init', '--bare', path.join(root, 'm')]);
    const repo = path.join(root, 'm');
    for (const point of ['serve:before-publish', 'serve:after-publish']) {
      writeModel(path.join(a, 'model.safetensors'), family(point.includes('before') ? 3 : 4));
      commit(a, point);
      const before = packCount(repo);
      const s = await startServe([root], { CORAL_CRASH_AT: point });
      const r = coral(a, ['push', `${s.url}/m`, 'main'], env);
      expect(await s.stop()).toBe('SIGKILL');
      expect(r.code).toBe(10);
      expect(r.stderr).toContain('CORAL_REMOTE_UNAVAILABLE');
      expect(packCount(repo)).toBe(point.includes('before') ? before : before + 1);
      await withServer([root], async (s2) => {
        const rerun = json<{ objects: number }>(a, ['push', `${s2.url}/m`, 'main'], env);
        // After publication the objects are there: the rerun moves only meta objects and the ref.
        if (point.includes('after')) expect(rerun.objects).toBe(0);
        else expect(rerun.objects).toBeGreaterThan(0);
        const c = path.join(d, `c-${point.replace(/\W/g, '')}`);
        ok(d, ['clone', `${s2.url}/m`, c], env);
        expect(ok(c, ['fsck'])).toMatch(/0 problem/);
        expect(snapshot(c)).toEqual(snapshot(a));
      });
    }
    const store = await LocalPackStore.open(repo);
    try {
      expect(await store.verify()).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('coral serve: two servers over one Ceph bucket', () => {
  it('concurrent pushes into one branch through both: each lands or is refused, none lost; clone passes fsck', async () => {
    const env = await ceph();
    const bucket = await makeBucket('serve');
    const store = `s3://${bucket}/hub`;
    const s3env = { ...env.vars };
    const d = workdir();
    const token = ok(d, ['serve', 'token', 'add', 'ci', '--scope', 'write', '--store', store], s3env).trim();
    const [s1, s2] = await Promise.all([startServe(['--store', store], s3env), startServe(['--store', store], s3env)]);
    try {
      const tenv = { CORAL_TOKEN: token };
      const base = path.join(d, 'base');
      fs.mkdirSync(base);
      ok(base, ['init']);
      writeModel(path.join(base, 'model.safetensors'), family(0));
      ok(base, ['add', '.']);
      commit(base, 'base');
      ok(base, ['push', `${s1.url}/m`, 'main'], tenv);
      // Three workers, each with its own file, push through alternating servers at once; a refused one pulls
      // (fetch + merge) and tries again, a bounded number of times.
      const workers = await Promise.all(
        [0, 1, 2].map(async (i) => {
          const w = path.join(d, `w${i}`);
          const cl = await coralAsync(d, ['clone', `${(i % 2 ? s2 : s1).url}/m`, w], tenv);
          expect(cl.code, cl.stderr).toBe(0);
          writeModel(path.join(w, `w${i}.safetensors`), family(1, 10 + i));
          ok(w, ['add', '.']);
          commit(w, `worker ${i}`);
          return w;
        }),
      );
      const outcomes: string[] = [];
      await Promise.all(
        workers.map(async (w) => {
          for (let attempt = 0; attempt < 8; attempt++) {
            const r = await coralAsync(w, ['push', 'origin', 'main'], tenv);
            if (r.code === 0) return outcomes.push('landed');
            expect(r.stderr).toMatch(/CORAL_NON_FAST_FORWARD|CORAL_REF_CONFLICT/);
            outcomes.push('refused');
            const p = await coralAsync(w, ['pull', 'origin', 'main'], tenv);
            expect(p.code, p.stderr).toBe(0);
          }
          throw new Error(`${w} never landed`);
        }),
      );
      expect(outcomes.filter((o) => o === 'landed').length).toBe(3);
      // A fresh clone through the other server has every worker's file, byte for byte, and passes fsck.
      const c = path.join(d, 'clone');
      ok(d, ['clone', `${s2.url}/m`, c], tenv);
      expect(ok(c, ['fsck'])).toMatch(/0 problem/);
      for (let i = 0; i < 3; i++)
        expect(sha256(path.join(c, `w${i}.safetensors`))).toBe(sha256(path.join(workers[i], `w${i}.safetensors`)));
      const log = ok(c, ['log', '--oneline']);
      for (let i = 0; i < 3; i++) expect(log).toContain(`worker ${i}`);
      // Both servers see the same token file.
      const anon = coral(d, ['clone', `${s1.url}/m`, path.join(d, 'nope')], { CORAL_TOKEN: '' });
      expect(anon.stderr).toContain('CORAL_REMOTE_AUTH');
    } finally {
      expect(await s1.stop()).toBe(0);
      expect(await s2.stop()).toBe(0);
    }
  }, 300_000);
});
