/**
 * The `coral serve` application: a fastify instance serving every repository under a root directory or
 * an S3 bucket prefix (lib/server/repos.ts), with bearer-token auth (access.ts), limits, Prometheus
 * metrics and a graceful shutdown. Routes come in modules (types.ts `RouteModule`): the HTTP remote
 * (routes/remote.ts) and direct ingestion (routes/ingest.ts) are built in, and `opts.routes` adds more. Each module is
 * registered in its own encapsulated context, so its content-type parsers and hooks never clash with
 * another's.
 *
 * Every error becomes `{error: {code, message}}` with the status of http-errors.ts; fastify's own
 * refusals (schema validation, a body over its limit, an unknown content type) are mapped to the same
 * typed errors first (InvalidArgumentError 400, LimitExceededError 413, UnsupportedFormatError 415).
 *
 * Shutdown (`close()`, SIGTERM in `coral serve`): the listener stops accepting, requests under way get
 * `graceMs` to finish, then `deps.shutdown` is aborted (a pack being received is dropped unpublished)
 * and the remaining connections are closed; open repositories and the temp directory go last.
 *
 * @example
 * const server = await buildServer({ root: '/srv/coral' });
 * const url = await server.listen({ host: '127.0.0.1', port: 0 });
 * // … later
 * await server.close();
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  CoralError,
  InvalidArgumentError,
  LimitExceededError,
  PermissionDeniedError,
  RemoteAuthError,
  RemoteNotFoundError,
  UnsupportedFormatError,
  invalidParameter,
} from '../errors';
import { AccessControl } from './access';
import { errorReply } from './http-errors';
import { RESERVED_REPO_NAMES, RepoSet, checkRepoName } from './repos';
import { ingestRoutes } from './routes/ingest';
import { remoteRoutes } from './routes/remote';
import { uiRoutes } from './ui/routes';
import { readServeConfig } from './settings';
import type { ServeLocation } from './shared-file';
import type { RouteModule, Scope, ServerDeps, ServerLimits } from './types';

/** Limits when neither the options nor `.coral-serve/config` set them. */
export const DEFAULT_LIMITS: Readonly<ServerLimits> = Object.freeze({
  maxUploadBytes: 64 * 2 ** 30,
  maxHeaderBytes: 100 * 2 ** 20,
  maxTensors: 100_000,
  maxTensorBytes: 16 * 2 ** 30,
});

/** Config keys (`serve.*` in `.coral-serve/config`) of each limit. */
const LIMIT_KEYS: Record<keyof ServerLimits, string> = {
  maxUploadBytes: 'serve.maxUploadBytes',
  maxHeaderBytes: 'serve.maxHeaderBytes',
  maxTensors: 'serve.maxTensors',
  maxTensorBytes: 'serve.maxTensorBytes',
};

export interface ServerOptions extends ServeLocation {
  /** Limits (each overrides `serve.*` of `.coral-serve/config`, which overrides DEFAULT_LIMITS). */
  limits?: Partial<ServerLimits>;
  /** More route modules (e.g. direct ingestion), registered after the built-in ones. */
  routes?: RouteModule[];
  /** pino log level to stderr; default 'silent' (no logging). */
  logLevel?: 'silent' | 'fatal' | 'error' | 'warn' | 'info' | 'debug';
  /** Directory for spooled uploads; default a fresh one under the OS temp dir (removed on close). */
  tmpDir?: string;
  /** How long a bucket's token file is trusted before looking again (ms); default `serve.tokenCacheSeconds`. */
  tokenCacheMs?: number;
  /** Requests under way get this long to finish on close (ms); default `serve.shutdownGraceSeconds`. */
  graceMs?: number;
  /** Idle repositories are closed after this long (ms); default 60000. */
  idleMs?: number;
  /**
   * Largest HTTP request header block (request line and headers), bytes: Node's `maxHeaderSize`; larger
   * is answered 431 before the route runs. Default `serve.maxHttpHeaderBytes` (16384, Node's own default).
   */
  maxHttpHeaderBytes?: number;
  /**
   * The web UI (docs/ui.md): its JSON API under `/api` and the built pages under `/ui/` (`true`: the pages
   * from `ui/dist/` of the package, or CORAL_UI_DIST; `{ dist }`: from that directory). Default off.
   */
  ui?: boolean | { dist?: string };
  /**
   * `coral ui`: serve only the repository at this path (a working repository or a bare one), read-only
   * and without tokens, under the name `repositoryName` (default: the directory's name, made a valid
   * repository name). No remote or ingestion routes are registered; `root`, `store` and the server's
   * token file are not used.
   */
  repository?: string;
  repositoryName?: string;
}

export interface CoralServer {
  readonly app: FastifyInstance;
  readonly deps: ServerDeps;
  /** Starts listening; resolves the base URL (`http://127.0.0.1:41234`). Port 0 picks a free port. */
  listen(opts?: { host?: string; port?: number }): Promise<string>;
  /** The URL once listening, else null. */
  readonly url: string | null;
  /** Graceful shutdown (see the module comment). Idempotent. */
  close(): Promise<void>;
}

function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (h === undefined) return null;
  const m = /^Bearer ([\x21-\x7e]+)$/i.exec(h);
  if (!m) throw new RemoteAuthError('the Authorization header must be `Bearer <token>`');
  return m[1];
}

/** Maps fastify's own errors onto coral's typed errors. */
function asCoral(e: unknown): unknown {
  if (e instanceof CoralError) return e;
  const f = e as Partial<FastifyError>;
  if (f && typeof f === 'object' && typeof f.statusCode === 'number') {
    if (f.validation) return new InvalidArgumentError(`invalid request: ${f.message}`);
    if (f.statusCode === 413) return new LimitExceededError(f.message ?? 'request body too large');
    if (f.statusCode === 415) return new UnsupportedFormatError(f.message ?? 'unsupported content type');
    if (f.statusCode === 404) return new RemoteNotFoundError(f.message ?? 'not found');
    if (f.statusCode >= 400 && f.statusCode < 500) return new InvalidArgumentError(f.message ?? 'bad request');
  }
  return e;
}

/**
 * A refused upload whose body is still arriving: read and drop the rest (bounded), so the client gets the
 * error reply before the connection closes (closing with unread data would reset it, losing the reply).
 */
function drainRefused(raw: FastifyRequest['raw']): void {
  const cap = 64 << 20;
  let dropped = 0;
  raw.removeAllListeners('readable');
  raw.removeAllListeners('data');
  raw.on('data', (c: Buffer) => {
    dropped += c.length;
    if (dropped > cap) raw.socket?.destroy();
  });
  raw.on('error', () => undefined);
  raw.resume();
}

/** `coral ui`'s one repository: its absolute path and the name it is served under. */
function singleRepository(dir: string, name: string | undefined): { name: string; path: string } {
  if (typeof dir !== 'string' || dir === '') throw invalidParameter('repository', 'path', dir);
  const abs = path.resolve(dir);
  if (name !== undefined) return { name: checkRepoName(name), path: abs };
  let n = path
    .basename(abs)
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 100);
  if (!n || RESERVED_REPO_NAMES.has(n)) n = 'repo';
  return { name: n, path: abs };
}

/** Builds the server (not yet listening). */
export async function buildServer(opts: ServerOptions = {}): Promise<CoralServer> {
  if (typeof opts !== 'object' || opts === null) throw invalidParameter('options', 'object', opts);
  const single = opts.repository === undefined ? null : singleRepository(opts.repository, opts.repositoryName);
  const loc: ServeLocation = single
    ? { root: path.dirname(single.path) }
    : { root: opts.root, store: opts.store, endpoint: opts.endpoint };
  if (single) {
    if (opts.root !== undefined || opts.store !== undefined)
      throw new InvalidArgumentError('give a repository, or a root / store of repositories, not both');
  } else if (opts.store === undefined) {
    const dir = path.resolve(opts.root ?? '.');
    const st = await fsp.stat(dir).catch(() => null);
    if (!st?.isDirectory())
      throw new InvalidArgumentError(`${dir} is not a directory: coral serve serves the repositories in one`, {
        root: dir,
      });
  }
  const cfg = single ? {} : await readServeConfig(loc);
  const limits: ServerLimits = { ...DEFAULT_LIMITS };
  for (const k of Object.keys(LIMIT_KEYS) as Array<keyof ServerLimits>) {
    const v = opts.limits?.[k] ?? cfg[LIMIT_KEYS[k]];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw invalidParameter(`limits.${k}`, 'positive integer', v);
    limits[k] = v as number;
  }
  const num = (v: unknown, d: number) => (typeof v === 'number' ? v : d);
  const tokenCacheMs = opts.tokenCacheMs ?? num(cfg['serve.tokenCacheSeconds'], 5) * 1000;
  const graceMs = opts.graceMs ?? num(cfg['serve.shutdownGraceSeconds'], 30) * 1000;
  const maxHttpHeaderBytes = opts.maxHttpHeaderBytes ?? num(cfg['serve.maxHttpHeaderBytes'], 16384);
  if (!Number.isSafeInteger(maxHttpHeaderBytes) || maxHttpHeaderBytes < 1024)
    throw invalidParameter('maxHttpHeaderBytes', 'integer >= 1024', maxHttpHeaderBytes);

  const repos = new RepoSet(loc, opts.idleMs ?? 60_000, single);
  const access = single
    ? null
    : await AccessControl.open(loc, repos.description.startsWith('s3://') ? tokenCacheMs : 0);
  const ownsTmp = opts.tmpDir === undefined;
  const tmpDir = opts.tmpDir ?? (await fsp.mkdtemp(path.join(os.tmpdir(), 'coral-serve-')));
  const shutdown = new AbortController();

  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'coral_' });
  const requests = new Counter({
    name: 'coral_http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'coral_http_request_duration_seconds',
    help: 'HTTP request latency by route and method',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300],
    registers: [registry],
  });
  const bytesIn = new Counter({
    name: 'coral_http_received_bytes_total',
    help: 'Bytes received (request bodies), by route',
    labelNames: ['route'],
    registers: [registry],
  });
  const bytesOut = new Counter({
    name: 'coral_http_sent_bytes_total',
    help: 'Bytes sent (responses), by route',
    labelNames: ['route'],
    registers: [registry],
  });

  const app = Fastify({
    logger: opts.logLevel && opts.logLevel !== 'silent' ? { level: opts.logLevel, stream: process.stderr } : false,
    bodyLimit: 16 << 20,
    http: { maxHeaderSize: maxHttpHeaderBytes },
    routerOptions: { maxParamLength: 256 },
    // Requests that never finish sending their headers are cut after this long.
    requestTimeout: 0,
    connectionTimeout: 0,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });

  const deps: ServerDeps = {
    openRepo: (name, o) => repos.get(checkRepoName(name), o?.create === true),
    listRepos: () => repos.list(),
    authorize: async (req: FastifyRequest, name: string, scope: Scope) => {
      checkRepoName(name);
      if (access) return access.check(bearer(req), name, scope);
      // `coral ui`: read-only, no token.
      if (scope !== 'read')
        throw new PermissionDeniedError(`the repository ${name} is served read-only here (coral ui)`, { repo: name });
      repos.urlOf(name);
    },
    limits: Object.freeze(limits),
    metrics: registry,
    tmpDir,
    shutdown: shutdown.signal,
  };

  interface Track {
    start: bigint;
    read: number;
    written: number;
    repo: string | null;
    done: boolean;
  }
  const tracks = new WeakMap<FastifyRequest, Track>();
  const finish = (req: FastifyRequest, status: number) => {
    const t = tracks.get(req);
    if (!t || t.done) return;
    t.done = true;
    if (t.repo) repos.release(t.repo);
    const route = req.routeOptions?.url ?? 'unmatched';
    requests.inc({ method: req.method, route, status: String(status) });
    latency.observe({ method: req.method, route }, Number(process.hrtime.bigint() - t.start) / 1e9);
    const sock = req.raw.socket;
    if (sock) {
      bytesIn.inc({ route }, Math.max(0, sock.bytesRead - t.read));
      bytesOut.inc({ route }, Math.max(0, sock.bytesWritten - t.written));
    }
  };
  app.addHook('onRequest', async (req) => {
    const name = (req.params as { name?: unknown } | undefined)?.name;
    const repo = typeof name === 'string' ? name : null;
    if (repo) repos.acquire(repo);
    const sock = req.raw.socket;
    tracks.set(req, {
      start: process.hrtime.bigint(),
      read: sock?.bytesRead ?? 0,
      written: sock?.bytesWritten ?? 0,
      repo,
      done: false,
    });
  });
  app.addHook('onResponse', async (req, reply) => finish(req, reply.statusCode));
  app.addHook('onRequestAbort', async (req) => finish(req, 499));

  app.setErrorHandler((err, req, reply) => {
    const e = asCoral(err);
    const { status, body } = errorReply(e);
    if (status >= 500) req.log.error({ err }, 'request failed');
    if (reply.sent || reply.raw.destroyed || reply.raw.writableEnded) return;
    if (!req.raw.complete) drainRefused(req.raw);
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const { status, body } = errorReply(new RemoteNotFoundError(`no route ${req.method} ${req.url.split('?')[0]}`));
    void reply.status(status).send(body);
  });

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));

  const ui = opts.ui ? [uiRoutes(typeof opts.ui === 'object' ? opts.ui : {})] : [];
  const builtIn = single ? [] : [remoteRoutes, ingestRoutes];
  for (const mod of [...builtIn, ...ui, ...(opts.routes ?? [])])
    await app.register(async (scope) => {
      await mod(scope, deps);
    });
  await app.ready();

  let url: string | null = null;
  let closing: Promise<void> | null = null;
  return {
    app,
    deps,
    get url() {
      return url;
    },
    async listen(o = {}) {
      const host = o.host ?? '127.0.0.1';
      await app.listen({ host, port: o.port ?? 0 });
      const addr = app.server.address();
      if (addr && typeof addr === 'object')
        url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
      return url!;
    },
    close() {
      closing ??= (async () => {
        const closed = app.close();
        const timer = setTimeout(() => {
          shutdown.abort();
          app.server.closeAllConnections?.();
        }, graceMs);
        try {
          await closed;
        } finally {
          clearTimeout(timer);
          shutdown.abort();
          await repos.closeAll();
          access?.close();
          if (ownsTmp) await fsp.rm(tmpDir, { recursive: true, force: true });
        }
      })();
      return closing;
    },
  };
}

/** Builds the server and starts listening (`host` default 127.0.0.1, `port` default 0: a free port). */
export async function startServer(opts: ServerOptions & { host?: string; port?: number } = {}): Promise<CoralServer> {
  const { host, port, ...rest } = opts;
  const s = await buildServer(rest);
  try {
    await s.listen({ host, port });
  } catch (e) {
    await s.close();
    throw e;
  }
  return s;
}
