/**
 * Ranged GETs whose body lands straight in the caller's buffer.
 *
 * Why: through the SDK's HTTP handler every body chunk of a response arrives in a new buffer (about
 * 64 KiB each, freed young). A clone reads hundreds of MiB that way, and those buffers drive V8 into
 * full garbage collections: 8 MiB ranges of a 512 MiB object, 8 at a time, ran 26 to 31 of them through
 * the SDK and none here (bench/s3-ranged.ts, docs/remotes.md "Response bodies without buffers"). The socket
 * reads into the destination itself (`net.Socket`'s `onread` with a buffer function): the response head
 * goes into a small buffer owned by the connection, the body into `dst` at its offset, with no buffer
 * made per chunk and no copy.
 *
 * Only the transport is replaced. The request is still the SDK's `GetObjectCommand`: its middleware
 * resolves the endpoint, takes credentials from the standard chain, signs (SigV4) and retries; a
 * middleware placed right inside the deserializer sends the signed request on a connection of this
 * module and hands the SDK a response (with an empty body on success), so an error status still becomes
 * the SDK's typed error (NoSuchKey, AccessDenied, ...) exactly as before. A retry asks only for the
 * bytes that have not arrived (the Range header is set again before each signing).
 *
 * Connections are HTTP/1.1 keep-alive, one request at a time, kept per endpoint while idle (unref'd, so
 * they never hold the process open, and closed after IDLE_MS). A connection that fails before any byte
 * of the response arrived after being reused (the server closed it meanwhile) is replaced once.
 */
import * as net from 'node:net';
import { Readable } from 'node:stream';
import * as tls from 'node:tls';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** The parts of the SDK's signed HttpRequest this module uses. */
interface SignedRequest {
  protocol: string;
  hostname: string;
  port?: number;
  method: string;
  path: string;
  query?: Record<string, string | string[] | null | undefined>;
  headers: Record<string, string>;
}

/** What the SDK's deserializer reads (an HttpResponse's shape). */
interface RawResponse {
  statusCode: number;
  reason: string;
  headers: Record<string, string>;
  body: Readable;
}

export interface RangeIntoOptions {
  bucket: string;
  key: string;
  /** First byte of the object to read. */
  offset: number;
  /** Filled from its start with the bytes at `offset`. */
  dst: Buffer;
  /** Called with the number of bytes of `dst` filled so far, after each read from the socket. */
  progress?: (filled: number) => void;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

/** Buffer of each connection for the response head (and error bodies, which are small). */
const HEAD_BYTES = 32 << 10;
/** Idle connections are closed after this long. */
const IDLE_MS = 4000;
/** Idle connections kept per endpoint. */
const IDLE_MAX = 32;

function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function queryString(q: SignedRequest['query']): string {
  const parts: string[] = [];
  for (const k of Object.keys(q ?? {}).sort()) {
    const v = q![k];
    if (v === null || v === undefined) parts.push(escapeUri(k));
    else for (const x of Array.isArray(v) ? v : [v]) parts.push(`${escapeUri(k)}=${escapeUri(x)}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

function netError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * A response this module does not read (no Content-Length on a success, a malformed or oversized head):
 * the caller reads the range through the SDK's own handler instead (`isUnsupportedResponse`).
 */
function unsupported(message: string): Error {
  return Object.assign(new Error(message), { name: 'UnsupportedResponse' });
}

/** True for a response range-into cannot read; the SDK's handler can (lib/store/s3/store.ts falls back). */
export function isUnsupportedResponse(e: unknown): boolean {
  return (e as { name?: unknown } | null)?.name === 'UnsupportedResponse';
}

function timeoutError(message: string): Error {
  const e = new Error(message);
  e.name = 'TimeoutError';
  return e;
}

/** One request on a connection: where its body goes and how it ends. */
interface Job {
  dst: Buffer;
  /** Bytes of `dst` filled (the body goes to dst[at, end)). */
  at: number;
  end: number;
  progress?: (filled: number) => void;
  resolve: (r: RawResponse | null) => void;
  reject: (e: Error) => void;
  /** Any byte of the response arrived. */
  started: boolean;
}

const EMPTY = Buffer.alloc(0);

class Conn {
  readonly socket: net.Socket;
  /** The response head (and a small error body) accumulates here. */
  private readonly head = Buffer.allocUnsafe(HEAD_BYTES);
  private headLen = 0;
  private phase: 'idle' | 'head' | 'body' | 'error-body' = 'idle';
  private job: Job | null = null;
  /** The head of the response being read (once parsed). */
  private res: { statusCode: number; reason: string; headers: Record<string, string> } | null = null;
  /** Error body: its bytes, and how it ends. */
  private errBody: Buffer[] = [];
  private errLeft = -1;
  private errChunked = false;
  private errToClose = false;
  dead = false;
  used = false;
  private connected: Promise<void>;

  constructor(
    readonly endpoint: string,
    req: SignedRequest,
    private readonly timeouts: { connectMs: number; requestMs: number },
    private readonly onIdle: (c: Conn) => void,
  ) {
    const onread = { buffer: () => this.nextBuffer(), callback: (n: number) => this.onData(n) };
    const port = req.port ?? (req.protocol === 'https:' ? 443 : 80);
    this.socket =
      req.protocol === 'https:'
        ? // tls.connect takes `onread` too (Node >= 14); @types/node does not list it.
          tls.connect({
            host: req.hostname,
            port,
            // SNI names a host, never an address (Node warns about an IP there).
            servername: net.isIP(req.hostname) ? undefined : req.hostname,
            onread,
          } as tls.ConnectionOptions)
        : net.connect({ host: req.hostname, port, onread });
    this.socket.setNoDelay(true);
    this.connected = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(timeoutError(`connect to ${endpoint} timed out after ${timeouts.connectMs} ms`));
        this.socket.destroy();
      }, timeouts.connectMs);
      this.socket.once(req.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.once('close', () => {
        clearTimeout(timer);
        reject(netError(`connection to ${endpoint} closed`, 'ECONNRESET'));
      });
    });
    this.connected.catch(() => undefined);
    this.socket.on('error', (e) => this.fail(e));
    this.socket.on('close', () => this.closed());
    this.socket.on('timeout', () => {
      if (this.job) this.fail(timeoutError(`no data from ${endpoint} for ${this.timeouts.requestMs} ms`));
      else this.socket.destroy();
    });
  }

  /** Sends one GET and reads its response; the body goes to job.dst from job.at. */
  async run(req: SignedRequest, job: Job): Promise<void> {
    let text = `${req.method} ${req.path}${queryString(req.query)} HTTP/1.1\r\n`;
    let host = false;
    for (const [k, v] of Object.entries(req.headers)) {
      if (/[\r\n]/.test(k) || /[\r\n]/.test(String(v))) throw new Error(`invalid header ${k}`);
      if (k.toLowerCase() === 'host') host = true;
      text += `${k}: ${v}\r\n`;
    }
    if (!host) text += `host: ${req.hostname}${req.port ? `:${req.port}` : ''}\r\n`;
    await this.connected;
    if (this.dead) throw netError(`connection to ${this.endpoint} closed`, 'ECONNRESET');
    this.job = job;
    this.phase = 'head';
    this.headLen = 0;
    this.res = null;
    this.socket.ref();
    this.socket.setTimeout(this.timeouts.requestMs);
    this.socket.write(text + '\r\n');
  }

  /** Where the socket's next read goes. */
  private nextBuffer(): Buffer {
    const j = this.job;
    if (this.phase === 'body' && j && j.at < j.end) return j.dst.subarray(j.at, j.end);
    if (this.phase === 'head') return this.head.subarray(this.headLen);
    return this.head;
  }

  private onData(n: number): boolean {
    const j = this.job;
    if (!j) {
      // Bytes nobody asked for: the connection is out of step with its responses.
      this.socket.destroy();
      return false;
    }
    j.started = true;
    try {
      if (this.phase === 'body') {
        j.at += n;
        j.progress?.(j.at);
        if (j.at === j.end) this.finish(null);
      } else if (this.phase === 'head') {
        const from = Math.max(0, this.headLen - 3);
        this.headLen += n;
        const i = this.head.subarray(0, this.headLen).indexOf('\r\n\r\n', from);
        if (i >= 0) this.parseHead(i);
        else if (this.headLen === HEAD_BYTES) throw unsupported(`response head from ${this.endpoint} is too large`);
      } else if (this.phase === 'error-body') {
        this.addErrBody(Buffer.from(this.head.subarray(0, n)));
      }
    } catch (e) {
      this.fail(e as Error);
      return false;
    }
    return true;
  }

  private parseHead(end: number): void {
    const j = this.job!;
    const lines = this.head.toString('latin1', 0, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]);
    if (!m) throw unsupported(`malformed response from ${this.endpoint}: ${JSON.stringify(lines[0].slice(0, 80))}`);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      if (c <= 0) continue;
      const k = line.slice(0, c).trim().toLowerCase();
      const v = line.slice(c + 1).trim();
      headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    const statusCode = Number(m[1]);
    this.res = { statusCode, reason: m[2], headers };
    const rest = this.head.subarray(end + 4, this.headLen);
    const length = headers['content-length'] === undefined ? -1 : Number(headers['content-length']);
    if (statusCode >= 200 && statusCode < 300) {
      if (!Number.isSafeInteger(length) || length < 0)
        throw unsupported(`response from ${this.endpoint} has no usable content-length`);
      // Fewer bytes than asked (the object is shorter): they are read, and the caller sees the shortfall.
      if (length > j.end - j.at)
        throw new Error(`${this.endpoint} sent ${length} bytes for a range of ${j.end - j.at}`);
      j.end = j.at + length;
      if (rest.length > length) throw new Error(`${this.endpoint} sent more bytes than its content-length`);
      rest.copy(j.dst, j.at);
      j.at += rest.length;
      this.phase = 'body';
      if (rest.length) j.progress?.(j.at);
      if (j.at === j.end) this.finish(null);
      return;
    }
    this.phase = 'error-body';
    this.errBody = [];
    this.errChunked = /\bchunked\b/i.test(headers['transfer-encoding'] ?? '');
    this.errLeft = this.errChunked ? -1 : length;
    this.errToClose = !this.errChunked && length < 0;
    this.addErrBody(Buffer.from(rest));
  }

  private addErrBody(b: Buffer): void {
    if (b.length) this.errBody.push(b);
    const all = Buffer.concat(this.errBody);
    if (all.length > 1 << 20) throw new Error(`error response from ${this.endpoint} is too large`);
    let body: Buffer | null = null;
    if (this.errChunked) body = dechunk(all);
    else if (!this.errToClose && all.length >= this.errLeft) body = all.subarray(0, this.errLeft);
    if (body) this.finish(body);
  }

  /** The response is complete: the body went to dst (`errBody` null) or is an error body. */
  private finish(errBody: Buffer | null): void {
    const j = this.job!;
    const res = this.res!;
    this.job = null;
    this.phase = 'idle';
    this.headLen = 0;
    this.errBody = [];
    const close = /\bclose\b/i.test(res.headers.connection ?? '') || errBody !== null;
    j.resolve({ ...res, body: Readable.from(errBody ? [errBody] : [EMPTY]) });
    if (close) {
      this.dead = true;
      this.socket.destroy();
    } else {
      this.socket.setTimeout(IDLE_MS);
      this.socket.unref();
      this.used = true;
      this.onIdle(this);
    }
  }

  private fail(e: Error): void {
    this.dead = true;
    const j = this.job;
    this.job = null;
    this.phase = 'idle';
    this.socket.destroy();
    j?.reject(e);
  }

  private closed(): void {
    this.dead = true;
    if (this.phase === 'error-body' && this.errToClose) return this.finish(Buffer.concat(this.errBody));
    if (this.job) this.fail(netError(`connection to ${this.endpoint} closed before the response ended`, 'ECONNRESET'));
  }
}

/** The body of a chunked message once it is complete, else null. */
function dechunk(b: Buffer): Buffer | null {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', at);
    if (eol < 0) return null;
    const size = parseInt(b.toString('latin1', at, eol).split(';')[0], 16);
    if (!Number.isFinite(size) || size < 0) throw new Error('malformed chunked body');
    if (size === 0) return Buffer.concat(out);
    if (b.length < eol + 2 + size + 2) return null;
    out.push(b.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** Idle connections of one client, per endpoint. */
class ConnPool {
  private readonly idle = new Map<string, Conn[]>();

  constructor(private readonly timeouts: { connectMs: number; requestMs: number }) {}

  private take(endpoint: string): Conn | null {
    const list = this.idle.get(endpoint);
    while (list?.length) {
      const c = list.pop()!;
      if (!c.dead) return c;
    }
    return null;
  }

  private put(c: Conn): void {
    let list = this.idle.get(c.endpoint);
    if (!list) this.idle.set(c.endpoint, (list = []));
    for (let i = list.length - 1; i >= 0; i--) if (list[i].dead) list.splice(i, 1);
    if (list.length >= IDLE_MAX) c.socket.destroy();
    else list.push(c);
  }

  /** Sends `req`, the body into job.dst; resolves the response head (with an empty body on success). */
  async send(req: SignedRequest, dst: Buffer, at: number, progress?: (filled: number) => void): Promise<RawResponse> {
    const endpoint = `${req.protocol}//${req.hostname}:${req.port ?? ''}`;
    for (let attempt = 0; ; attempt++) {
      const reused = this.take(endpoint);
      const conn = reused ?? new Conn(endpoint, req, this.timeouts, (c) => this.put(c));
      const job: Job = {
        dst,
        at,
        end: dst.length,
        progress,
        started: false,
        resolve: () => undefined,
        reject: () => undefined,
      };
      const done = new Promise<RawResponse | null>((resolve, reject) => {
        job.resolve = resolve;
        job.reject = reject;
      });
      try {
        await conn.run(req, job);
        return (await done)!;
      } catch (e) {
        // A kept-alive connection the server closed meanwhile: once more on a new one.
        if (reused && !job.started && attempt === 0) continue;
        throw e;
      }
    }
  }
}

const pools = new WeakMap<S3Client, ConnPool>();

/**
 * Reads `dst.length` bytes of `key` from `offset` into `dst` with one ranged GET (see the file header).
 * Resolves once `dst` is full; a response shorter than the range rejects with a `ShortRead` error
 * (check with `isShortRead`); any other failure is the SDK's error, as `client.send` would throw it.
 */
export async function getRangeInto(client: S3Client, opts: RangeIntoOptions): Promise<void> {
  let pool = pools.get(client);
  if (!pool)
    pools.set(client, (pool = new ConnPool({ connectMs: opts.connectTimeoutMs, requestMs: opts.requestTimeoutMs })));
  const { dst, offset } = opts;
  const last = offset + dst.length - 1;
  let filled = 0;
  let short = false;
  const cmd = new GetObjectCommand({ Bucket: opts.bucket, Key: opts.key, Range: `bytes=${offset}-${last}` });
  type Middleware = Parameters<typeof cmd.middlewareStack.addRelativeTo>[0];
  cmd.middlewareStack.addRelativeTo(
    ((next: (a: unknown) => Promise<unknown>) => async (args: { request: SignedRequest }) => {
      // A retry asks for what has not arrived yet.
      const h = args.request.headers;
      for (const k of Object.keys(h)) if (k.toLowerCase() === 'range') delete h[k];
      h.range = `bytes=${offset + filled}-${last}`;
      return next(args);
    }) as unknown as Middleware,
    { relation: 'before', toMiddleware: 'httpSigningMiddleware', name: 'coralRangeResume', override: true },
  );
  const p = pool;
  cmd.middlewareStack.addRelativeTo(
    (() => async (args: { request: SignedRequest }) => {
      const response = await p.send(args.request, dst, filled, (n) => {
        filled = n;
        opts.progress?.(n);
      });
      if (response.statusCode >= 200 && response.statusCode < 300 && filled < dst.length) short = true;
      return { response, output: {} };
    }) as unknown as Middleware,
    { relation: 'after', toMiddleware: 'deserializerMiddleware', name: 'coralRangeInto', override: true },
  );
  await client.send(cmd);
  if (short || filled !== dst.length)
    throw Object.assign(new Error(`${opts.key}: ${filled} of ${dst.length} bytes`), { name: 'ShortRead' });
}

/** True for getRangeInto's error for a response shorter than the range. */
export function isShortRead(e: unknown): boolean {
  return (e as { name?: unknown } | null)?.name === 'ShortRead';
}
