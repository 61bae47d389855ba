// A real fastify instance with the ingest route module and a real ServerDeps: repositories are bare
// repositories (a directory root, or an s3:// prefix), opened with openRemote; authorize lets writes
// through unless the request carries `x-test-deny`; metrics go to a prom-client Registry; uploads spool
// in a temp dir. Requests go over real loopback sockets.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { RemoteAuthError } from '../../lib/errors';
import { openRemote } from '../../lib/remote/open';
import type { RemoteRepo } from '../../lib/remote/transport';
import { ingestRoutes } from '../../lib/server/routes/ingest';
import type { ServerDeps, ServerLimits } from '../../lib/server/types';

export const LIMITS: ServerLimits = {
  maxUploadBytes: 64 << 20,
  maxHeaderBytes: 1 << 20,
  maxTensors: 1000,
  maxTensorBytes: 32 << 20,
};

export interface TestServer {
  url: string;
  app: FastifyInstance;
  deps: ServerDeps;
  tmpDir: string;
  abort: AbortController;
  close(): Promise<void>;
}

/** Starts a server over the repositories `<base>/<name>` (a directory or an s3:// prefix). */
export async function startServer(base: string, limits: Partial<ServerLimits> = {}): Promise<TestServer> {
  const repos = new Map<string, Promise<RemoteRepo>>();
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-serve-tmp-'));
  const abort = new AbortController();
  const deps: ServerDeps = {
    openRepo(name) {
      let r = repos.get(name);
      if (!r) {
        r = openRemote(base.startsWith('s3://') ? `${base}/${name}` : path.join(base, name));
        repos.set(name, r);
        r.catch(() => repos.delete(name));
      }
      return r;
    },
    authorize(req) {
      return req.headers['x-test-deny'] ? Promise.reject(new RemoteAuthError('denied')) : Promise.resolve();
    },
    limits: { ...LIMITS, ...limits },
    metrics: new Registry(),
    tmpDir,
    shutdown: abort.signal,
  };
  const app = Fastify({ logger: false });
  await ingestRoutes(app, deps);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${addr.port}`,
    app,
    deps,
    tmpDir,
    abort,
    async close() {
      await app.close();
      for (const r of repos.values()) await (await r.catch(() => null))?.close();
      fs.rmSync(tmpDir, { recursive: true, force: true });
    },
  };
}

export interface Reply {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

/**
 * One POST over a real socket: `body` as a Buffer (Content-Length) or as chunks (chunked encoding,
 * `chunked: true`).
 */
export function post(
  url: string,
  body: Buffer | Buffer[],
  headers: Record<string, string> = {},
  opts: { chunked?: boolean } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const chunks = Array.isArray(body) ? body : [body];
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: 'POST',
        headers: {
          'content-type': 'application/octet-stream',
          ...(opts.chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(total) }),
          ...headers,
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Reply['body'] });
          } catch {
            reject(new Error(`non-JSON reply ${res.statusCode}: ${text}`));
          }
        });
      },
    );
    // A server that answers early (413) may close before the whole body is written.
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

/** The ingest URL of repository `name` with query parameters. */
export function ingestUrl(server: string, name: string, q: Record<string, string | number>): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) sp.set(k, String(v));
  return `${server}/${name}/ingest?${sp.toString()}`;
}

/** Every file left in a directory tree (relative paths). */
export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile());
}
