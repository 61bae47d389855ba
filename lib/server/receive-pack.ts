/**
 * The receiving end of a pushed pack (`POST /<name>/packs`, wire format in lib/remote/http-wire.ts):
 * every object is verified before the pack that holds it is published, whoever sent it.
 *
 * - the XXH3-128 checksum the client sent must match the bytes that arrived;
 * - an object under a content id (32 hex: every object coral writes) must be a coral encoded object whose
 *   header names that id, the base and the dtype/shape/size the attributes claim, and it must decode,
 *   against its base, to a tensor with that content id (the codec checks it end to end). The base is an
 *   object of this pack that arrived earlier or one the repository holds; anything else is refused.
 *   Objects under other ids (possible through the ObjectStore API, never written by coral) are checked
 *   against their checksum only: no tree can name them as content.
 *
 * Memory: at most three objects (one being read, two being verified and stored behind it, in order) plus
 * a bounded LRU of decoded tensors (the next delta's base is usually the previous object). The stored bytes of the pack's objects are also appended to a spool file in the
 * server's temp directory, so a base that fell out of the cache is read back from disk, never kept in
 * memory. The objects go into one transaction of the repository's store; its commit publishes the pack
 * atomically (local: rename; S3: index last); on any failure, or a client that goes away, it is aborted
 * and nothing is published. The spool is removed either way.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { decode, inspectObject } from '../codec';
import {
  ChecksumMismatchError,
  CoralError,
  CorruptObjectError,
  FormatError,
  InvalidArgumentError,
  LimitExceededError,
  ObjectNotFoundError,
  RemoteUnavailableError,
  UnsupportedError,
} from '../errors';
import { xxh3 } from '../hash';
import { allocLarge, recycleLarge } from '../native';
import { DEFAULT_BASE_CACHE_BYTES, ObjectReader } from '../odb/objects';
import { MAX_FRAME_HEADER, type PackFrame } from '../remote/http-wire';
import {
  checkId,
  normalizeAttrs,
  type ObjectStore,
  type PackInfo,
  type PackTransaction,
  type RepackResult,
  type StoredAttrs,
  type StoredObject,
  type StoreProblem,
} from '../store/object-store';
import { randomHex } from '../store/fs';
import { crashPoint } from '../util/crash';

const CONTENT_ID_RE = /^[0-9a-f]{32}$/;
/** Objects read but not yet verified and stored (the one being read comes on top). */
const WINDOW = 2;

/** Pulls exact byte counts out of a stream, with a running total checked against a limit. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer>;
  total = 0;
  constructor(
    stream: Readable,
    private readonly limit: number,
  ) {
    this.it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      this.total += b.length;
      if (this.total > this.limit)
        throw new LimitExceededError(
          `the pack is larger than this server accepts (serve.maxUploadBytes = ${this.limit})`,
          {
            limit: this.limit,
          },
        );
      this.chunks.push(b);
      this.buffered += b.length;
    }
    if (this.buffered < n)
      throw new FormatError('the pack stream ended in the middle of a frame (the upload was cut)', {
        expected: n,
        got: this.buffered,
      });
  }

  /** Exactly `n` bytes into `dst` (default: a new buffer). */
  async read(n: number, dst?: Buffer): Promise<Buffer> {
    await this.fill(n);
    const out = dst ?? (n >= 1 << 20 ? allocLarge(n) : Buffer.allocUnsafe(n));
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const take = Math.min(c.length, n - at);
      c.copy(out, at, 0, take);
      at += take;
      if (take === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    this.buffered -= n;
    return out;
  }

  /** True when the stream ended exactly here. */
  async atEnd(): Promise<boolean> {
    if (this.buffered > 0) return false;
    try {
      await this.fill(1);
      return false;
    } catch (e) {
      if (e instanceof FormatError) return true;
      throw e;
    }
  }
}

/** A read-only ObjectStore over the pack being received and the repository's store (for base lookups). */
class IncomingView implements ObjectStore {
  readonly kind = 'incoming';
  readonly spooled = new Map<string, { offset: number; attrs: StoredAttrs }>();
  constructor(
    private readonly store: ObjectStore,
    private readonly spool: fsp.FileHandle,
  ) {}
  async has(id: string): Promise<boolean> {
    return this.spooled.has(id) || this.store.has(id);
  }
  async stat(id: string): Promise<StoredAttrs> {
    return this.spooled.get(id)?.attrs ?? this.store.stat(id);
  }
  async get(id: string): Promise<StoredObject> {
    const s = this.spooled.get(id);
    if (!s) return this.store.get(id);
    const bytes = allocLarge(s.attrs.storedSize);
    const { bytesRead } = await this.spool.read(bytes, 0, bytes.length, s.offset);
    if (bytesRead !== bytes.length) throw new RemoteUnavailableError(`spooled object ${id} could not be read back`);
    return { bytes, attrs: s.attrs };
  }
  beginWrite(): PackTransaction {
    throw new UnsupportedError('read-only view');
  }
  // eslint-disable-next-line require-yield
  async *list(): AsyncIterableIterator<StoredAttrs> {
    throw new UnsupportedError('read-only view');
  }
  async refresh(): Promise<void> {}
  repack(): Promise<RepackResult> {
    return Promise.reject(new UnsupportedError('read-only view'));
  }
  verify(): Promise<StoreProblem[]> {
    return Promise.reject(new UnsupportedError('read-only view'));
  }
  async close(): Promise<void> {}
}

export interface ReceiveOptions {
  /** Largest stream, bytes (413 beyond). */
  maxBytes: number;
  /** Largest single object, bytes. */
  maxObjectBytes: number;
  /** Decoded tensors kept for the next deltas, bytes (default 64 MiB, as `core.baseCacheBytes`). */
  cacheBytes?: number;
  /** Where the spool file goes. */
  tmpDir: string;
  /** Aborts the receive (graceful shutdown). */
  signal?: AbortSignal;
}

export interface ReceiveReport {
  pack: PackInfo | null;
  /** Objects written into the pack. */
  objects: number;
  /** Bytes of the stream. */
  bytes: number;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Receives one pack stream into `store`; see the module comment. */
export async function receivePack(stream: Readable, store: ObjectStore, opts: ReceiveOptions): Promise<ReceiveReport> {
  const input = new ByteReader(stream, opts.maxBytes);
  await fsp.mkdir(opts.tmpDir, { recursive: true });
  const spoolPath = path.join(opts.tmpDir, `pack-in-${randomHex(8)}.spool`);
  const spool = await fsp.open(spoolPath, 'w+');
  const view = new IncomingView(store, spool);
  const reader = new ObjectReader(view, opts.cacheBytes ?? DEFAULT_BASE_CACHE_BYTES);
  let spoolEnd = 0;
  let tx: PackTransaction | null = null;
  /** Ids of this pack (queued or stored). */
  const seen = new Set<string>();
  /** Verification and storage of the objects read so far, one after another. */
  let chain: Promise<void> = Promise.resolve();
  const window: Array<Promise<void>> = [];
  let objects = 0;
  const checkAbort = () => {
    if (opts.signal?.aborted)
      throw new RemoteUnavailableError('the server is shutting down; the pack was not stored (push again)');
  };
  // Graceful shutdown: a receive waiting on a slow client stops at once instead of at its next frame.
  const onAbort = () =>
    stream.destroy(new RemoteUnavailableError('the server is shutting down; the pack was not stored (push again)'));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    tx = store.beginWrite();
    for (;;) {
      checkAbort();
      if (await input.atEnd())
        throw new FormatError(
          'the pack stream ended without its commit frame (the upload was cut); nothing was stored',
        );
      const len = (await input.read(4)).readUInt32BE(0);
      if (len === 0 || len > MAX_FRAME_HEADER)
        throw new FormatError(`a pack frame header of ${len} bytes is not valid`, { length: len });
      let frame: PackFrame;
      try {
        frame = JSON.parse((await input.read(len)).toString('utf8')) as PackFrame;
      } catch {
        throw new FormatError('a pack frame header is not JSON');
      }
      if (frame?.op === 'commit') {
        if (!(await input.atEnd())) throw new FormatError('bytes follow the commit frame of a pack stream');
        await chain;
        checkAbort();
        crashPoint('serve:before-publish');
        const pack = await tx.commit();
        crashPoint('serve:after-publish');
        return { pack, objects, bytes: input.total };
      }
      if (frame?.op === 'reuse') {
        checkId(frame.id);
        if (!seen.has(frame.id) && !(await tx.reuse(frame.id))) {
          await store.refresh();
          if (!(await tx.reuse(frame.id)))
            throw new ObjectNotFoundError(`object ${frame.id} the pack relies on is not on the server`, {
              id: frame.id,
            });
        }
        continue;
      }
      if (frame?.op !== 'put') throw new FormatError('unknown pack frame');
      checkId(frame.id);
      const id = frame.id;
      const attrs = normalizeAttrs(id, frame.attrs);
      const size = frame.size;
      if (!Number.isSafeInteger(size) || size < 0) throw new FormatError(`object ${id}: bad size`, { id });
      if (size > opts.maxObjectBytes)
        throw new LimitExceededError(
          `object ${id} of ${size} bytes exceeds this server's limit of ${opts.maxObjectBytes}`,
          {
            id,
            limit: opts.maxObjectBytes,
          },
        );
      if (typeof frame.checksum !== 'string') throw new FormatError(`object ${id}: no checksum`, { id });
      const bytes = await input.read(size);
      let queued = false;
      try {
        const sum = await xxh3(bytes);
        if (sum !== frame.checksum)
          throw new ChecksumMismatchError(
            `object ${id} arrived damaged: its bytes hash to ${sum}, the sender said ${frame.checksum}`,
            { id },
          );
        if (seen.has(id) || (await store.has(id))) continue; // a duplicate: nothing to write
        seen.add(id);
        // Verified and stored behind the reading of the next objects, in arrival order (a delta's base is
        // always spooled before it is needed); at most WINDOW objects wait, so memory stays bounded.
        const tx1 = tx;
        const job = chain.then(async () => {
          try {
            if (CONTENT_ID_RE.test(id)) await verifyContent(id, bytes, attrs, reader);
            const at = spoolEnd;
            spoolEnd += size;
            const stored: StoredAttrs = { id, ...attrs, storedSize: size, checksum: sum };
            const [, put] = await Promise.all([spool.write(bytes, 0, size, at), tx1.put(id, bytes, attrs)]);
            view.spooled.set(id, { offset: at, attrs: stored });
            if (put) objects++;
          } finally {
            recycleLarge(bytes);
          }
        });
        queued = true;
        job.catch(() => undefined); // surfaced through the window or the chain
        chain = job;
        window.push(job);
        if (window.length >= WINDOW) await window.shift();
      } finally {
        if (!queued) recycleLarge(bytes);
      }
    }
  } catch (e) {
    await chain.catch(() => undefined); // no write may still run when the transaction is dropped
    await tx?.abort().catch(() => undefined);
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await spool.close().catch(() => undefined);
    await fsp.rm(spoolPath, { force: true });
  }
}

/** The header matches the attributes and the bytes decode to the content id they are stored under. */
async function verifyContent(
  id: string,
  bytes: Uint8Array,
  attrs: ReturnType<typeof normalizeAttrs>,
  reader: ObjectReader,
): Promise<void> {
  const bad = (why: string) => new CorruptObjectError(`object ${id} is refused: ${why}`, { id });
  let h: ReturnType<typeof inspectObject>;
  try {
    h = inspectObject(bytes);
  } catch (e) {
    throw bad(`it is not a coral encoded object (${(e as Error).message})`);
  }
  if (h.id !== id) throw bad(`its header names content id ${h.id}`);
  if ((h.baseId ?? '') !== attrs.base)
    throw bad(`its header names base ${h.baseId ?? '(none)'}, not ${attrs.base || '(none)'}`);
  if (h.dtype !== attrs.dtype || !sameShape(h.shape, attrs.shape) || h.nbytes !== attrs.rawSize)
    throw bad('its header does not match the dtype, shape or size sent with it');
  let base = null;
  if (attrs.base) {
    try {
      base = { tensor: await reader.tensor(attrs.base), id: attrs.base };
    } catch (e) {
      if (e instanceof CoralError && e.code === ObjectNotFoundError.code)
        throw bad(`its delta base ${attrs.base} is neither on the server nor earlier in the pack`);
      throw e;
    }
  }
  let t;
  try {
    t = await decode(bytes, base);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    throw bad((e as Error).message);
  }
  // The next object is often a delta against this one: keep it if the cache takes it.
  reader.remember(id, t);
  reader.release(t);
  if (base) reader.release(base.tensor);
}
