// The http:// transport (lib/remote/http.ts) against a real `coral serve` application on a loopback socket,
// under the RemoteRepo conformance suite, plus what only the HTTP remote does: the server's own checks
// (objects verified on arrival, meta closure, refs only to what it holds), auth and typed errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSync } from '../../lib/codec';
import {
  CorruptObjectError,
  LimitExceededError,
  PermissionDeniedError,
  RemoteAuthError,
  RemoteNotFoundError,
  RemoteRejectedError,
  UnsupportedError,
} from '../../lib/errors';
import { MetaStore } from '../../lib/odb/meta-store';
import { openRemote } from '../../lib/remote/open';
import { addToken, revokeToken, setAnonymousRead } from '../../lib/server/access';
import { startServer, type CoralServer } from '../../lib/server/app';
import { LocalPackStore } from '../../lib/store/local';
import { metaFixture, putCommit, runRemoteSuite, type RemoteHarness } from './conformance';

let root = '';
let server: CoralServer;
let writeToken = '';
let readToken = '';
let n = 0;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-remote-http-'));
  writeToken = (await addToken({ root }, 'writer', { scope: 'write' })).token;
  readToken = (await addToken({ root }, 'reader', { scope: 'read' })).token;
  server = await startServer({ root, limits: { maxUploadBytes: 4 << 20 } });
});
afterAll(async () => {
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

async function flipObjectByte(coral: string, id: string): Promise<void> {
  const store = await LocalPackStore.open(coral);
  try {
    const { bytes, attrs } = await store.get(id);
    const file = store.packPath(attrs.location!);
    const buf = fs.readFileSync(file);
    const at = buf.indexOf(Buffer.from(bytes.subarray(1000, 1064)));
    expect(at).toBeGreaterThan(0);
    buf[at + 7] ^= 0x40;
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, buf);
  } finally {
    await store.close();
  }
}

const harness = async (): Promise<RemoteHarness> => {
  const name = `conf-${++n}`;
  const url = `${server.url}/${name}`;
  const remote = await openRemote(url, { token: writeToken, create: true });
  const dir = path.join(root, name);
  return {
    remote,
    another: () => openRemote(url, { token: writeToken }),
    corruptObject: (id) => flipObjectByte(dir, id),
    corruptMeta: async (id) => {
      const file = new MetaStore(path.join(dir, 'objects', 'meta'), path.join(dir, 'tmp')).pathOf(id);
      fs.chmodSync(file, 0o644);
      fs.writeFileSync(file, '{"type":"tree","v":1,"files":{"x":1}}');
    },
    cleanup: async () => undefined,
  };
};

runRemoteSuite('http (coral serve)', harness);

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { code?: string; message?: string }) => e.code ?? e.message ?? 'error',
  );

describe('http transport', () => {
  it('needs a token to read and a write token to write; anonymous read per repository', async () => {
    const url = `${server.url}/auth-1`;
    await (await openRemote(url, { token: writeToken, create: true })).close();
    expect(await codeOf(openRemote(url))).toBe(RemoteAuthError.code);
    expect(await codeOf(openRemote(url, { token: 'coral_not-a-token' }))).toBe(RemoteAuthError.code);
    const reader = await openRemote(url, { token: readToken });
    try {
      expect((await reader.listRefs()).size).toBe(0);
      expect(await codeOf(reader.meta.put(metaFixture(1).tree))).toBe(PermissionDeniedError.code);
      expect(await codeOf(reader.updateRef('refs/heads/main', null, metaFixture(1).commitId))).toBe(
        PermissionDeniedError.code,
      );
    } finally {
      await reader.close();
    }
    // A token limited to other repositories.
    const other = (await addToken({ root }, 'other-only', { scope: 'write', repos: ['somewhere-else'] })).token;
    expect(await codeOf(openRemote(url, { token: other }))).toBe(PermissionDeniedError.code);
    // Creating a repository needs write scope too.
    expect(await codeOf(openRemote(`${server.url}/auth-2`, { token: readToken, create: true }))).toBe(
      PermissionDeniedError.code,
    );
    // Anonymous read, switched on for this repository only: reading works, writing does not.
    await setAnonymousRead({ root }, 'auth-1', true);
    const anon = await openRemote(url);
    try {
      expect((await anon.listRefs()).size).toBe(0);
      expect(await codeOf(anon.meta.put(metaFixture(1).tree))).toBe(RemoteAuthError.code);
    } finally {
      await anon.close();
    }
    await setAnonymousRead({ root }, 'auth-1', false);
    expect(await codeOf(openRemote(url))).toBe(RemoteAuthError.code);
    // A revoked token is refused at once.
    const temp = (await addToken({ root }, 'temp', { scope: 'read' })).token;
    const r = await openRemote(url, { token: temp });
    await revokeToken({ root }, 'temp');
    expect(await codeOf(r.listRefs())).toBe(RemoteAuthError.code);
    await r.close();
  });

  it('refuses what would break the repository: missing referents, bad objects, refs to nothing', async () => {
    const url = `${server.url}/checks`;
    const remote = await openRemote(url, { token: writeToken, create: true });
    try {
      const m = metaFixture(7);
      // A commit before its tree; a ref to a commit the server does not have.
      expect(await codeOf(remote.meta.put(m.commit))).toBe(RemoteRejectedError.code);
      expect(await codeOf(remote.updateRef('refs/heads/main', null, m.commitId))).toBe(RemoteRejectedError.code);
      await putCommit(remote, 7);
      await remote.updateRef('refs/heads/main', null, m.commitId);
      // An object stored under a content id it does not decode to.
      const t = { dtype: 'F32' as const, shape: [256], data: new Uint8Array(1024).fill(3) };
      const enc = encodeSync(t);
      const wrongId = (enc.id[0] === 'a' ? 'b' : 'a') + enc.id.slice(1);
      const tx = remote.objects.beginWrite();
      await tx.put(wrongId, enc.bytes, { codec: enc.codec, dtype: 'F32', shape: [256], rawSize: 1024 });
      expect(await codeOf(tx.commit())).toBe(CorruptObjectError.code);
      expect(await remote.objects.has(wrongId)).toBe(false);
      // The right id is accepted.
      const tx2 = remote.objects.beginWrite();
      expect(await tx2.put(enc.id, enc.bytes, { codec: enc.codec, dtype: 'F32', shape: [256], rawSize: 1024 })).toBe(
        true,
      );
      expect((await tx2.commit())?.objects).toBe(1);
      // Maintenance is the server's.
      expect(await codeOf(remote.objects.repack(() => true))).toBe(UnsupportedError.code);
      // A pack over the server's limit is 413 with a typed error.
      const big = remote.objects.beginWrite();
      const err = await (async () => {
        for (let i = 0; i < 8; i++) {
          const b = new Uint8Array(1 << 20).fill(i + 1);
          await big.put(`big-${i}`, b, { codec: 'raw', dtype: 'U8', shape: [b.length], rawSize: b.length });
        }
        await big.commit();
      })().then(
        () => null,
        (e: { code?: string }) => e.code,
      );
      expect(err).toBe(LimitExceededError.code);
      expect(await remote.objects.has('big-0')).toBe(false);
    } finally {
      await remote.close();
    }
    // No repository of that name; a name that is not one.
    expect(await codeOf(openRemote(`${server.url}/missing`, { token: writeToken }))).toBe(RemoteNotFoundError.code);
    expect(await codeOf(openRemote(`${server.url}/.coral-serve`, { token: writeToken }))).toBe(
      'CORAL_INVALID_ARGUMENT',
    );
  });

  it('answers malformed requests with 400 and a JSON error body; a cut or garbled pack stores nothing', async () => {
    const url = `${server.url}/malformed`;
    const remote = await openRemote(url, { token: writeToken, create: true });
    await remote.close();
    const auth = { authorization: `Bearer ${writeToken}` };
    const bad = await fetch(`${url}/refs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'refs/heads/main', expected: null, next: 'not-an-id' }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('CORAL_INVALID_ARGUMENT');
    const notJson = await fetch(`${url}/refs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{"name": ',
    });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { code: string } }).error.code).toBe('CORAL_INVALID_ARGUMENT');
    const packs = fs.readdirSync(path.join(root, 'malformed', 'objects', 'packs')).length;
    for (const body of [
      Buffer.from([0, 0, 0, 5, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b]), // a frame that is not JSON
      Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('{}')]), // an unknown frame
      Buffer.from([0, 0, 0]), // cut inside a frame length
      Buffer.alloc(0), // no commit frame
    ]) {
      const r = await fetch(`${url}/packs`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/x-coral-pack' },
        body,
      });
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('CORAL_FORMAT');
    }
    expect(fs.readdirSync(path.join(root, 'malformed', 'objects', 'packs')).length).toBe(packs);
    expect(fs.readdirSync(path.join(root, 'malformed', 'tmp'))).toEqual([]);
  });

  it('a client that goes away mid-pack leaves nothing behind on the server', async () => {
    const remote = await openRemote(`${server.url}/gone`, { token: writeToken, create: true });
    try {
      const packs = fs.readdirSync(path.join(root, 'gone', 'objects', 'packs')).length;
      const tx = remote.objects.beginWrite();
      const b = new Uint8Array(200_000).fill(9);
      await tx.put('half-sent', b, { codec: 'raw', dtype: 'U8', shape: [b.length], rawSize: b.length });
      await tx.abort(); // the request is destroyed mid-stream
      // The server notices asynchronously: wait (bounded) for its spool and temp pack to go.
      const leftovers = () => [
        ...fs.readdirSync(server.deps.tmpDir),
        ...fs.readdirSync(path.join(root, 'gone', 'tmp')),
      ];
      for (let i = 0; i < 100 && leftovers().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(leftovers()).toEqual([]);
      expect(fs.readdirSync(path.join(root, 'gone', 'objects', 'packs')).length).toBe(packs);
      expect(await remote.objects.has('half-sent')).toBe(false);
    } finally {
      await remote.close();
    }
  });

  it('serves health and metrics', async () => {
    const h = await fetch(`${server.url}/healthz`);
    expect(h.status).toBe(200);
    const m = await (await fetch(`${server.url}/metrics`)).text();
    expect(m).toContain('coral_http_requests_total');
    expect(m).toMatch(/coral_http_requests_total\{method="GET",route="\/:name\/refs",status="200"\} \d+/);
    expect(m).toContain('coral_http_received_bytes_total');
    expect(m).toContain('coral_http_request_duration_seconds_bucket');
    expect(m).toMatch(/coral_remote_packs_total\{outcome="published"\} [1-9]/);
    expect(m).toMatch(/coral_remote_packs_total\{outcome="refused"\} [1-9]/);
  });
});
