/**
 * `POST /:name/ingest?branch=<b>&path=<p>&message=<m>`: direct ingestion (docs/serve.md).
 *
 * The body is the checkpoint file, handed to lib/server/ingest as the raw request stream: a content-type
 * parser registered in this plugin's own encapsulated context passes the stream on without reading it,
 * so the body is never buffered and fastify's body limit does not apply; `deps.limits.maxUploadBytes` does
 * (a declared Content-Length above it is answered 413 before a byte is read, a body that grows past it is
 * cut off with 413). Metadata comes from query parameters (`step`, `metric.<name>=<value>`) and/or an
 * `x-coral-metadata` JSON header; an `idempotency-key` header makes retries safe.
 *
 * Replies: 201 with the IngestReply JSON for a new commit, 200 for a repeated idempotency key (the
 * existing commit), else `{ error: { code, message } }` with the status of lib/server/http-errors.ts.
 *
 * @example
 * await app.register(async (a) => ingestRoutes(a, deps));
 * // curl -T model.safetensors -H 'authorization: Bearer …' 'http://host:8080/llama/ingest?path=model.safetensors&step=100'
 */
import { setMaxListeners } from 'node:events';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { CoralError, InvalidArgumentError, LimitExceededError, RemoteUnavailableError } from '../../errors';
import { setBufferPoolLimit } from '../../native';
import { errorReply } from '../http-errors';
import { ingestUpload, type IngestReply } from '../ingest/ingest';
import type { RouteModule, ServerDeps } from '../types';

/** Most `x-coral-metadata` header bytes accepted. */
const MAX_METADATA_HEADER = 64 * 1024;

interface IngestQuery {
  branch?: string;
  path?: string;
  message?: string;
  step?: string;
  [k: string]: string | undefined;
}

/** A query value as JSON when it reads as a number or boolean, else the string. */
function scalar(v: string): unknown {
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v)) {
    const n = Number(v);
    if (Number.isFinite(n)) return n;
  }
  if (v === 'true' || v === 'false') return v === 'true';
  return v;
}

/** The commit metadata of a request: the `x-coral-metadata` header, then `step` and `metric.<k>` on top. */
export function requestMetadata(query: IngestQuery, header: string | string[] | undefined): Record<string, unknown> {
  let meta: Record<string, unknown> = {};
  if (header !== undefined) {
    const text = Array.isArray(header) ? header.join(',') : header;
    if (text.length > MAX_METADATA_HEADER)
      throw new LimitExceededError(`x-coral-metadata is over ${MAX_METADATA_HEADER} bytes`);
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new InvalidArgumentError(`x-coral-metadata is not valid JSON (${(e as Error).message})`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      throw new InvalidArgumentError('x-coral-metadata must be a JSON object');
    meta = v as Record<string, unknown>;
  }
  const out: Record<string, unknown> = { ...meta };
  if (query.step !== undefined) out.step = scalar(query.step);
  const metrics: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  const given = meta.metrics;
  if (given !== undefined) {
    if (given === null || typeof given !== 'object' || Array.isArray(given))
      throw new InvalidArgumentError('x-coral-metadata "metrics" must be an object');
    Object.assign(metrics, given);
  }
  let any = given !== undefined;
  for (const [k, v] of Object.entries(query)) {
    if (!k.startsWith('metric.') || v === undefined) continue;
    const name = k.slice('metric.'.length);
    if (!name) throw new InvalidArgumentError('a metric query parameter needs a name: metric.<name>=<value>');
    metrics[name] = scalar(v);
    any = true;
  }
  if (any) out.metrics = { ...metrics };
  return out;
}

interface IngestMetrics {
  latency: Histogram<'outcome'>;
  received: Counter;
  stored: Counter;
  objects: Counter<'kind'>;
}

function metricsOn(reg: Registry): IngestMetrics {
  // One set per registry (a second app over the same registry shares them).
  const get = <T>(name: string, make: () => T): T => (reg.getSingleMetric(name) as T | undefined) ?? make();
  return {
    latency: get(
      'coral_ingest_duration_seconds',
      () =>
        new Histogram({
          name: 'coral_ingest_duration_seconds',
          help: 'Time from the start of an ingest request to its reply',
          labelNames: ['outcome'],
          buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
          registers: [reg],
        }),
    ),
    received: get(
      'coral_ingest_received_bytes_total',
      () =>
        new Counter({
          name: 'coral_ingest_received_bytes_total',
          help: 'Body bytes received by ingest requests',
          registers: [reg],
        }),
    ),
    stored: get(
      'coral_ingest_stored_bytes_total',
      () =>
        new Counter({
          name: 'coral_ingest_stored_bytes_total',
          help: 'Encoded bytes ingest requests added to the stores',
          registers: [reg],
        }),
    ),
    objects: get(
      'coral_ingest_objects_total',
      () =>
        new Counter({
          name: 'coral_ingest_objects_total',
          help: 'Objects of ingested files by outcome: new (stored), delta (stored as a delta), deduplicated',
          labelNames: ['kind'],
          registers: [reg],
        }),
    ),
  };
}

function declaredLength(req: FastifyRequest): number | null {
  const h = req.headers['content-length'];
  if (h === undefined || req.headers['transfer-encoding'] !== undefined) return null;
  const n = Number(h);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`invalid Content-Length ${JSON.stringify(h)}`);
  return n;
}

/** Body bytes read and thrown away after an early refusal, so the client can read the reply. */
const LINGER_BYTES = 64 << 20;
const LINGER_MS = 2000;

/**
 * A refusal before the body was read to its end (401, 413, a bad header): the reply goes out and the
 * connection is closed, but not at once. Closing a socket with unread data makes the kernel send a
 * reset, which can destroy the reply before the client reads it; so the rest of the body is read and
 * discarded for a short while (LINGER_BYTES, LINGER_MS), then the socket is closed.
 */
function lingerAndClose(req: FastifyRequest, reply: FastifyReply): void {
  const raw = req.raw;
  // No `connection: close`: node would end the socket as soon as the reply is written (a reset).
  reply.raw.once('finish', () => {
    if (raw.complete) return;
    let n = 0;
    const close = () => raw.socket?.destroy();
    const timer = setTimeout(close, LINGER_MS);
    timer.unref();
    raw.on('data', (c: Buffer) => {
      n += c.byteLength;
      if (n > LINGER_BYTES) close();
    });
    raw.once('end', () => clearTimeout(timer));
    raw.once('close', () => clearTimeout(timer));
    // The upload's reader (an async iterator: a 'readable' listener) is gone; flowing mode discards.
    raw.removeAllListeners('readable');
    raw.resume();
  });
}

function sendError(req: FastifyRequest, reply: FastifyReply, e: unknown): FastifyReply {
  const { status, body } = errorReply(e);
  if (!(e instanceof CoralError)) req.log.error({ err: e }, 'ingest failed');
  if (!req.raw.complete) lingerAndClose(req, reply);
  return reply.code(status).send(body);
}

/**
 * The bound of the native pool of large buffers in a process that serves uploads (lib/native.ts
 * setBufferPoolLimit; 256 MiB otherwise). Pooled pages stay resident until reused, so the pool counts
 * in the server's peak RSS, and a pool of mismatched sizes grows to its bound. 48 MiB keeps the buffers
 * one upload of 16 MiB tensors cycles through; measured with bench/serve.ts (one client, 16 MiB
 * tensors): peak RSS 273-274 MiB of the 288 MiB target, against 280-286 MiB with 64 MiB, at the same
 * ingest speed.
 */
export const SERVE_BUFFER_POOL_BYTES = 48 << 20;

/** Registers the ingest route (see the module comment). */
export const ingestRoutes: RouteModule = async (app, deps: ServerDeps) => {
  setBufferPoolLimit(SERVE_BUFFER_POOL_BYTES);
  const m = metricsOn(deps.metrics);
  // Every upload in flight listens on the shutdown signal while it waits for body bytes.
  setMaxListeners(0, deps.shutdown);
  await app.register(async (scope) => {
    // This context only: hand the raw body stream to the handler, whatever its content type.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    scope.setErrorHandler((err, req, reply) => {
      const e =
        err instanceof CoralError
          ? err
          : (err as { validation?: unknown }).validation
            ? new InvalidArgumentError((err as Error).message)
            : err;
      return sendError(req, reply, e);
    });
    scope.post<{ Params: { name: string }; Querystring: IngestQuery }>(
      '/:name/ingest',
      {
        schema: {
          params: { type: 'object', properties: { name: { type: 'string', minLength: 1 } }, required: ['name'] },
          querystring: {
            type: 'object',
            properties: {
              branch: { type: 'string', minLength: 1 },
              path: { type: 'string', minLength: 1 },
              message: { type: 'string', minLength: 1 },
              step: { type: 'string' },
            },
            required: ['path'],
            additionalProperties: { type: 'string' },
          },
        },
      },
      async (req, reply) => {
        const t0 = process.hrtime.bigint();
        const done = (outcome: string) => m.latency.observe({ outcome }, Number(process.hrtime.bigint() - t0) / 1e9);
        try {
          if (deps.shutdown.aborted) throw new RemoteUnavailableError('the server is shutting down');
          const { name } = req.params;
          await deps.authorize(req, name, 'write');
          const size = declaredLength(req);
          if (size !== null && size > deps.limits.maxUploadBytes)
            throw new LimitExceededError(
              `the upload is ${size} bytes, over the ${deps.limits.maxUploadBytes}-byte limit`,
              { size, limit: deps.limits.maxUploadBytes },
            );
          const q = req.query;
          const metadata = requestMetadata(q, req.headers['x-coral-metadata']);
          const keyHeader = req.headers['idempotency-key'];
          const key = Array.isArray(keyHeader) ? keyHeader[0] : keyHeader;
          // Like a push to a new name, an ingest with a write token creates the repository.
          const repo = await deps.openRepo(name, { create: true });
          const body = (req.body as NodeJS.ReadableStream | undefined) ?? req.raw;
          const r: IngestReply = await ingestUpload(repo, body as AsyncIterable<unknown>, {
            path: q.path!,
            ...(q.branch !== undefined ? { branch: q.branch } : {}),
            ...(q.message !== undefined ? { message: q.message } : {}),
            metadata,
            ...(key !== undefined ? { idempotencyKey: key } : {}),
            size,
            limits: deps.limits,
            tmpDir: deps.tmpDir,
            signal: deps.shutdown,
          });
          m.received.inc(r.bytes.received);
          m.stored.inc(r.bytes.stored);
          m.objects.inc({ kind: 'new' }, r.objects.new);
          m.objects.inc({ kind: 'delta' }, r.objects.delta);
          m.objects.inc({ kind: 'deduplicated' }, r.objects.deduplicated);
          done(r.duplicate ? 'duplicate' : 'ok');
          return reply.code(r.duplicate ? 200 : 201).send(r);
        } catch (e) {
          done('error');
          return sendError(req, reply, e);
        }
      },
    );
  });
};
