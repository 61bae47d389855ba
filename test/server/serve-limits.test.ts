// `coral serve` as built by lib/server/app.ts, on a loopback socket: the HTTP header limit
// (`serve.maxHttpHeaderBytes`, Node's maxHeaderSize) and the idle close of served repositories.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBare } from '../../lib/remote/file';
import { addToken } from '../../lib/server/access';
import { startServer } from '../../lib/server/app';
import { setServeConfig } from '../../lib/server/settings';
import { family, packCount, writeModel } from '../remote/helpers';
import { ingestUrl, post } from './ingest-helpers';

let work = '';
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-serve-limits-'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function served(name: string): Promise<{ root: string; dir: string; token: string; model: Buffer }> {
  const root = fs.mkdtempSync(path.join(work, 'root-'));
  const dir = path.join(root, name);
  await initBare(dir);
  const { token } = await addToken({ root }, 'ci', { scope: 'write' });
  const file = path.join(work, `${name}.safetensors`);
  writeModel(file, family(1, 5));
  return { root, dir, token, model: fs.readFileSync(file) };
}

/**
 * One POST with `expect: 100-continue`: the body goes out only once the server asks for it, so a request
 * refused on its headers (431) is answered without a write racing the server's close.
 */
function send(url: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method: 'POST',
      headers: { ...headers, 'content-length': String(body.length), expect: '100-continue' },
    });
    req.on('continue', () => req.end(body));
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

const refsIn = (dir: string) => fs.readdirSync(path.join(dir, 'refs', 'heads'));
const sessionsIn = (dir: string) => fs.readdirSync(path.join(dir, 'sessions'));

describe('coral serve: HTTP header limit', () => {
  it('serve.maxHttpHeaderBytes bounds the request headers: 431 above it, nothing stored; headers above 16 KiB pass below it', async () => {
    const { root, dir, token, model } = await served('llama');
    await setServeConfig({ root }, 'serve.maxHttpHeaderBytes', 24 * 1024);
    const server = await startServer({ root });
    try {
      const url = ingestUrl(server.url!, 'llama', { path: 'model.safetensors' });
      const auth = { authorization: `Bearer ${token}` };
      // 30 KiB of metadata header: over the limit, refused by the HTTP server before the route runs.
      const big = { ...auth, 'x-coral-metadata': JSON.stringify({ note: 'x'.repeat(30 * 1024) }) };
      expect((await send(url, model, big)).status).toBe(431);
      expect(packCount(dir)).toBe(0);
      expect(refsIn(dir)).toEqual([]);
      // 20 KiB: above Node's default of 16 KiB, within the configured limit.
      const ok = await send(url, model, {
        ...auth,
        'x-coral-metadata': JSON.stringify({ note: 'y'.repeat(20 * 1024) }),
      });
      expect(ok.status).toBe(201);
      expect(JSON.parse(ok.body)).toMatchObject({ duplicate: false, branch: 'main' });
      expect(refsIn(dir)).toEqual(['main']);
    } finally {
      await server.close();
    }
  });

  it('refuses a limit below 1 KiB', async () => {
    const { root } = await served('r');
    await expect(startServer({ root, maxHttpHeaderBytes: 100 })).rejects.toMatchObject({
      code: 'CORAL_INVALID_ARGUMENT',
    });
  });
});

describe('coral serve: idle repositories', () => {
  it('a repository no request used for idleMs is closed (its writer session ends), never while a request uses it, and reopens on the next request', async () => {
    const { root, dir, token, model } = await served('m');
    const server = await startServer({ root, idleMs: 200 });
    const auth = { authorization: `Bearer ${token}` };
    const url = ingestUrl(server.url!, 'm', { path: 'model.safetensors' });
    const until = async (what: () => boolean) => {
      for (let i = 0; i < 200 && !what(); i++) await sleep(50);
      return what();
    };
    try {
      expect((await post(url, model, auth)).status).toBe(201);
      // Open: the repository holds a writer session (coral gc there would wait for it).
      expect(sessionsIn(dir).length).toBe(1);
      expect(await until(() => sessionsIn(dir).length === 0)).toBe(true);

      // An upload that stalls halfway keeps its repository open however long it takes.
      const u = new URL(ingestUrl(server.url!, 'm', { path: 'other.safetensors' }));
      let status = 0;
      const req = http.request({
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: 'POST',
        headers: { ...auth, 'content-length': String(model.length) },
      });
      const replied = new Promise<void>((resolve, reject) => {
        req.on('response', (res) => {
          status = res.statusCode ?? 0;
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
      });
      await new Promise<void>((resolve) => req.write(model.subarray(0, model.length >> 1), () => resolve()));
      expect(await until(() => sessionsIn(dir).length === 1)).toBe(true);
      // Several sweeps (every second) pass while the upload waits for the rest of its body.
      await sleep(2500);
      expect(sessionsIn(dir).length).toBe(1);
      req.end(model.subarray(model.length >> 1));
      await replied;
      expect(status).toBe(201);
      expect(await until(() => sessionsIn(dir).length === 0)).toBe(true);
      // The next request opens it again.
      expect((await post(url, model, auth)).status).toBe(201);
    } finally {
      await server.close();
    }
  });
});
