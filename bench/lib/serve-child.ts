/**
 * The server process of bench/serve.ts: fastify with the ingest route module (lib/server/routes/ingest.ts)
 * over the bare repositories under argv[2], plus `POST /discard`, which reads the body and throws it away
 * (the plain-upload baseline). Prints `PORT <n>` once listening; exits on SIGTERM.
 *
 *   node --import tsx bench/lib/serve-child.ts <root>
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { openRemote } from '../../lib/remote/open';
import type { RemoteRepo } from '../../lib/remote/transport';
import { ingestRoutes } from '../../lib/server/routes/ingest';

async function main(): Promise<void> {
  const root = process.argv[2];
  const repos = new Map<string, Promise<RemoteRepo>>();
  const abort = new AbortController();
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-serve-tmp-'));
  const app = Fastify({ logger: false });
  await ingestRoutes(app, {
    openRepo: (name) => {
      let r = repos.get(name);
      if (!r) repos.set(name, (r = openRemote(path.join(root, name))));
      return r;
    },
    authorize: () => Promise.resolve(),
    limits: {
      maxUploadBytes: 64 * 2 ** 30,
      maxHeaderBytes: 16 << 20,
      maxTensors: 100_000,
      maxTensorBytes: 8 * 2 ** 30,
    },
    metrics: new Registry(),
    tmpDir,
    shutdown: abort.signal,
  });
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    scope.post('/discard', async (req) => {
      let n = 0;
      for await (const c of req.raw) n += (c as Buffer).byteLength;
      return { bytes: n };
    });
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`PORT ${(app.server.address() as { port: number }).port}\n`);
  process.on('SIGTERM', () => {
    abort.abort();
    void app.close().then(async () => {
      for (const r of repos.values()) await (await r).close();
      fs.rmSync(tmpDir, { recursive: true, force: true });
      process.exit(0);
    });
  });
}

void main();
