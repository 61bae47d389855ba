/**
 * `CoralClient`: the Node client of a `coral serve` server (docs/serve.md, docs/api.md).
 *
 * `ingest(name, fileOrStream, opts)` uploads one checkpoint to `POST /<name>/ingest` and resolves with
 * the server's reply (the new commit, objects new / deduplicated / delta-encoded, bytes received and
 * stored). The body streams from disk (or from the caller's stream) through node:http(s): never a
 * whole-file buffer. Progress is reported as bytes are handed to the socket (`onProgress`, and a
 * `progress` event on the client).
 *
 * Retries: a network error (connection refused or reset, the server hanging up mid-upload) or a 5xx
 * reply is retried with jittered exponential backoff, up to `retries` times. Every attempt of one
 * `ingest` call carries the same idempotency key (`idempotency-key` header), so an upload the server
 * committed but whose reply was lost is answered with that commit (`duplicate: true`) instead of being
 * committed twice. A file path or bytes can be sent again; a Readable only once, unless given as a
 * function that opens it afresh. Errors come back typed: the server's `{error: {code, message}}` body
 * becomes the matching CoralError (lib/server/http-errors.ts `errorFromBody`).
 *
 * @example
 * const client = new CoralClient({ url: 'http://models:8080', token: process.env.CORAL_TOKEN });
 * const r = await client.ingest('llama', 'ckpt/model.safetensors', {
 *   branch: 'run-7', step: 1000, metrics: { loss: 1.92 },
 *   onProgress: (p) => console.log(p.sent, p.total),
 * });
 * console.log(r.commit, r.objects.delta);
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoralError, InvalidArgumentError, RemoteUnavailableError, invalidParameter } from '../errors';
import { errorFromBody } from '../server/http-errors';
import type { IngestReply } from '../server/ingest/ingest';

export type { IngestReply } from '../server/ingest/ingest';

export interface CoralClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  url: string;
  /** Bearer token (default: the CORAL_TOKEN environment variable; none when unset). */
  token?: string | null;
  /** Retries after a network error or a 5xx reply (default 5). */
  retries?: number;
  /** First backoff delay in milliseconds (default 250; doubles per retry, with jitter, at most 10 s). */
  retryDelayMs?: number;
}

/** Upload progress: bytes handed to the socket in this attempt, of `total` (null when unknown). */
export interface IngestProgress {
  sent: number;
  total: number | null;
  /** 1 for the first attempt, 2 for the first retry, … */
  attempt: number;
}

/** What an upload is read from: a file path, bytes, a stream (sent once), or a function opening a stream. */
export type IngestSource = string | Uint8Array | Readable | (() => Readable | Promise<Readable>);

export interface ClientIngestOptions {
  /** The file's path in the tree (default: the file name of a path source; required otherwise). */
  path?: string;
  /** Branch (default: the repository's HEAD branch). */
  branch?: string;
  /** Commit message (default: the server's "ingest <path>"). */
  message?: string;
  /** Training step, stored as `metadata.step`. */
  step?: number;
  /** Metrics, stored as `metadata.metrics` (read by `coral log --metric`). */
  metrics?: Record<string, number | string | boolean>;
  /** More commit metadata (JSON), sent in the `x-coral-metadata` header. */
  metadata?: Record<string, unknown>;
  /** The upload's idempotency key (default: a fresh random one per `ingest` call). */
  idempotencyKey?: string;
  onProgress?: (p: IngestProgress) => void;
  /** Aborts the upload (no further retries). */
  signal?: AbortSignal;
}

class RetryableError extends Error {
  constructor(
    readonly original: unknown,
    readonly typed: CoralError,
  ) {
    super(typed.message);
  }
}

export class CoralClient extends EventEmitter {
  readonly url: URL;
  private readonly token: string | null;
  private readonly retries: number;
  private readonly retryDelayMs: number;

  constructor(opts: CoralClientOptions) {
    super();
    if (!opts || typeof opts.url !== 'string') throw invalidParameter('url', 'http(s):// URL', opts?.url);
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw invalidParameter('url', 'http(s):// URL', opts.url);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalidParameter('url', 'http(s):// URL', opts.url);
    if (!u.pathname.endsWith('/')) u.pathname += '/';
    this.url = u;
    this.token = opts.token === undefined ? (process.env.CORAL_TOKEN ?? null) : opts.token;
    const retries = opts.retries ?? 5;
    if (!Number.isInteger(retries) || retries < 0) throw invalidParameter('retries', 'integer >= 0', opts.retries);
    this.retries = retries;
    this.retryDelayMs = opts.retryDelayMs ?? 250;
  }

  /** Uploads one checkpoint and commits it (see the module comment). */
  async ingest(name: string, source: IngestSource, opts: ClientIngestOptions = {}): Promise<IngestReply> {
    if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
      throw invalidParameter('name', 'repository name', name);
    const treePath = opts.path ?? (typeof source === 'string' ? path.basename(source) : undefined);
    if (!treePath) throw new InvalidArgumentError('ingest: opts.path is required when the source is not a file path');
    const q = new URLSearchParams({ path: treePath });
    if (opts.branch !== undefined) q.set('branch', opts.branch);
    if (opts.message !== undefined) q.set('message', opts.message);
    if (opts.step !== undefined) q.set('step', String(opts.step));
    for (const [k, v] of Object.entries(opts.metrics ?? {})) q.set(`metric.${k}`, String(v));
    const target = new URL(`${encodeURIComponent(name)}/ingest?${q.toString()}`, this.url);
    const key = opts.idempotencyKey ?? randomUUID();
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'idempotency-key': key };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (opts.metadata !== undefined) headers['x-coral-metadata'] = JSON.stringify(opts.metadata);
    const once = source instanceof Readable;
    for (let attempt = 1; ; attempt++) {
      if (opts.signal?.aborted) throw new RemoteUnavailableError(`ingest ${name}: aborted`);
      try {
        return await this.attempt(target, name, source, headers, attempt, opts);
      } catch (e) {
        if (!(e instanceof RetryableError)) throw e;
        if (once || attempt > this.retries || opts.signal?.aborted) throw e.typed;
        const delay = Math.min(10_000, this.retryDelayMs * 2 ** (attempt - 1));
        await sleep(delay / 2 + Math.random() * (delay / 2));
      }
    }
  }

  private async open(source: IngestSource): Promise<{ body: Readable; total: number | null }> {
    if (typeof source === 'string') {
      const st = await fs.promises.stat(source);
      return { body: fs.createReadStream(source, { highWaterMark: 1 << 20 }), total: st.size };
    }
    if (source instanceof Uint8Array) {
      // Slices, so a large buffer is written with backpressure and counted as it goes.
      const slices = function* () {
        for (let o = 0; o < source.byteLength; o += 1 << 20) yield source.subarray(o, o + (1 << 20));
      };
      return { body: Readable.from(slices(), { objectMode: false }), total: source.byteLength };
    }
    if (source instanceof Readable) return { body: source, total: null };
    if (typeof source === 'function') return { body: await source(), total: null };
    throw invalidParameter('source', 'file path, Uint8Array, Readable or function returning a Readable', source);
  }

  private async attempt(
    target: URL,
    name: string,
    source: IngestSource,
    headers: Record<string, string>,
    attempt: number,
    opts: ClientIngestOptions,
  ): Promise<IngestReply> {
    const { body, total } = await this.open(source);
    const where = `ingest ${name}`;
    const h = {
      ...headers,
      ...(total !== null ? { 'content-length': String(total) } : { 'transfer-encoding': 'chunked' }),
    };
    const lib = target.protocol === 'https:' ? https : http;
    let sent = 0;
    const progress = (p: IngestProgress) => {
      opts.onProgress?.(p);
      this.emit('progress', p);
    };
    return new Promise<IngestReply>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        body.destroy();
        req.destroy();
        const code = (e as NodeJS.ErrnoException)?.code;
        if (e instanceof CoralError) return reject(e);
        const typed = new RemoteUnavailableError(`${where}: ${(e as Error)?.message ?? String(e)}`, {
          ...(code ? { errno: code } : {}),
        });
        // Every connection-level failure (refused, reset, hung up mid-upload) is worth a retry: the
        // idempotency key keeps a retry from committing twice.
        reject(new RetryableError(e, typed));
      };
      const req = lib.request(target, { method: 'POST', headers: h, signal: opts.signal }, (res) => {
        // The reply may come before the whole body went out (413, 401): stop sending.
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('error', fail);
        res.on('end', () => {
          if (settled) return;
          settled = true;
          body.destroy();
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(parts).toString('utf8');
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            /* a proxy's HTML error page: typed from the status alone */
          }
          if (status >= 200 && status < 300 && json && typeof json === 'object') return resolve(json as IngestReply);
          const err = errorFromBody(status, json, where);
          // 5xx (the server or a proxy in front of it failing) is retried, except "not implemented".
          if (status >= 500 && status !== 501) return reject(new RetryableError(null, err));
          reject(err);
        });
      });
      req.on('error', fail);
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          sent += chunk.byteLength;
          progress({ sent, total, attempt });
          cb(null, chunk);
        },
      });
      progress({ sent: 0, total, attempt });
      pipeline(body, counter, req).catch((e: unknown) => {
        // A server that answered early closes its side: the reply decides, not the write error.
        setTimeout(() => fail(e), 50);
      });
    });
  }
}
