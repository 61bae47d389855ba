// CoralClient against the real ingest route on loopback: progress events, typed errors, and retries that
// never commit twice. A small TCP proxy in front of the server breaks chosen connections: one cut in the
// middle of the upload (the server commits nothing), one whose reply is dropped after the server
// committed (the retry must get that commit back, not make a second).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoralClient, type IngestProgress } from '../../lib/client/client';
import { FormatError, LimitExceededError, RemoteUnavailableError } from '../../lib/errors';
import { initBare } from '../../lib/remote/file';
import { Repository } from '../../lib/repository';
import { family, writeModel } from '../remote/helpers';
import { startServer, type TestServer } from './ingest-helpers';

let root = '';
let work = '';
let server: TestServer;
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-client-root-'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-client-work-'));
  server = await startServer(root, { maxUploadBytes: 4 << 20 });
});
afterAll(async () => {
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

type Mode = 'pass' | 'cut-upload' | 'drop-reply';

/** A TCP proxy to `port`; each new connection takes the next mode of `modes` (then 'pass'). */
async function proxy(
  port: number,
  modes: Mode[],
): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((client) => {
    const mode = modes[n++] ?? 'pass';
    const up = net.connect(port, '127.0.0.1');
    sockets.add(client).add(up);
    let forwarded = 0;
    client.on('data', (d: Buffer) => {
      forwarded += d.byteLength;
      if (mode === 'cut-upload' && forwarded > 200_000) {
        client.destroy();
        up.destroy();
        return;
      }
      up.write(d);
    });
    up.on('data', (d: Buffer) => {
      // The server answered (it committed): the client never hears of it.
      if (mode === 'drop-reply') {
        client.destroy();
        up.destroy();
        return;
      }
      client.write(d);
    });
    client.on('end', () => up.end());
    up.on('end', () => client.end());
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`,
    connections: () => n,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

let k = 0;
async function setup(): Promise<{ name: string; dir: string; file: string; bytes: Buffer }> {
  const name = `c${++k}`;
  const dir = path.join(root, name);
  await initBare(dir);
  const file = path.join(work, `m${k}.safetensors`);
  writeModel(file, family(1, 40 + k));
  return { name, dir, file, bytes: fs.readFileSync(file) };
}

async function history(dir: string): Promise<{ ids: string[]; file: (p: string) => Buffer }> {
  const dest = fs.mkdtempSync(path.join(work, 'clone-'));
  const { repository } = await Repository.clone(dir, path.join(dest, 'c'));
  try {
    const ids = (await repository.log()).map((e) => e.id);
    return { ids, file: (p) => fs.readFileSync(path.join(repository.worktree, p)) };
  } finally {
    await repository.close();
  }
}

describe('CoralClient', () => {
  it('uploads a file with progress events and returns the commit', async () => {
    const { name, dir, file, bytes } = await setup();
    const client = new CoralClient({ url: server.url, token: 'secret' });
    const seen: IngestProgress[] = [];
    const events: IngestProgress[] = [];
    client.on('progress', (p: IngestProgress) => events.push(p));
    const r = await client.ingest(name, file, {
      path: 'ckpt/model.safetensors',
      step: 7,
      metrics: { loss: 1.5 },
      metadata: { run: 'r1' },
      onProgress: (p) => seen.push(p),
    });
    expect(r).toMatchObject({ duplicate: false, branch: 'main', bytes: { received: bytes.byteLength } });
    expect(seen[0]).toEqual({ sent: 0, total: bytes.byteLength, attempt: 1 });
    expect(seen[seen.length - 1]).toEqual({ sent: bytes.byteLength, total: bytes.byteLength, attempt: 1 });
    for (let i = 1; i < seen.length; i++) expect(seen[i].sent).toBeGreaterThanOrEqual(seen[i - 1].sent);
    expect(events).toEqual(seen);
    const h = await history(dir);
    expect(h.ids).toEqual([r.commit]);
    expect(h.file('ckpt/model.safetensors').equals(bytes)).toBe(true);
  });

  it('streams a Readable (chunked) and bytes', async () => {
    const { name, dir, file, bytes } = await setup();
    const client = new CoralClient({ url: server.url });
    const a = await client.ingest(name, fs.createReadStream(file), { path: 'a.safetensors' });
    const b = await client.ingest(name, bytes, { path: 'b.safetensors' });
    expect(b.parent).toBe(a.commit);
    const h = await history(dir);
    expect(h.file('a.safetensors').equals(bytes)).toBe(true);
    expect(h.file('b.safetensors').equals(bytes)).toBe(true);
  });

  it('typed errors: a refused body and an upload over the limit', async () => {
    const { name } = await setup();
    const client = new CoralClient({ url: server.url, retries: 0 });
    await expect(
      client.ingest(name, Buffer.from('not a safetensors file at all'), { path: 'x.safetensors' }),
    ).rejects.toBeInstanceOf(FormatError);
    const big = Buffer.alloc(5 << 20, 1);
    await expect(client.ingest(name, big, { path: 'big.bin' })).rejects.toBeInstanceOf(LimitExceededError);
    await expect(
      client.ingest(name, () => Readable.from([Buffer.alloc(5 << 20, 2)]), { path: 'big2.bin' }),
    ).rejects.toBeInstanceOf(LimitExceededError);
  });

  it('retries after the connection drops mid-upload, and after a lost reply, without a duplicate commit', async () => {
    const { name, dir, file, bytes } = await setup();
    const p = await proxy(Number(new URL(server.url).port), ['cut-upload', 'drop-reply']);
    try {
      const client = new CoralClient({ url: p.url, retryDelayMs: 10 });
      const attempts = new Set<number>();
      const r = await client.ingest(name, file, { path: 'm.safetensors', onProgress: (x) => attempts.add(x.attempt) });
      // 1: cut mid-upload (nothing committed); 2: committed, reply lost; 3: the same key: that commit.
      expect(p.connections()).toBe(3);
      expect([...attempts]).toEqual([1, 2, 3]);
      expect(r.duplicate).toBe(true);
      const h = await history(dir);
      expect(h.ids).toEqual([r.commit]);
      expect(h.file('m.safetensors').equals(bytes)).toBe(true);
    } finally {
      await p.close();
    }
  });

  it('gives up after the retries with a typed error', async () => {
    const { name } = await setup();
    const dead = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as net.AddressInfo).port;
    try {
      const client = new CoralClient({ url: `http://127.0.0.1:${port}`, retries: 2, retryDelayMs: 5 });
      await expect(client.ingest(name, Buffer.alloc(100), { path: 'x.bin' })).rejects.toBeInstanceOf(
        RemoteUnavailableError,
      );
    } finally {
      dead.close();
    }
  });
});
