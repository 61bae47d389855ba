/**
 * S3ObjectStore: the ObjectStore contract over an S3 bucket prefix laid out like `.coral/objects/packs/`
 * (lib/remote/transport.ts has the whole bare-repository layout):
 *
 *   <prefix>objects/packs/pack-<32 hex>.h5    immutable HDF5 packs, byte-identical to local ones
 *   <prefix>objects/packs/pack-<32 hex>.idx   their indexes (lib/store/pack-index.ts)
 *
 * Writing: a transaction is the local one (local-transaction.ts): the native pack writer builds the
 * pack in a local temp directory. On commit the pack is uploaded streamed from that file (multipart,
 * parallel parts of `partSize`, at most `queueSize` parts in memory: never the whole pack), then its
 * index with `If-None-Match: *`. The index goes up last, so an index names only a pack that is whole;
 * a crash or a killed process before that leaves an invisible pack that repack() removes later.
 *
 * Reading: refresh() lists `objects/packs/*.idx` and loads the new indexes; get() reads one object
 * with ranged GETs at the offset and size its index gives (large objects in parallel ranges) and
 * verifies its XXH3-128 checksum, so a clone or a lazy fetch reads only the bytes it needs.
 *
 * Concurrency: writers only create uniquely named keys. repack() deletes packs, so it must not run
 * while another process writes to the same prefix and reuses objects of those packs (S3 has no
 * mtime a writer could freshen; `graceMs` protects packs uploaded within the grace period).
 *
 * @example
 * const store = await S3ObjectStore.open({ bucket: 'models', prefix: 'llama/', endpoint: 'http://127.0.0.1:7480' });
 * const tx = store.beginWrite();
 * await tx.put(id, bytes, { codec: 'zstd', dtype: 'F32', shape: [1024], rawSize: 4096 });
 * await tx.commit();
 * const { bytes: back } = await store.get(id);
 * await store.close();
 */
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { PackEntry } from '../../../binding';
import {
  ChecksumMismatchError,
  CoralError,
  CorruptObjectError,
  InvalidArgumentError,
  ObjectNotFoundError,
  invalidParameter,
} from '../../errors';
import { ASYNC_THRESHOLD_BYTES, allocLarge, callAsync, callSync, native } from '../../native';
import { randomHex } from '../fs';
import { LocalTransaction, type TransactionStore } from '../local-transaction';
import { DEFAULT_SMALL_OBJECT_MAX } from '../local';
import {
  checkId,
  type ObjectStore,
  type PackTransaction,
  type RepackOptions,
  type RepackResult,
  type StoredAttrs,
  type StoredObject,
  type StoreProblem,
} from '../object-store';
import { encodeIndex, indexNameFor, isSmallDataset, parseIndex, sameEntries } from '../pack-index';
import type { PackBytes, PackImport, PackListing, PackSink, PackSource } from '../pack-stream';
import {
  isNoSuchKey,
  isPreconditionFailed,
  openS3Client,
  s3Error,
  type S3ClientOptions,
  type S3Handle,
} from './client';
import { getRangeInto, isShortRead, isUnsupportedResponse } from './range-into';

const PACK_KEY_RE = /^pack-[0-9a-f]{32}\.h5$/;
const INDEX_KEY_RE = /^pack-[0-9a-f]{32}\.idx$/;

export interface S3ObjectStoreOptions extends S3ClientOptions {
  bucket: string;
  /** Key prefix of the repository: "" or a path ending in "/" (e.g. "models/llama/"). */
  prefix?: string;
  /** A client to share (the remote passes its own); otherwise the store opens and closes one. */
  s3?: S3Handle;
  /** Directory for packs being built; default a fresh directory under the OS temp dir. */
  tmpDir?: string;
  /** Multipart part size in bytes (>= 5 MiB). Default 16 MiB. */
  partSize?: number;
  /** Parts uploaded at once. Default 4. */
  queueSize?: number;
  /** Byte range fetched per request when reading large objects. Default 8 MiB. */
  rangeSize?: number;
  /** Ranges fetched at once for one large object. Default 8. */
  rangeConcurrency?: number;
  /** Objects below this size share the pack's /small table. Default 16384. */
  smallObjectMax?: number;
  /** Name used in messages; default `s3://<bucket>/<prefix>`. */
  url?: string;
}

interface S3Pack {
  name: string;
  size: number;
  lastModifiedMs: number;
  indexEtag: string;
  entries: PackEntry[];
  /** End of the bytes of each of the pack's small-object datasets: a small read's window stops there. */
  smallEnds: Map<string, number>;
  /** Its large objects by offset (for read-ahead), computed on first use. */
  byOffset?: PackEntry[];
}

/** Objects larger than this are not read ahead (memory bound). */
const READ_AHEAD_MAX = 256 << 20;

/** Bytes of a ranged read gathered before its reader hears of them (PackBytes.read's `landed`). */
const LANDED_PIECE = 512 << 10;

/** Objects in a pack's /small table are adjacent: a read of one fetches up to this many bytes around it. */
const SMALL_WINDOW = 1 << 20;

function smallEnds(entries: readonly PackEntry[]): Map<string, number> {
  const ends = new Map<string, number>();
  for (const e of entries)
    if (isSmallDataset(e.dataset) && e.offset !== null)
      ends.set(e.dataset, Math.max(ends.get(e.dataset) ?? 0, e.offset + e.size));
  return ends;
}

interface Location {
  pack: string;
  entry: PackEntry;
}

/** Transfer counters (for `push --json`, benchmarks). */
export interface S3TransferStats {
  bytesUploaded: number;
  bytesDownloaded: number;
  requests: number;
}

function toAttrs(loc: Location): StoredAttrs {
  const e = loc.entry;
  return {
    id: e.id,
    codec: e.codec,
    dtype: e.dtype,
    shape: e.shape.slice(),
    base: e.base,
    rawSize: e.rawSize,
    storedSize: e.size,
    checksum: e.checksum,
    extra: { ...e.extra },
    location: loc.pack,
  };
}

/** Runs `fn` over `items` with at most `limit` in flight; rejects with the first failure. */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export class S3ObjectStore implements ObjectStore, TransactionStore, PackSource, PackSink {
  readonly kind = 's3';
  readonly bucket: string;
  readonly prefix: string;
  readonly url: string;
  readonly tmpDir: string;
  readonly stats: S3TransferStats = { bytesUploaded: 0, bytesDownloaded: 0, requests: 0 };
  private readonly s3: S3Handle;
  private readonly ownsClient: boolean;
  private readonly ownsTmp: boolean;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly rangeSize: number;
  private readonly rangeConcurrency: number;
  /**
   * Ranged reads land in coral's buffers through range-into.ts. Off with CORAL_S3_DIRECT_READS=0, and
   * for the rest of the store's life once a server answers in a way range-into does not read (the
   * SDK's handler reads that range again).
   */
  private directReads = process.env.CORAL_S3_DIRECT_READS !== '0';
  private readonly smallMax: number;
  private packs = new Map<string, S3Pack>();
  private byId = new Map<string, Location>();
  private txs = new Set<LocalTransaction>();
  private refreshChain: Promise<void> = Promise.resolve();
  /** Recently fetched windows of /small/data, per pack (a few; see SMALL_WINDOW). */
  private windows: Array<{ pack: string; start: number; bytes: Buffer }> = [];
  /** The one object being read ahead (readAhead). */
  private ahead: { pack: string; id: string; bytes: Promise<Buffer> } | null = null;
  private closed = false;

  private constructor(opts: S3ObjectStoreOptions, tmpDir: string, ownsTmp: boolean) {
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ?? '';
    this.url = opts.url ?? `s3://${this.bucket}/${this.prefix}`;
    this.s3 = opts.s3 ?? openS3Client(opts);
    this.ownsClient = !opts.s3;
    this.tmpDir = tmpDir;
    this.ownsTmp = ownsTmp;
    this.partSize = opts.partSize ?? 16 << 20;
    this.queueSize = opts.queueSize ?? 4;
    this.rangeSize = opts.rangeSize ?? 8 << 20;
    this.rangeConcurrency = opts.rangeConcurrency ?? 8;
    this.smallMax = opts.smallObjectMax ?? DEFAULT_SMALL_OBJECT_MAX;
  }

  /**
   * Opens the store and loads the indexes under `<prefix>objects/packs/`. RemoteNotFoundError for a
   * missing bucket, RemoteAuthError for refused credentials, RemoteUnavailableError when the endpoint
   * cannot be reached.
   */
  static async open(opts: S3ObjectStoreOptions): Promise<S3ObjectStore> {
    if (typeof opts !== 'object' || opts === null) throw invalidParameter('options', 'object', opts);
    if (typeof opts.bucket !== 'string' || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(opts.bucket))
      throw invalidParameter('bucket', 'S3 bucket name', opts.bucket);
    const prefix = opts.prefix ?? '';
    if (typeof prefix !== 'string' || (prefix !== '' && (!prefix.endsWith('/') || prefix.startsWith('/'))))
      throw invalidParameter('prefix', '"" or a key prefix ending in "/"', prefix);
    if (opts.partSize !== undefined && (!Number.isSafeInteger(opts.partSize) || opts.partSize < 5 << 20))
      throw invalidParameter('partSize', 'integer >= 5 MiB', opts.partSize);
    for (const k of ['queueSize', 'rangeSize', 'rangeConcurrency'] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw invalidParameter(k, 'positive integer', v);
    }
    let tmpDir = opts.tmpDir;
    const ownsTmp = tmpDir === undefined;
    if (tmpDir === undefined) tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'coral-s3-'));
    else await fsp.mkdir(tmpDir, { recursive: true });
    const s = new S3ObjectStore(opts, tmpDir, ownsTmp);
    try {
      await s.refresh();
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  private key(name: string): string {
    return `${this.prefix}objects/packs/${name}`;
  }

  private checkOpen(): void {
    if (this.closed) throw new InvalidArgumentError(`object store ${this.url} is closed`);
  }

  private err(e: unknown, op: string): Error {
    return s3Error(e, this.url, this.s3.endpoint, op);
  }

  /** Names of the packs currently known, sorted. */
  packNames(): string[] {
    return [...this.packs.keys()].sort();
  }

  // ---- reading ------------------------------------------------------------------------------

  async has(id: string): Promise<boolean> {
    this.checkOpen();
    return this.byId.has(id);
  }

  private async locate(id: string): Promise<Location | undefined> {
    let loc = this.byId.get(id);
    if (!loc) {
      await this.refresh();
      loc = this.byId.get(id);
    }
    return loc;
  }

  async stat(id: string): Promise<StoredAttrs> {
    this.checkOpen();
    checkId(id);
    const loc = await this.locate(id);
    if (!loc) throw this.notFound(id);
    return toAttrs(loc);
  }

  private notFound(id: string): ObjectNotFoundError {
    return new ObjectNotFoundError(`object ${id} is not in the store at ${this.url}`, { id });
  }

  async get(id: string): Promise<StoredObject> {
    this.checkOpen();
    checkId(id);
    for (let attempt = 0; ; attempt++) {
      const loc = await this.locate(id);
      if (!loc) throw this.notFound(id);
      try {
        const ahead = this.takeAhead(loc);
        this.readAhead(loc);
        const bytes = await this.verify1(
          loc,
          ahead ? await ahead.catch(() => this.fetchObject(loc)) : await this.fetchObject(loc),
        );
        return { bytes, attrs: toAttrs(loc) };
      } catch (e) {
        if (isNoSuchKey(e) && attempt === 0) {
          // The pack was removed by a repack elsewhere: reload the indexes and look again.
          await this.refresh();
          continue;
        }
        if (isNoSuchKey(e))
          throw new ObjectNotFoundError(`object ${id} is listed in pack ${loc.pack} but the pack is gone`, {
            id,
            pack: loc.pack,
          });
        throw this.err(e, `read of object ${id}`);
      }
    }
  }

  /** Reads one object's stored bytes with ranged GETs and verifies them against the index's checksum. */
  private async readObject(loc: Location): Promise<Buffer> {
    return this.verify1(loc, await this.fetchObject(loc));
  }

  /** One object's stored bytes (not yet verified). */
  private async fetchObject(loc: Location): Promise<Buffer> {
    const e = loc.entry;
    const buf = allocLarge(e.size);
    if (e.size > 0) {
      if (e.offset === null) throw new CorruptObjectError(`index of pack ${loc.pack} gives no offset for ${e.id}`);
      if (isSmallDataset(e.dataset)) await this.readSmall(loc, e.offset, buf);
      else await this.readRange(this.key(loc.pack), e.offset, buf, () => this.shortRead(loc));
    }
    return buf;
  }

  /** The read-ahead of `loc`'s object, if one is in flight (and forgets it). */
  private takeAhead(loc: Location): Promise<Buffer> | null {
    const a = this.ahead;
    if (!a || a.pack !== loc.pack || a.id !== loc.entry.id) return null;
    this.ahead = null;
    return a.bytes;
  }

  /**
   * Starts fetching the object stored right after `loc`'s in its pack (by offset), when it is a large one:
   * a clone or fetch reads a pack's objects in the order they were written, so the next download overlaps
   * the caller's work on this object (decoding, verifying, writing). One object ahead, bounded in size;
   * the bytes are verified when that object is asked for, like any other read.
   */
  private readAhead(loc: Location): void {
    const st = this.packs.get(loc.pack);
    if (!st || isSmallDataset(loc.entry.dataset) || loc.entry.offset === null) return;
    st.byOffset ??= st.entries
      .filter((e) => !isSmallDataset(e.dataset) && e.offset !== null && e.size > 0)
      .sort((a, b) => a.offset! - b.offset!);
    const list = st.byOffset;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].offset! <= loc.entry.offset) lo = mid + 1;
      else hi = mid;
    }
    const next = list[lo];
    if (!next || next.size > READ_AHEAD_MAX || (this.ahead && this.ahead.id === next.id)) return;
    const bytes = this.fetchObject({ pack: loc.pack, entry: next });
    bytes.catch(() => undefined); // a failed read-ahead is retried by the get that wants it
    this.ahead = { pack: loc.pack, id: next.id, bytes };
  }

  /** Checks fetched bytes against the index's checksum. */
  private async verify1(loc: Location, buf: Buffer): Promise<Buffer> {
    const e = loc.entry;
    const sum =
      e.size >= ASYNC_THRESHOLD_BYTES ? await callAsync(() => native.xxh3_128Async(buf)) : native.xxh3_128(buf);
    if (sum !== e.checksum)
      throw new ChecksumMismatchError(
        `object ${e.id} in pack ${loc.pack} at ${this.url} is corrupted: its stored bytes hash to ${sum} but the ` +
          `recorded checksum is ${e.checksum}`,
        { id: e.id, pack: loc.pack },
      );
    return buf;
  }

  /**
   * A small object: served from a cached window of the pack's small-object data when one covers it, else a
   * window from its offset (up to SMALL_WINDOW, never past the end of its part) is fetched and kept, so
   * reading the many small objects of one pack in order costs a few requests, not one each.
   */
  private async readSmall(loc: Location, offset: number, dst: Buffer): Promise<void> {
    const end = offset + dst.length;
    let w = this.windows.find((x) => x.pack === loc.pack && x.start <= offset && x.start + x.bytes.length >= end);
    if (!w) {
      const packEnd = this.packs.get(loc.pack)?.smallEnds.get(loc.entry.dataset) ?? end;
      const bytes = Buffer.allocUnsafe(Math.max(dst.length, Math.min(SMALL_WINDOW, packEnd - offset)));
      await this.readRange(this.key(loc.pack), offset, bytes, () => this.shortRead(loc));
      w = { pack: loc.pack, start: offset, bytes };
      this.windows.push(w);
      if (this.windows.length > 4) this.windows.shift();
    }
    w.bytes.copy(dst, 0, offset - w.start, end - w.start);
  }

  /**
   * Fills `dst` with the bytes of `key` from `offset`, in parallel ranges for large reads; `landed` hears
   * of each piece of at least LANDED_PIECE bytes (or a range's end) as soon as it is in `dst`.
   */
  private async readRange(
    key: string,
    offset: number,
    dst: Buffer,
    short: () => Error,
    landed?: (from: number, to: number) => void,
  ): Promise<void> {
    const chunks: Array<[number, number]> = [];
    for (let at = 0; at < dst.length; at += this.rangeSize)
      chunks.push([at, Math.min(dst.length, at + this.rangeSize)]);
    const t = this.s3.timeouts ?? { connectMs: 3000, requestMs: 120_000 };
    await forEachLimit(chunks, this.rangeConcurrency, async ([from, to]) => {
      this.stats.requests++;
      let told = from;
      const tell = (at: number) => {
        if (landed && at - told >= LANDED_PIECE) {
          landed(told, at);
          told = at;
        }
      };
      let read = false;
      if (this.directReads) {
        try {
          // The body lands in dst itself (range-into.ts: no buffer per chunk, no copy).
          await getRangeInto(this.s3.client, {
            bucket: this.bucket,
            key,
            offset: offset + from,
            dst: dst.subarray(from, to),
            connectTimeoutMs: t.connectMs,
            requestTimeoutMs: t.requestMs,
            progress: landed ? (n) => tell(from + n) : undefined,
          });
          this.stats.bytesDownloaded += to - from;
          read = true;
        } catch (e) {
          if (isShortRead(e)) throw short();
          if (!isUnsupportedResponse(e)) throw e;
          // A server whose responses range-into does not read: the SDK's handler from now on.
          this.directReads = false;
        }
      }
      if (!read) await this.sdkRange(key, offset, dst, from, to, short, tell);
      if (landed && told < to) landed(told, to);
    });
  }

  /** One range through the SDK's own HTTP handler (a chunk buffer per read, copied into dst). */
  private async sdkRange(
    key: string,
    offset: number,
    dst: Buffer,
    from: number,
    to: number,
    short: () => Error,
    tell: (at: number) => void,
  ): Promise<void> {
    const out = await this.s3.client.send(
      new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=${offset + from}-${offset + to - 1}` }),
    );
    let at = from;
    for await (const c of out.Body as Readable) {
      const chunk = c as Buffer;
      if (at + chunk.length > to) throw short();
      chunk.copy(dst, at);
      at += chunk.length;
      tell(at);
    }
    this.stats.bytesDownloaded += at - from;
    if (at !== to) throw short();
  }

  private shortRead(loc: Location): CorruptObjectError {
    return new CorruptObjectError(
      `object ${loc.entry.id}: pack ${loc.pack} at ${this.url} is shorter than its index says (truncated pack)`,
      { id: loc.entry.id, pack: loc.pack },
    );
  }

  async *list(): AsyncIterableIterator<StoredAttrs> {
    this.checkOpen();
    await this.refresh();
    for (const loc of [...this.byId.values()]) yield toAttrs(loc);
  }

  /** Lists every key under `<prefix>objects/packs/`: name → size and mtime (and ETag). */
  private async listPackKeys(): Promise<Map<string, { size: number; lastModifiedMs: number; etag: string }>> {
    const out = new Map<string, { size: number; lastModifiedMs: number; etag: string }>();
    const base = this.key('');
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        this.stats.requests++;
        page = await this.s3.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: base, ContinuationToken: token }),
        );
      } catch (e) {
        throw this.err(e, 'listing packs');
      }
      for (const o of page.Contents ?? []) {
        if (!o.Key) continue;
        out.set(o.Key.slice(base.length), {
          size: o.Size ?? 0,
          lastModifiedMs: o.LastModified?.getTime() ?? 0,
          etag: (o.ETag ?? '').replace(/"/g, ''),
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /** Picks up packs published (or removed) by other writers since the last listing. */
  refresh(): Promise<void> {
    const run = this.refreshChain.then(() => this.doRefresh());
    this.refreshChain = run.catch(() => undefined);
    return run;
  }

  private async doRefresh(): Promise<void> {
    if (this.closed) return;
    const keys = await this.listPackKeys();
    const next = new Map<string, S3Pack>();
    const load: Array<{ name: string; size: number; lastModifiedMs: number; etag: string }> = [];
    for (const [k, idx] of keys) {
      if (!INDEX_KEY_RE.test(k)) continue;
      const name = k.replace(/\.idx$/, '.h5');
      const pack = keys.get(name);
      if (!pack) continue; // an index whose pack is gone (repack elsewhere)
      const cur = this.packs.get(name);
      if (cur && cur.indexEtag === idx.etag && cur.size === pack.size) next.set(name, cur);
      else load.push({ name, size: pack.size, lastModifiedMs: pack.lastModifiedMs, etag: idx.etag });
    }
    await forEachLimit(load, 8, async (p) => {
      let data: Uint8Array;
      try {
        data = await this.getSmall(this.key(indexNameFor(p.name)));
      } catch (e) {
        if (isNoSuchKey(e)) return; // removed meanwhile
        throw this.err(e, `reading the index of ${p.name}`);
      }
      const entries = parseIndex(data, p.name, p.size);
      // An unusable index hides its pack from readers; verify() reports it.
      if (entries)
        next.set(p.name, {
          name: p.name,
          size: p.size,
          lastModifiedMs: p.lastModifiedMs,
          indexEtag: p.etag,
          entries,
          smallEnds: smallEnds(entries),
        });
    });
    this.packs = next;
    this.windows = this.windows.filter((w) => next.has(w.pack));
    if (this.ahead && !next.has(this.ahead.pack)) this.ahead = null;
    const byId = new Map<string, Location>();
    for (const name of [...next.keys()].sort())
      for (const entry of next.get(name)!.entries) if (!byId.has(entry.id)) byId.set(entry.id, { pack: name, entry });
    this.byId = byId;
  }

  /** A whole small object (index, meta), as one buffer. */
  private async getSmall(key: string): Promise<Buffer> {
    this.stats.requests++;
    const out = await this.s3.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    const b = Buffer.from(await out.Body!.transformToByteArray());
    this.stats.bytesDownloaded += b.length;
    return b;
  }

  // ---- writing ------------------------------------------------------------------------------

  beginWrite(): PackTransaction {
    this.checkOpen();
    const tx = new LocalTransaction(this, false);
    this.txs.add(tx);
    return tx;
  }

  /** @internal the small-object bound given to pack writers. */
  get _smallMax(): number {
    return this.smallMax;
  }

  /** @internal location of an id (no I/O). */
  _locate(id: string): { readonly pack: string } | undefined {
    return this.byId.get(id);
  }

  /** @internal S3 objects have no mtime to touch: a reused object is safe while its pack is listed. */
  async _freshen(pack: string): Promise<boolean> {
    return this.packs.has(pack);
  }

  /** @internal bookkeeping for transactions. */
  _txDone(tx: LocalTransaction): void {
    this.txs.delete(tx);
  }

  /**
   * @internal uploads a finished pack (streamed, multipart) and then its index; removes the local
   * file. The index is written with `If-None-Match: *`: pack names are random, so a clash means a bug.
   */
  async _publish(tmpPath: string, name: string, size: number, entries: readonly PackEntry[]): Promise<void> {
    try {
      await this.uploadFile(tmpPath, this.key(name), size);
    } catch (e) {
      throw this.err(e, `upload of pack ${name}`);
    }
    await this.publishIndex(name, size, entries);
    await fsp.unlink(tmpPath).catch(() => undefined);
  }

  /**
   * Writes the index of an uploaded pack (`If-None-Match: *`: pack names are random, so a clash means a
   * bug), which makes the pack visible to readers, and adds it to this instance's view.
   */
  private async publishIndex(name: string, size: number, entries: readonly PackEntry[]): Promise<void> {
    let indexEtag: string;
    try {
      const idx = await encodeIndex(name, size, entries);
      this.stats.requests++;
      const put = await this.s3.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key(indexNameFor(name)),
          Body: idx,
          IfNoneMatch: '*',
        }),
      );
      this.stats.bytesUploaded += idx.length;
      indexEtag = (put.ETag ?? '').replace(/"/g, '');
    } catch (e) {
      if (isPreconditionFailed(e))
        throw new CorruptObjectError(`pack index ${indexNameFor(name)} already exists at ${this.url}`);
      throw this.err(e, `upload of the index of pack ${name}`);
    }
    if (!this.packs.has(name)) {
      const list = entries.slice();
      const st: S3Pack = {
        name,
        size,
        lastModifiedMs: Date.now(),
        indexEtag,
        entries: list,
        smallEnds: smallEnds(list),
      };
      this.packs.set(name, st);
      for (const entry of list) if (!this.byId.has(entry.id)) this.byId.set(entry.id, { pack: name, entry });
    }
  }

  // ---- whole packs (lib/store/pack-stream.ts) -------------------------------------------------

  /** The packs this instance has listed, with their entries (no I/O). */
  packListing(): PackListing[] {
    this.checkOpen();
    return this.packNames().map((name) => {
      const st = this.packs.get(name)!;
      return { name, size: st.size, entries: st.entries };
    });
  }

  /** Reads byte ranges of a pack with ranged GETs (`rangeSize` each, `rangeConcurrency` at once). */
  async openPack(name: string): Promise<PackBytes> {
    this.checkOpen();
    if (!this.packs.has(name)) throw new ObjectNotFoundError(`pack ${name} is not at ${this.url}`, { pack: name });
    const short = () =>
      new CorruptObjectError(`pack ${name} at ${this.url} is shorter than its index says (truncated pack)`, {
        pack: name,
      });
    return {
      read: async (offset: number, dst: Buffer, landed?: (from: number, to: number) => void) => {
        try {
          await this.readRange(this.key(name), offset, dst, short, landed);
        } catch (e) {
          if (isNoSuchKey(e))
            throw new ObjectNotFoundError(`pack ${name} is gone from ${this.url} (removed by a repack?)`, {
              pack: name,
            });
          throw this.err(e, `read of pack ${name}`);
        }
      },
      close: async () => undefined,
    };
  }

  /**
   * Imports a whole pack: its bytes go straight into a multipart upload under a fresh name, each chunk
   * of 5 MiB or more as parts of its own (views of it, about `partSize` each: no copy), smaller ones
   * gathered into parts of about `partSize`;
   * at most `queueSize` parts in flight, so never the whole pack in memory. commit() completes the upload
   * and then writes the index, which is what makes the pack visible; abort() aborts the multipart upload,
   * so no reader ever sees a partial pack. A pack smaller than `partSize` is one PUT at commit.
   */
  importPack(size: number, entries: readonly PackEntry[]): PackImport {
    this.checkOpen();
    const name = `pack-${randomHex(16)}.h5`;
    const key = this.key(name);
    const client = this.s3.client;
    let uploadId: Promise<string> | null = null;
    const parts: Array<{ PartNumber: number; ETag: string }> = [];
    const inflight = new Set<Promise<void>>();
    let nextPart = 1;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    /** Release callbacks of the chunks in `pending` (called once they are copied into a part). */
    let pendingRelease: Array<() => void> = [];
    const releasePending = () => {
      const r = pendingRelease;
      pendingRelease = [];
      r.forEach((f) => f());
    };
    const noop = () => undefined;
    let written = 0;
    let failure: unknown = null;
    let state: 'open' | 'done' = 'open';
    const fail = (e: unknown) => {
      failure ??= e;
    };
    const startUpload = () =>
      (uploadId ??= (async () => {
        this.stats.requests++;
        const out = await client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
        if (!out.UploadId) throw new CorruptObjectError(`${this.url}: the server gave no multipart upload id`);
        return out.UploadId;
      })());
    const sendPart = async (body: Buffer, release: () => void) => {
      while (inflight.size >= this.queueSize) await Promise.race(inflight);
      if (failure) throw this.err(failure, `upload of pack ${name}`);
      const partNumber = nextPart++;
      const run = (async () => {
        const id = await startUpload();
        this.stats.requests++;
        const out = await client.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: id,
            PartNumber: partNumber,
            Body: body,
            ContentLength: body.length,
          }),
        );
        parts.push({ PartNumber: partNumber, ETag: out.ETag ?? '' });
        this.stats.bytesUploaded += body.length;
      })()
        .catch(fail)
        .finally(release);
      inflight.add(run);
      void run.finally(() => inflight.delete(run));
    };
    const MIN_PART = 5 << 20;
    const abortUpload = async () => {
      const id = uploadId ? await uploadId.catch(() => null) : null;
      await Promise.allSettled([...inflight]);
      if (id)
        await client
          .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: id }))
          .catch(() => undefined);
    };
    return {
      write: async (chunk: Uint8Array, release: () => void = noop) => {
        if (state !== 'open' || failure) {
          release();
          if (failure) throw this.err(failure, `upload of pack ${name}`);
          throw new InvalidArgumentError('pack import is finished');
        }
        const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        written += b.length;
        if (size >= this.partSize && pendingBytes === 0 && b.length >= MIN_PART) {
          // Views of the chunk, about partSize each (never below it, so every part but the last of the
          // upload is at least 5 MiB): the upload runs in parallel parts however large the chunk is.
          const k = Math.max(1, Math.floor(b.length / this.partSize));
          let left = k;
          const done = () => {
            if (--left === 0) release();
          };
          for (let i = 0; i < k; i++)
            await sendPart(b.subarray(Math.floor((b.length * i) / k), Math.floor((b.length * (i + 1)) / k)), done);
          return;
        }
        // Gathered (copied) into a part with its neighbours; a pack below partSize is one PUT at commit.
        pending.push(b);
        pendingRelease.push(release);
        pendingBytes += b.length;
        if (size >= this.partSize && pendingBytes >= this.partSize) {
          const body = Buffer.concat(pending, pendingBytes);
          pending = [];
          pendingBytes = 0;
          releasePending();
          await sendPart(body, noop);
        }
      },
      commit: async () => {
        if (state !== 'open') throw new InvalidArgumentError('pack import is finished');
        state = 'done';
        try {
          if (written !== size)
            throw new CorruptObjectError(`pack import: ${written} bytes written, the pack has ${size}`, { size });
          try {
            if (size < this.partSize) {
              const body = Buffer.concat(pending);
              pending = [];
              releasePending();
              this.stats.requests++;
              await client.send(
                new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: size }),
              );
              this.stats.bytesUploaded += size;
            } else {
              if (pendingBytes > 0) {
                const body = Buffer.concat(pending, pendingBytes);
                pending = [];
                releasePending();
                await sendPart(body, noop);
              }
              while (inflight.size) await Promise.race(inflight);
              if (failure) throw this.err(failure, `upload of pack ${name}`);
              const id = await startUpload();
              this.stats.requests++;
              await client.send(
                new CompleteMultipartUploadCommand({
                  Bucket: this.bucket,
                  Key: key,
                  UploadId: id,
                  MultipartUpload: { Parts: [...parts].sort((a, b) => a.PartNumber - b.PartNumber) },
                }),
              );
            }
          } catch (e) {
            throw this.err(e, `upload of pack ${name}`);
          }
          await this.publishIndex(name, size, entries);
          return { name, objects: entries.length, bytes: size };
        } catch (e) {
          pending = [];
          releasePending();
          await abortUpload();
          throw e;
        }
      },
      abort: async () => {
        if (state === 'done') return;
        state = 'done';
        pending = [];
        releasePending();
        await abortUpload();
      },
    };
  }

  /** Streams a local file to `key`: one PUT when small, else a multipart upload with parallel parts. */
  private async uploadFile(file: string, key: string, size: number): Promise<void> {
    const body = createReadStream(file, { highWaterMark: 1 << 20 });
    this.stats.requests += Math.max(1, Math.ceil(size / this.partSize)) + (size > this.partSize ? 2 : 0);
    const up = new Upload({
      client: this.s3.client,
      params: { Bucket: this.bucket, Key: key, Body: body, ContentLength: size },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    try {
      await up.done();
    } finally {
      body.destroy();
    }
    this.stats.bytesUploaded += size;
  }

  // ---- maintenance --------------------------------------------------------------------------

  /**
   * Keeps only objects with keep(id) === true: the kept objects of candidate packs (older than graceMs,
   * holding garbage, or all with `all`) are copied (verified) into one new pack, published first; then
   * the candidates are deleted, .h5 before .idx. Packs uploaded without an index (a writer killed
   * between the two) and older than graceMs are deleted too.
   */
  async repack(keep: (id: string) => boolean, opts: RepackOptions = {}): Promise<RepackResult> {
    this.checkOpen();
    if (typeof keep !== 'function') throw invalidParameter('keep', 'function', keep);
    const graceMs = opts.graceMs ?? 0;
    if (!Number.isFinite(graceMs) || graceMs < 0) throw invalidParameter('graceMs', 'non-negative number', graceMs);
    await this.refresh();
    const cutoff = Date.now() - graceMs;
    const result: RepackResult = { newPack: null, removedPacks: [], skippedPacks: [], copied: 0, dropped: 0 };
    const candidates = this.packNames()
      .map((n) => this.packs.get(n)!)
      .filter((p) => !(graceMs > 0 && p.lastModifiedMs > cutoff))
      .filter((p) => opts.all || p.entries.some((e) => !keep(e.id)));
    const onlyOneClean = opts.all && candidates.length === 1 && candidates[0].entries.every((e) => keep(e.id));
    if (candidates.length > 0 && !onlyOneClean) {
      const candNames = new Set(candidates.map((c) => c.name));
      const elsewhere = new Set<string>();
      for (const [name, st] of this.packs) if (!candNames.has(name)) for (const e of st.entries) elsewhere.add(e.id);
      const tx = new LocalTransaction(this, true);
      this.txs.add(tx);
      const dropped = new Set<string>();
      try {
        for (const c of candidates)
          for (const e of c.entries) {
            if (!keep(e.id)) {
              dropped.add(e.id);
              continue;
            }
            if (elsewhere.has(e.id) || tx.staged(e.id)) continue;
            const bytes = await this.readObject({ pack: c.name, entry: e });
            await tx.put(e.id, bytes, {
              codec: e.codec,
              dtype: e.dtype,
              shape: e.shape,
              base: e.base,
              rawSize: e.rawSize,
              extra: e.extra,
            });
            result.copied++;
          }
        result.newPack = await tx.commit();
      } catch (e) {
        await tx.abort();
        throw e instanceof CoralError ? e : this.err(e, 'repack');
      }
      for (const c of candidates) {
        await this.deleteKey(this.key(c.name));
        await this.deleteKey(this.key(indexNameFor(c.name)));
        result.removedPacks.push(c.name);
      }
      result.dropped = dropped.size;
    }
    // Packs that never got an index (their writer died) are invisible; remove them after the grace period.
    const keys = await this.listPackKeys();
    for (const [k, v] of keys)
      if (PACK_KEY_RE.test(k) && !keys.has(indexNameFor(k)) && v.lastModifiedMs <= cutoff)
        await this.deleteKey(this.key(k));
    await this.refresh();
    return result;
  }

  private async deleteKey(key: string): Promise<void> {
    try {
      this.stats.requests++;
      await this.s3.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      if (!isNoSuchKey(e)) throw this.err(e, `delete of ${key}`);
    }
  }

  /**
   * Checks every pack: an index that decodes and matches the pack's own listing, and every object's
   * bytes against its checksum. Each pack is downloaded once to a temp file and read with the native
   * pack reader (the same checks as the local store). A pack without a usable index is reported.
   */
  async verify(): Promise<StoreProblem[]> {
    this.checkOpen();
    await this.refresh();
    const problems: StoreProblem[] = [];
    const code = (e: unknown) => (e instanceof CoralError ? e.code : 'CORAL_INTERNAL');
    const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));
    const keys = await this.listPackKeys();
    for (const [k, v] of keys) {
      if (!PACK_KEY_RE.test(k)) continue;
      const st = this.packs.get(k);
      if (!st) {
        problems.push({
          kind: 'index',
          pack: k,
          code: ObjectNotFoundError.code,
          message: keys.has(indexNameFor(k))
            ? `index of pack ${k} at ${this.url} cannot be read or does not match the pack`
            : `pack ${k} at ${this.url} has no index (an interrupted upload; repack removes it)`,
        });
        continue;
      }
      const file = path.join(this.tmpDir, `verify-${randomHex(8)}-${k}`);
      try {
        try {
          this.stats.requests++;
          const out = await this.s3.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(k) }));
          await pipeline(out.Body as Readable, createWriteStream(file));
          this.stats.bytesDownloaded += v.size;
        } catch (e) {
          if (isNoSuchKey(e)) continue; // removed meanwhile
          throw this.err(e, `download of pack ${k}`);
        }
        let entries: PackEntry[];
        let r: InstanceType<typeof native.PackReader>;
        try {
          r = callSync(() => new native.PackReader(file));
          entries = await callAsync(() => r.list());
        } catch (e) {
          problems.push({ kind: 'pack', pack: k, code: code(e), message: `pack ${k} at ${this.url}: ${msg(e)}` });
          continue;
        }
        try {
          if (!sameEntries(entries, st.entries))
            problems.push({
              kind: 'index',
              pack: k,
              code: CorruptObjectError.code,
              message: `index of pack ${k} at ${this.url} does not match the pack`,
            });
          const buf = Buffer.allocUnsafe(entries.reduce((m, e) => Math.max(m, e.size), 0));
          for (const e of entries) {
            try {
              await callAsync(() => r.readInto(e.id, buf));
            } catch (err) {
              problems.push({ kind: 'object', pack: k, id: e.id, code: code(err), message: msg(err) });
            }
          }
        } finally {
          r.close();
        }
      } finally {
        await fsp.unlink(file).catch(() => undefined);
      }
    }
    return problems;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const tx of [...this.txs]) await tx.abort();
    this.closed = true;
    this.ahead = null;
    await this.refreshChain;
    this.packs.clear();
    this.byId.clear();
    if (this.ownsClient) this.s3.client.destroy();
    if (this.ownsTmp) await fsp.rm(this.tmpDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
