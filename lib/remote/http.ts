/**
 * The http(s):// transport: a RemoteRepo served by `coral serve` (lib/server). The wire format is in
 * http-wire.ts. The server does every check that matters for its repositories (refs by compare-and-swap
 * on its own RemoteRepo, every incoming object verified before its pack is published); this client adds
 * what makes the round trips few and the data trustworthy on arrival:
 * - `has`/`stat` of many ids coalesce into batched requests (calls made while one is in flight wait for
 *   the next batch); known objects are cached (objects are immutable), unknown ones until `refresh()`;
 * - `get` verifies the XXH3-128 checksum of the bytes it receives against the attributes sent with them;
 *   meta objects are verified against their sha256;
 * - a transaction streams one pack to the server as it is written (no whole-pack buffer on either side).
 *
 * Maintenance is the server's business: `repack()` and `verify()` on a served store are refused with
 * UnsupportedError (run `coral gc` / `coral fsck` where the repository lives).
 *
 * Authentication: a bearer token (`opts.token`, else CORAL_TOKEN), sent with every request.
 *
 * @example
 * const remote = await openHttpRemote('http://127.0.0.1:8470/llama', { token: process.env.CORAL_TOKEN });
 * const refs = await remote.listRefs();
 * await remote.close();
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { once } from 'node:events';
import {
  ChecksumMismatchError,
  CorruptObjectError,
  InvalidArgumentError,
  ObjectNotFoundError,
  RemoteNotFoundError,
  RemoteUnavailableError,
  UnsupportedError,
  invalidParameter,
  CoralError,
} from '../errors';
import { xxh3 } from '../hash';
import { isSha256Hex, sha256Hex } from '../models/canonical';
import { metaFromDisk, metaToDisk } from '../odb/meta-store';
import { allocLarge } from '../native';
import { errorFromBody } from '../server/http-errors';
import {
  checkId,
  normalizeAttrs,
  type ObjectAttrs,
  type ObjectStore,
  type PackInfo,
  type PackTransaction,
  type RepackResult,
  type StoredAttrs,
  type StoredObject,
  type StoreProblem,
} from '../store/object-store';
import {
  ATTRS_HEADER,
  MAX_BATCH,
  META_CONTENT_TYPE,
  PACK_CONTENT_TYPE,
  decodeAttrsHeader,
  frameHeader,
} from './http-wire';
import type { OpenRemoteOptions, RemoteMeta, RemoteRefValue, RemoteRepo } from './transport';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Objects larger than this are not read ahead (memory bound). */
const READ_AHEAD_MAX = 64 << 20;
/** Stat calls recorded for the read-ahead guess. */
const MAX_STAT_ORDER = 1 << 18;

const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
]);

/** The HTTP plumbing of one remote: base URL, token, a keep-alive agent, errors mapped to CoralErrors. */
class HttpClient {
  private readonly agent: http.Agent;
  private readonly mod: typeof http | typeof https;
  constructor(
    readonly base: URL,
    private readonly token: string | undefined,
  ) {
    this.mod = base.protocol === 'https:' ? https : http;
    this.agent = new this.mod.Agent({ keepAlive: true, maxSockets: 8 });
  }

  get display(): string {
    return this.base.href.replace(/\/$/, '');
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  /** A request whose body the caller writes (streaming); the response arrives through `response`. */
  open(method: string, sub: string, headers: Record<string, string>): http.ClientRequest {
    const u = new URL(this.base.pathname.replace(/\/$/, '') + sub, this.base);
    return this.mod.request(u, { method, agent: this.agent, headers: this.headers(headers) });
  }

  netError(e: unknown, op: string): Error {
    if (e instanceof CoralError) return e;
    const code = (e as NodeJS.ErrnoException).code;
    return new RemoteUnavailableError(
      `${this.display}: ${op} failed: ${(e as Error).message}${code && !NET_CODES.has(code) ? ` (${code})` : ''}`,
      { url: this.display, cause: code },
    );
  }

  /** One request with an optional buffered body; resolves the whole (small) reply. */
  async call(
    method: string,
    sub: string,
    body?: { json?: unknown; bytes?: Uint8Array; type?: string },
  ): Promise<Reply> {
    const payload =
      body?.json !== undefined ? Buffer.from(JSON.stringify(body.json)) : body?.bytes ? Buffer.from(body.bytes) : null;
    const type = body?.json !== undefined ? 'application/json' : (body?.type ?? 'application/octet-stream');
    const req = this.open(
      method,
      sub,
      payload ? { 'content-type': type, 'content-length': String(payload.length) } : {},
    );
    try {
      const resP = once(req, 'response') as Promise<[http.IncomingMessage]>;
      req.end(payload ?? undefined);
      const [res] = await resP;
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
    } catch (e) {
      req.destroy();
      throw this.netError(e, `${method} ${sub}`);
    }
  }

  /** The typed error for a failed reply. */
  fail(r: Pick<Reply, 'status' | 'body'>, op: string): CoralError {
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.body.toString('utf8'));
    } catch {
      parsed = null;
    }
    return errorFromBody(r.status, parsed, `${this.display}: ${op}`);
  }

  async json<T>(method: string, sub: string, json?: unknown): Promise<T> {
    const r = await this.call(method, sub, json === undefined ? undefined : { json });
    if (r.status < 200 || r.status >= 300) throw this.fail(r, `${method} ${sub}`);
    return JSON.parse(r.body.toString('utf8')) as T;
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Coalesces lookups of single ids into batched requests: ids asked for while a batch is being sent go in
 * the next one (at most MAX_BATCH ids each, two requests at once).
 */
class Batcher<T> {
  private queue = new Map<string, Array<{ resolve: (v: T) => void; reject: (e: unknown) => void }>>();
  private running = 0;
  private scheduled = false;
  constructor(private readonly fetch: (ids: string[]) => Promise<T[]>) {}

  get(id: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiting = this.queue.get(id);
      if (waiting) waiting.push({ resolve, reject });
      else this.queue.set(id, [{ resolve, reject }]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running >= 2 || this.queue.size === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.running >= 2 || this.queue.size === 0) return;
    const batch = [...this.queue.entries()].slice(0, MAX_BATCH);
    for (const [id] of batch) this.queue.delete(id);
    this.running++;
    try {
      const got = await this.fetch(batch.map(([id]) => id));
      batch.forEach(([, ws], i) => ws.forEach((w) => w.resolve(got[i])));
    } catch (e) {
      for (const [, ws] of batch) for (const w of ws) w.reject(e);
    } finally {
      this.running--;
      this.schedule();
    }
  }
}

function checkAttrs(v: unknown, id: string, where: string): StoredAttrs {
  const a = v as StoredAttrs | null;
  if (
    !a ||
    typeof a !== 'object' ||
    a.id !== id ||
    typeof a.checksum !== 'string' ||
    !Number.isSafeInteger(a.storedSize) ||
    !Array.isArray(a.shape)
  )
    throw new CorruptObjectError(`${where}: the server sent malformed attributes for object ${id}`, { id });
  return { ...a, base: a.base ?? '', extra: a.extra ?? {} };
}

/** The ObjectStore of a served repository. */
class HttpObjectStore implements ObjectStore {
  readonly kind = 'http';
  private known = new Map<string, StoredAttrs>();
  private absent = new Set<string>();
  private readonly stats: Batcher<StoredAttrs | null>;
  /** Ids in the order `stat` was first asked for them (bounded), and the read order predicted from it. */
  private statOrder: string[] = [];
  private statSeen = new Set<string>();
  private predicted: Map<string, string> | null = null;
  private predictedLen = 0;
  private ahead: { id: string; bytes: Promise<StoredObject>; misses: number } | null = null;
  closed = false;

  constructor(private readonly c: HttpClient) {
    this.stats = new Batcher(async (ids) => {
      const r = await this.c.json<{ attrs: unknown[] }>('POST', '/objects/stat', { ids });
      if (!Array.isArray(r.attrs) || r.attrs.length !== ids.length)
        throw new CorruptObjectError(`${this.c.display}: malformed reply to an object lookup`);
      return r.attrs.map((a, i) => (a === null ? null : checkAttrs(a, ids[i], this.c.display)));
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new InvalidArgumentError(`object store of ${this.c.display} is closed`);
  }

  private async lookup(id: string, fromStat = false): Promise<StoredAttrs | null> {
    this.checkOpen();
    checkId(id);
    if (fromStat && this.statOrder.length < MAX_STAT_ORDER && !this.statSeen.has(id)) {
      this.statSeen.add(id);
      this.statOrder.push(id);
    }
    const k = this.known.get(id);
    if (k) return k;
    if (this.absent.has(id)) return null;
    const a = await this.stats.get(id);
    if (a) this.known.set(id, a);
    else this.absent.add(id);
    return a;
  }

  /** Records objects this client just published. */
  learn(attrs: StoredAttrs[]): void {
    for (const a of attrs) {
      this.absent.delete(a.id);
      this.known.set(a.id, a);
    }
  }

  async has(id: string): Promise<boolean> {
    return (await this.lookup(id)) !== null;
  }

  async stat(id: string): Promise<StoredAttrs> {
    const a = await this.lookup(id, true);
    if (!a) throw new ObjectNotFoundError(`object ${id} is not at ${this.c.display}`, { id });
    return a;
  }

  /**
   * Reads one object, and starts reading the one a transfer will most likely ask for next (read-ahead of
   * one object of at most READ_AHEAD_MAX bytes), so the server's read and the network overlap with the
   * caller's work on this one. The guess: negotiation stats the objects it needs depth-first along each
   * delta chain (an object, then its base, …) and then reads every chain base first; `stat` records that
   * sequence. A wrong guess costs one unused read, dropped after two further reads.
   */
  async get(id: string): Promise<StoredObject> {
    this.checkOpen();
    checkId(id);
    let pending: Promise<StoredObject> | undefined;
    if (this.ahead?.id === id) pending = this.ahead.bytes;
    if (this.ahead && (this.ahead.id === id || ++this.ahead.misses > 2)) this.ahead = null;
    this.readAhead(id);
    if (pending) {
      try {
        return await pending;
      } catch {
        /* read it again below: a failed read-ahead is not the caller's error */
      }
    }
    return this.fetchOne(id);
  }

  private readAhead(id: string): void {
    if (this.ahead) return;
    const next = this.predictNext(id);
    if (!next) return;
    const a = this.known.get(next);
    if (!a || a.storedSize > READ_AHEAD_MAX) return;
    const bytes = this.fetchOne(next);
    bytes.catch(() => undefined);
    this.ahead = { id: next, bytes, misses: 0 };
  }

  /** The object after `id` in the read order predicted from the stat sequence (see get). */
  private predictNext(id: string): string | null {
    // Recomputed when the sequence grew by a quarter (amortised linear when stats and reads interleave).
    if (this.predicted === null || this.statOrder.length > this.predictedLen * 1.25 + 16) {
      // Split the stat sequence into chains (each next id is the previous one's base), reverse each.
      const order: string[] = [];
      let chain: string[] = [];
      for (const x of this.statOrder) {
        const prev = chain[chain.length - 1];
        if (prev !== undefined && this.known.get(prev)?.base !== x) {
          order.push(...chain.reverse());
          chain = [];
        }
        chain.push(x);
      }
      order.push(...chain.reverse());
      this.predicted = new Map(order.map((x, i) => [x, order[i + 1] ?? '']));
      this.predictedLen = this.statOrder.length;
    }
    return this.predicted.get(id) || null;
  }

  private async fetchOne(id: string): Promise<StoredObject> {
    const op = `read of object ${id}`;
    const req = this.c.open('GET', `/objects/${id}`, {});
    let res: http.IncomingMessage;
    try {
      const resP = once(req, 'response') as Promise<[http.IncomingMessage]>;
      req.end();
      [res] = await resP;
    } catch (e) {
      req.destroy();
      throw this.c.netError(e, op);
    }
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      for await (const ch of res) chunks.push(ch as Buffer);
      throw this.c.fail({ status, body: Buffer.concat(chunks) }, op);
    }
    const rawAttrs = res.headers[ATTRS_HEADER];
    let attrs: StoredAttrs;
    try {
      attrs = checkAttrs(decodeAttrsHeader(String(rawAttrs ?? '')), id, this.c.display);
    } catch (e) {
      res.destroy();
      if (e instanceof CoralError) throw e;
      throw new CorruptObjectError(`${this.c.display}: object ${id} arrived without readable attributes`, { id });
    }
    // Into one buffer of the announced size: never more than the object itself in memory.
    const bytes = allocLarge(attrs.storedSize);
    let at = 0;
    try {
      for await (const ch of res) {
        const b = ch as Buffer;
        if (at + b.length > bytes.length)
          throw new CorruptObjectError(`${this.c.display}: object ${id} is longer than its attributes say`, { id });
        b.copy(bytes, at);
        at += b.length;
      }
    } catch (e) {
      res.destroy();
      throw e instanceof CoralError ? e : this.c.netError(e, op);
    }
    if (at !== bytes.length)
      throw new RemoteUnavailableError(
        `${this.c.display}: object ${id} arrived truncated (${at} of ${bytes.length} bytes)`,
        {
          id,
        },
      );
    const sum = await xxh3(bytes);
    if (sum !== attrs.checksum)
      throw new ChecksumMismatchError(
        `object ${id} from ${this.c.display} is corrupted: its bytes hash to ${sum} but the checksum is ${attrs.checksum}`,
        { id, url: this.c.display },
      );
    this.known.set(id, attrs);
    return { bytes, attrs };
  }

  beginWrite(): PackTransaction {
    this.checkOpen();
    return new HttpTransaction(this.c, this);
  }

  async *list(): AsyncIterableIterator<StoredAttrs> {
    this.checkOpen();
    const req = this.c.open('GET', '/objects', {});
    let res: http.IncomingMessage;
    try {
      const resP = once(req, 'response') as Promise<[http.IncomingMessage]>;
      req.end();
      [res] = await resP;
    } catch (e) {
      req.destroy();
      throw this.c.netError(e, 'listing objects');
    }
    if (res.statusCode !== 200) {
      const chunks: Buffer[] = [];
      for await (const ch of res) chunks.push(ch as Buffer);
      throw this.c.fail({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }, 'listing objects');
    }
    let rest = '';
    for await (const ch of res) {
      rest += (ch as Buffer).toString('utf8');
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (!line) continue;
        const raw = JSON.parse(line) as { id?: string };
        yield checkAttrs(raw, String(raw.id), this.c.display);
      }
    }
  }

  async refresh(): Promise<void> {
    this.checkOpen();
    this.absent.clear();
  }

  /** Forgets the recorded stat sequence (a new transfer starts). */
  private resetOrder(): void {
    this.statOrder = [];
    this.statSeen.clear();
    this.predicted = null;
  }

  repack(): Promise<RepackResult> {
    return Promise.reject(
      new UnsupportedError(
        `${this.c.display} is served by coral serve: repack and gc run on the server, not through the HTTP remote`,
        { url: this.c.display },
      ),
    );
  }

  verify(): Promise<StoreProblem[]> {
    return Promise.reject(
      new UnsupportedError(
        `${this.c.display} is served by coral serve: verify its store where it lives (\`coral fsck\` on the server)`,
        { url: this.c.display },
      ),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.ahead = null;
    this.resetOrder();
  }
}

/**
 * One pack streamed to the server. The request starts with the first object; every put waits until its
 * bytes are handed to the socket (so the caller may reuse them), and the server's reply (an early one is
 * an error) settles commit.
 */
class HttpTransaction implements PackTransaction {
  private req: http.ClientRequest | null = null;
  private reply: Promise<Reply> | null = null;
  private failure: Error | null = null;
  private staged = new Map<string, StoredAttrs>();
  private state: 'open' | 'done' = 'open';
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly c: HttpClient,
    private readonly store: HttpObjectStore,
  ) {}

  get count(): number {
    return this.staged.size;
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new InvalidArgumentError('pack transaction is already finished');
    if (this.failure) throw this.failure;
  }

  private start(): http.ClientRequest {
    if (this.req) return this.req;
    const req = this.c.open('POST', '/packs', { 'content-type': PACK_CONTENT_TYPE });
    this.reply = new Promise<Reply>((resolve, reject) => {
      req.on('response', (res: http.IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (ch: Buffer) => chunks.push(ch));
        res.on('end', () => {
          const r = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
          // A reply before the commit frame is always a refusal: stop writing.
          if (r.status !== 200) {
            this.failure ??= this.c.fail(r, 'pack upload');
            req.destroy(); // stop sending what the server no longer reads
          }
          resolve(r);
        });
        res.on('error', reject);
      });
      req.on('error', (e) => {
        this.failure ??= this.c.netError(e, 'pack upload');
        reject(this.failure);
      });
    });
    this.reply.catch(() => undefined);
    this.req = req;
    return req;
  }

  private async write(chunk: Uint8Array): Promise<void> {
    const req = this.start();
    if (this.failure) throw this.failure;
    await new Promise<void>((resolve, reject) => {
      req.write(chunk, (err) => (err ? reject(this.failure ?? this.c.netError(err, 'pack upload')) : resolve()));
    });
    // The reply may have arrived while the bytes were being written (a refusal).
    const failed = this.failure as Error | null;
    if (failed) throw failed;
  }

  /** Writes run one after another, in call order. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async put(id: string, bytes: Uint8Array, attrs: ObjectAttrs): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    const a = normalizeAttrs(id, attrs);
    if (!(bytes instanceof Uint8Array)) throw invalidParameter('bytes', 'Uint8Array', bytes);
    if (this.staged.has(id) || (await this.store.has(id))) return false;
    const checksum = await xxh3(bytes);
    return this.serial(async () => {
      this.checkOpen();
      if (this.staged.has(id)) return false;
      this.staged.set(id, { id, ...a, storedSize: bytes.byteLength, checksum });
      await this.write(frameHeader({ op: 'put', id, attrs: a, size: bytes.byteLength, checksum }));
      if (bytes.byteLength) await this.write(bytes);
      return true;
    });
  }

  async reuse(id: string): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    if (this.staged.has(id)) return true;
    if (!(await this.store.has(id))) return false;
    // The server checks it again at commit (it may have been removed meanwhile).
    await this.serial(() => this.write(frameHeader({ op: 'reuse', id })));
    return true;
  }

  async commit(): Promise<PackInfo | null> {
    this.checkOpen();
    await this.chain;
    this.state = 'done';
    if (!this.req) return null;
    if (this.failure) throw this.failure;
    await this.write(frameHeader({ op: 'commit' }));
    this.req.end();
    let r: Reply;
    try {
      r = await this.reply!;
    } catch (e) {
      throw this.failure ?? this.c.netError(e, 'pack upload');
    }
    if (r.status !== 200) throw this.failure ?? this.c.fail(r, 'pack upload');
    const out = JSON.parse(r.body.toString('utf8')) as { pack: PackInfo | null };
    this.store.learn([...this.staged.values()]);
    return out.pack;
  }

  async abort(): Promise<void> {
    if (this.state === 'done' && !this.req) return;
    this.state = 'done';
    this.req?.destroy();
    this.req = null;
  }
}

class HttpRemote implements RemoteRepo {
  readonly transport = 'http';
  readonly meta: RemoteMeta;
  readonly objects: HttpObjectStore;
  private readonly metaHas: Batcher<boolean>;
  private known = new Set<string>();

  constructor(
    readonly url: string,
    private readonly c: HttpClient,
  ) {
    this.objects = new HttpObjectStore(c);
    this.metaHas = new Batcher(async (ids) => {
      const r = await this.c.json<{ have: boolean[] }>('POST', '/meta/has', { ids });
      if (!Array.isArray(r.have) || r.have.length !== ids.length)
        throw new CorruptObjectError(`${this.c.display}: malformed reply to a meta lookup`);
      return r.have.map((x) => x === true);
    });
    this.meta = {
      has: async (id) => {
        this.checkMetaId(id);
        if (this.known.has(id)) return true;
        const h = await this.metaHas.get(id);
        if (h) this.known.add(id);
        return h;
      },
      get: (id) => this.metaGet(id),
      put: (bytes) => this.metaPut(bytes),
    };
  }

  private checkMetaId(id: string): void {
    if (!isSha256Hex(id)) throw invalidParameter('id', '64-hex object id', id);
  }

  private async metaGet(id: string): Promise<Uint8Array> {
    this.checkMetaId(id);
    const r = await this.c.call('GET', `/meta/${id}`);
    if (r.status !== 200) throw this.c.fail(r, `read of meta object ${id}`);
    const raw = metaFromDisk(r.body);
    if (!raw) throw new CorruptObjectError(`meta object ${id} from ${this.url} does not decode`, { id, url: this.url });
    const actual = sha256Hex(raw);
    if (actual !== id)
      throw new CorruptObjectError(`meta object ${id} from ${this.url} is corrupt: its content hashes to ${actual}`, {
        id,
        actual,
        url: this.url,
      });
    this.known.add(id);
    return raw;
  }

  private async metaPut(bytes: Uint8Array): Promise<string> {
    if (!(bytes instanceof Uint8Array)) throw invalidParameter('bytes', 'Uint8Array', bytes);
    const r = await this.c.call('PUT', '/meta', { bytes: metaToDisk(bytes), type: META_CONTENT_TYPE });
    if (r.status !== 200) throw this.c.fail(r, 'write of a meta object');
    const { id } = JSON.parse(r.body.toString('utf8')) as { id: string };
    if (id !== sha256Hex(bytes))
      throw new CorruptObjectError(`${this.url} stored a meta object under the wrong id ${id}`, { id });
    this.known.add(id);
    return id;
  }

  async listRefs(): Promise<Map<string, RemoteRefValue>> {
    const r = await this.c.json<{ refs: Array<{ name: string; id: string; token: string }> }>('GET', '/refs');
    return new Map(r.refs.map((x) => [x.name, { id: x.id, token: x.token }]));
  }

  async headBranch(): Promise<string | null> {
    const r = await this.c.json<{ head: string | null }>('GET', '/refs');
    return r.head;
  }

  async updateRef(name: string, expected: string | null, next: string | null): Promise<void> {
    if (typeof name !== 'string' || !name.startsWith('refs/'))
      throw invalidParameter('ref', 'full ref name (refs/...)', name);
    await this.c.json('POST', '/refs', { name, expected, next });
  }

  async close(): Promise<void> {
    await this.objects.close();
    this.c.close();
  }
}

/** The normalised URL of an http(s) remote (no trailing slash, no query or fragment). */
export function parseHttpUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidParameter('url', 'http(s)://host[:port]/<name>', url);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.search || u.hash || u.username || u.password)
    throw invalidParameter('url', 'http(s)://host[:port]/<name> (no query, fragment or credentials)', url);
  const p = u.pathname.replace(/\/+$/, '');
  if (!p || p === '/')
    throw new InvalidArgumentError(`${url} names no repository: use http(s)://host[:port]/<name>`, { url });
  u.pathname = p + '/';
  return u;
}

/**
 * Opens the repository served at `url`. RemoteNotFoundError when the server has none of that name
 * (unless `opts.create`: then an empty one is made, which needs a write token); RemoteAuthError (401,
 * and 403 as PermissionDeniedError); RemoteUnavailableError when the server cannot be reached.
 */
export async function openHttpRemote(url: string, opts: OpenRemoteOptions = {}): Promise<RemoteRepo> {
  const base = parseHttpUrl(url);
  const token = opts.token || process.env.CORAL_TOKEN || undefined;
  if (token !== undefined && (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)))
    throw invalidParameter('token', 'printable ASCII without spaces', '<redacted>');
  const c = new HttpClient(base, token || undefined);
  const remote = new HttpRemote(c.display, c);
  try {
    try {
      await remote.listRefs();
    } catch (e) {
      if (!(e instanceof RemoteNotFoundError) || !opts.create) throw e;
      await c.json('POST', '/init', {});
    }
    return remote;
  } catch (e) {
    c.close();
    throw e;
  }
}
