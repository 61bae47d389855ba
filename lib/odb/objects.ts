/**
 * Tensor objects on top of the object store and the codecs: read with delta
 * chains resolved (and recently used bases kept hot in an LRU), write within
 * a writer session with deduplication, codec choice and chain-depth bounds.
 *
 * Hot bases: decoding an object at chain depth d needs its d ancestors. The
 * reader keeps decoded *bases* (objects other objects were decoded against)
 * in an LRU bounded by bytes (default 64 MiB, config `core.baseCacheBytes`),
 * so reading a series of versions decodes each shared base once. Leaves are
 * not cached: a checkout streams tensor by tensor, and peak memory stays at
 * the cache bound plus a few times the largest tensor, whatever the file size.
 *
 * Early release: large buffers come from the native pool (lib/native.ts
 * allocLarge); a stage that is done with a tensor gives it back with
 * `release()` so the next one reuses its pages (no fault-in and zeroing, no
 * wait for the GC). Only buffers that never entered the cache are given back:
 * a cached tensor may be held by any caller that got it from the cache.
 */
import {
  baseRelation,
  decode,
  decodePair,
  encode,
  encodePureCast,
  inspectObject,
  pairDecodable,
  type CodecName,
  type EncodedObject,
  type EncodeOptions,
  type LossyOptions,
} from '../codec';
import { DTYPES, type DType } from '../tensor/dtype';
import { InvalidArgumentError, ObjectNotFoundError } from '../errors';
import { contentId } from '../hash';
import { recycleLarge } from '../native';
import { SCRATCH_MIN_BYTES } from './scratch';
import type { ObjectAttrs, ObjectStore, PackTransaction, ScratchSource, StoredObject } from '../store/object-store';
import type { Tensor } from '../tensor/tensor';

export interface StoredInfo {
  id: string;
  codec: string;
  base: string | null;
  depth: number;
  rawSize: number;
  storedSize: number;
}

class Lru<V extends { data: Uint8Array }> {
  private map = new Map<string, V>();
  private bytes = 0;
  constructor(private readonly limit: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  fits(bytes: number, share = 2): boolean {
    return bytes <= this.limit / share;
  }
  /** True when `v` is now in the cache. */
  set(k: string, v: V): boolean {
    if (!this.fits(v.data.byteLength)) return false;
    if (this.map.has(k)) return this.map.get(k) === v;
    this.map.set(k, v);
    this.bytes += v.data.byteLength;
    for (const [key, old] of this.map) {
      if (this.bytes <= this.limit) break;
      this.map.delete(key);
      this.bytes -= old.data.byteLength;
    }
    return this.map.get(k) === v;
  }
}

function attrDepth(a: ObjectAttrs): number {
  const d = Number(a.extra?.depth ?? 0);
  return Number.isFinite(d) ? d : 0;
}

/**
 * The bytes the base cache keeps: a plain Uint8Array over its own whole
 * ArrayBuffer, as decode returns. An owned buffer that already is one (large
 * ingest buffers) is wrapped without a copy; anything else (a caller's buffer,
 * a slice of Node's small-buffer pool) is copied.
 */
function cacheCopy(data: Uint8Array, owned: boolean): Uint8Array {
  if (
    owned &&
    data.byteOffset === 0 &&
    data.byteLength === data.buffer.byteLength &&
    data.buffer instanceof ArrayBuffer
  )
    return new Uint8Array(data.buffer);
  return new Uint8Array(data);
}

/** Default bound of the base cache (config `core.baseCacheBytes`). */
export const DEFAULT_BASE_CACHE_BYTES = 64 << 20;

/**
 * A tensor just stored is kept in the base cache (ObjectWriter.put) only when it is at most this
 * fraction of the cache: 1 MiB with the default 64 MiB. Keeping one costs a copy into a new
 * ArrayBuffer, which pays for a series of small checkpoints added in one process (the next one's
 * delta base is at hand). Larger tensors cost more to copy, and to collect, than a later read and
 * decode of the base; and the copies count toward the memory bound. At 1/16 (4 MiB), a 512 MiB
 * `add` of 4 MiB tensors spent 0.24 s of its main thread copying and 0.4 s in GC, and peaked at
 * 283 MB against its bound of 268 MiB (3 x 4 MiB + 256 MiB); at 1/64, 180 MB. An ingest also
 * keeps none of a file larger than half the cache (PutOptions.remember): the cache could hold only
 * its last tensors (a 512 MiB file of 1 MiB tensors peaked at 223 MB with them, 153 MB without).
 */
const REMEMBER_SHARE = 64;

interface ChainLink {
  id: string;
  bytes: Uint8Array;
  base: string | null;
}

export class ObjectReader {
  private cache: Lru<Tensor>;
  /** Buffers that were ever offered to the cache: others may hold them, so they are never released early. */
  private shared = new WeakSet<ArrayBufferLike>();
  /**
   * `opts.cacheBases`: the default of `tensor()`'s option of that name. A reader whose decodes rarely
   * share chain links (a server ingesting one series after another: each upload's base is the previous
   * upload's leaf, which `remember()` keeps when small) sets it false, so its cache holds only what
   * was remembered instead of links that push one another out.
   */
  constructor(
    readonly store: ObjectStore,
    cacheBytes = DEFAULT_BASE_CACHE_BYTES,
    private readonly opts: { cacheBases?: boolean } = {},
  ) {
    this.cache = new Lru<Tensor>(cacheBytes);
  }

  private keep(id: string, t: Tensor): void {
    if (this.cache.set(id, t)) this.shared.add(t.data.buffer);
  }

  /**
   * Gives a tensor's memory back to the native pool now (lib/native.ts
   * recycleLarge) unless it ever was in the cache. For callers that got `t`
   * from `tensor()` (or read it themselves) and are done with it: nothing may
   * use `t.data` afterwards.
   */
  release(t: Tensor | null | undefined, scratch?: ScratchSource): void {
    if (!t || scratch?.give(t.data)) return;
    if (!this.shared.has(t.data.buffer)) recycleLarge(t.data);
  }

  /** Stored bytes read for one decode, which is done: back to `scratch` or the native pool. */
  private dropRead(b: Uint8Array, scratch: ScratchSource | undefined): void {
    if (!scratch?.give(b)) recycleLarge(b);
  }

  async has(id: string): Promise<boolean> {
    return this.store.has(id);
  }

  async info(id: string): Promise<StoredInfo> {
    const a = await this.store.stat(id);
    return {
      id,
      codec: a.codec,
      base: a.base || null,
      depth: attrDepth(a),
      rawSize: a.rawSize,
      storedSize: a.storedSize ?? 0,
    };
  }

  /** True when the stored object is a delta (its attributes name a base); no read. */
  async isDelta(id: string): Promise<boolean> {
    return !!(await this.store.stat(id)).base;
  }

  /** Would a decoded tensor of this size be kept by the base cache? */
  cacheFits(bytes: number, share = 2): boolean {
    return this.cache.fits(bytes, share);
  }

  /**
   * Decodes an object, resolving its delta chain. Verified end to end by the
   * codec. `cacheBases: false` is for one pass over many tensors (a checkout
   * streaming a file): the chain's bases are decoded, used and given back
   * instead of going through the cache, where they would only push out one
   * another.
   *
   * `scratch` (with `cacheBases: false` only): reads and decodes go into its
   * buffers (lib/odb/scratch.ts), and the caller hands the result back with
   * `release(t, scratch)`. A pass over many tensors then reuses a few buffers
   * instead of making new ones (each a new ArrayBuffer the GC must account).
   *
   * `verify: false` (with `cacheBases: false` only): the links' content ids
   * are not checked, for a caller that verifies the result another way
   * before anything relies on it (checkout: the file's sha256).
   *
   * `shift` (with `scratch` only): the result's bytes start that many bytes
   * past a page boundary (ScratchBuffers.take), when it is decoded here into
   * a scratch buffer (checkout: the segment's file offset modulo 4096, so the
   * FileWriter writes it without a copy).
   */
  async tensor(
    id: string,
    opts: { cacheBases?: boolean; scratch?: ScratchSource; verify?: boolean; shift?: number } = {},
  ): Promise<Tensor> {
    const hit = this.cache.get(id);
    if (hit) return hit;
    opts = { cacheBases: this.opts.cacheBases, ...opts };
    // A cached tensor must never live in a buffer the scratch lends out again, nor be unverified.
    if (opts.cacheBases !== false) opts = { ...opts, scratch: undefined, verify: true };
    const { ids, cur, baseTensor } = await this.walkChain(id);
    const t = await this.decodeWindowed(ids, cur, baseTensor, opts);
    if (t) return t;
    // A link read back with another base than its attributes said (rewritten meanwhile): walk the
    // chain again read by read.
    const slow = await this.slowChain(id);
    return this.decodeLinks(slow.chain, slow.cur, slow.baseTensor, opts);
  }

  /**
   * Follows `id`'s delta chain from `id` down to the first link that is cached (`baseTensor`, with its
   * id in `cur`) or has no base; `step` gives each uncached link and the base it names.
   */
  private async followChain<L>(
    id: string,
    step: (cur: string) => Promise<{ link: L; base: string | null }>,
  ): Promise<{ links: L[]; cur: string | null; baseTensor: Tensor | undefined }> {
    const links: L[] = [];
    let cur: string | null = id;
    let baseTensor: Tensor | undefined;
    while (cur) {
      const cached = this.cache.get(cur);
      if (cached) {
        baseTensor = cached;
        break;
      }
      const { link, base } = await step(cur);
      links.push(link);
      cur = base;
      if (links.length > 10_000) throw new ObjectNotFoundError(`delta chain of ${id} does not terminate`);
    }
    return { links, cur, baseTensor };
  }

  /** `id`'s delta chain by the store's attributes (no reads): its ids (followChain). */
  private async walkChain(id: string): Promise<{ ids: string[]; cur: string | null; baseTensor: Tensor | undefined }> {
    const { links, cur, baseTensor } = await this.followChain(id, async (at) => ({
      link: at,
      base: (await this.store.stat(at)).base || null,
    }));
    return { ids: links, cur, baseTensor };
  }

  /**
   * Decodes the chain `ids` from the bottom up, reading each link's stored bytes while the link below
   * it decodes: at most two links' stored bytes are in memory, whatever the chain's depth. Null when a
   * link reads back with another base than its attributes said (the caller walks again).
   */
  private async decodeWindowed(
    ids: string[],
    cur: string | null,
    cachedBase: Tensor | undefined,
    opts: { cacheBases?: boolean; scratch?: ScratchSource; verify?: boolean; shift?: number },
  ): Promise<Tensor | null> {
    const scratch = opts.scratch;
    const read = (i: number): Promise<StoredObject> => {
      const p = scratch && this.store.getInto ? this.store.getInto(ids[i], scratch) : this.store.get(ids[i]);
      p.catch(() => undefined);
      return p;
    };
    let baseTensor = cachedBase;
    let baseId = cur;
    let next = ids.length ? read(ids.length - 1) : null;
    const pairable = scratch !== undefined && opts.verify === false && opts.cacheBases === false;
    try {
      for (let i = ids.length - 1; i >= 0; i--) {
        const got = await next!;
        next = i > 0 ? read(i - 1) : null;
        const base = got.attrs.base || null;
        if (base !== (i + 1 < ids.length ? ids[i + 1] : cur)) {
          this.dropRead(got.bytes, scratch);
          if (baseTensor !== cachedBase) this.release(baseTensor, scratch);
          return null;
        }
        // Unverified streaming (checkout): this link and the one above it decode as a pair, chunk
        // by chunk, so this link's tensor is never written out whole and read back (decodePair).
        const paired = i > 0 && pairable ? await this.pairUp(got.bytes, next!) : null;
        if (paired) {
          next = i > 1 ? read(i - 2) : null;
          if ((paired.attrs.base || null) !== ids[i]) {
            this.dropRead(got.bytes, scratch);
            this.dropRead(paired.bytes, scratch);
            if (baseTensor !== cachedBase) this.release(baseTensor, scratch);
            return null;
          }
          const out = scratch!.take(paired.nbytes, i === 1 ? opts.shift : 0);
          let t: Tensor;
          try {
            t = await decodePair(got.bytes, base && baseTensor ? baseTensor : null, paired.bytes, out);
          } catch (e) {
            scratch!.give(out);
            throw e;
          } finally {
            this.dropRead(got.bytes, scratch);
            this.dropRead(paired.bytes, scratch);
          }
          this.release(baseTensor, scratch);
          baseTensor = t;
          baseId = ids[--i];
          continue;
        }
        const t: Tensor = await this.decodeInto(
          got.bytes,
          base && baseTensor ? { tensor: baseTensor, id: baseId! } : undefined,
          scratch,
          opts.verify,
          i === 0 ? opts.shift : 0,
        );
        // The stored bytes were read for this decode alone (ObjectStore.get: the caller owns them).
        this.dropRead(got.bytes, scratch);
        if (i > 0 && opts.cacheBases !== false) this.keep(ids[i], t);
        // The link below was only needed for this decode (unless the cache holds it).
        this.release(baseTensor, scratch);
        baseTensor = t;
        baseId = ids[i];
      }
    } finally {
      // A read started for a link that will not be decoded (an error, a changed chain) is dropped.
      next?.then(
        (g) => this.dropRead(g.bytes, scratch),
        () => undefined,
      );
    }
    return baseTensor!;
  }

  /**
   * For decodeWindowed: when the stored link `lower` and the next link up (`upper`, being read) can
   * be decoded as a pair (pairDecodable, and large enough to be worth it), that link, read; else
   * null, and `upper` stays pending for the caller.
   */
  private async pairUp(
    lower: Uint8Array,
    upper: Promise<StoredObject>,
  ): Promise<(StoredObject & { nbytes: number }) | null> {
    const lo = inspectObject(lower);
    if (lo.nbytes < SCRATCH_MIN_BYTES || lo.chunkElems === 0) return null;
    const up = await upper;
    const uh = inspectObject(up.bytes);
    return pairDecodable(lo, uh) ? { ...up, nbytes: uh.nbytes } : null;
  }

  /**
   * Decodes `bytes` (against `base`), into a buffer of `scratch` when given: a failed decode gives
   * that buffer back (its contents are unspecified).
   */
  private async decodeInto(
    bytes: Uint8Array,
    base: { tensor: Tensor; id: string } | undefined,
    scratch: ScratchSource | undefined,
    verify = true,
    shift = 0,
  ): Promise<Tensor> {
    const n = scratch ? inspectObject(bytes).nbytes : 0;
    if (!scratch || n < SCRATCH_MIN_BYTES) return decode(bytes, base, verify ? undefined : { verify });
    const out = scratch.take(n, shift);
    try {
      return await decode(bytes, base, { out, verify });
    } catch (e) {
      scratch.give(out);
      throw e;
    }
  }

  /** Decodes links already read (the slow path), from the bottom up. */
  private async decodeLinks(
    chain: ChainLink[],
    cur: string | null,
    cachedBase: Tensor | undefined,
    opts: { cacheBases?: boolean; scratch?: ScratchSource; verify?: boolean },
  ): Promise<Tensor> {
    let baseTensor = cachedBase;
    let baseId = cur;
    for (let i = chain.length - 1; i >= 0; i--) {
      const link = chain[i];
      const t: Tensor = await this.decodeInto(
        link.bytes,
        link.base && baseTensor ? { tensor: baseTensor, id: baseId! } : undefined,
        opts.scratch,
        opts.verify,
      );
      recycleLarge(link.bytes);
      if (i > 0 && opts.cacheBases !== false) this.keep(link.id, t);
      this.release(baseTensor, opts.scratch);
      baseTensor = t;
      baseId = link.id;
    }
    return baseTensor!;
  }

  /** `id`'s chain read link by link, following the bases the stored bytes name (followChain). */
  private async slowChain(
    id: string,
  ): Promise<{ chain: ChainLink[]; cur: string | null; baseTensor: Tensor | undefined }> {
    const { links, cur, baseTensor } = await this.followChain<ChainLink>(id, async (at) => {
      const { bytes, attrs } = await this.store.get(at);
      const base = attrs.base || null;
      return { link: { id: at, bytes, base }, base };
    });
    return { chain: links, cur, baseTensor };
  }

  /** Keeps a decoded tensor hot, e.g. one about to serve as a delta base. */
  remember(id: string, t: Tensor): void {
    this.keep(id, t);
  }
}

export interface PutResult {
  id: string;
  /** false when the object already existed (deduplicated). */
  stored: boolean;
  codec: string;
  base: string | null;
  storedSize: number;
  /** Set when the object was stored with a lossy codec (PutOptions.lossy): what decode differs by. */
  lossy?: { codec: string; maxAbsError: number; relL2Error: number };
  /** Lossy puts only: the tensor the object decodes to (checkout writes these bytes). */
  decoded?: Tensor;
}

/** A lossy codec request (`coral add --lossy QUANT_INT8:block=256`), see docs/codecs.md. */
export interface LossySpec {
  codec: CodecName;
  options?: LossyOptions;
}

/** Float dtypes the lossy codecs accept; other segments (skeletons, blobs, integers) stay exact. */
const LOSSY_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);
/** Tensors smaller than this stay exact under a lossy request: too small to be worth an error. */
export const LOSSY_MIN_ELEMENTS = 256;

/** Does a lossy request apply to this tensor? */
export function lossyApplies(t: Tensor): boolean {
  const esize = t.dtype === 'F64' ? 8 : t.dtype === 'F32' ? 4 : 2;
  return LOSSY_DTYPES.has(t.dtype) && t.data.byteLength / esize >= LOSSY_MIN_ELEMENTS;
}

/** A proposed delta base: its id, and optionally its decoded tensor (saves a decode). */
export interface PutBase {
  id: string;
  /** The decoded tensor of `id`, when the caller has it (the codec verifies it against `id`). */
  tensor?: Tensor;
  /**
   * The caller knows the tensor is exactly the RNE cast of `id` (its content id is the cast id
   * recorded when `id` was stored, lib/similarity/cast-index.ts): the writer stores a pure CAST
   * object without reading the base, after checking that the base is stored, of a castable
   * dtype and the tensor's shape, and within the depth limit (else the ordinary path).
   */
  pureCast?: 'RNE';
}

export interface PutOptions {
  /**
   * The caller hands `t.data` over: it will never modify it, so the writer may
   * keep it in the base cache without a copy.
   */
  owned?: boolean;
  /**
   * Store with this lossy codec instead of the lossless choice (float tensors
   * of LOSSY_MIN_ELEMENTS or more; others, and tensors the codec refuses such
   * as ones holding NaN/Inf, are stored exactly). The object's id is then the
   * id of the *decoded* tensor, which PutResult.id returns; `id` passed to put
   * is the original's and only serves the exact-duplicate check.
   */
  lossy?: LossySpec;
  /**
   * Called once the base is no longer read by this put: its encoding is done
   * and only the pack write remains. A pipeline starts the next encode then,
   * so it overlaps this put's write. `tensorDone`: the put will not read or
   * keep `t` either (it is not going into the base cache), so the caller may
   * release it now. Not called when the put stores nothing (deduplicated) or
   * fails before encoding.
   */
  onEncoded?: (tensorDone: boolean) => void;
  /**
   * `false`: do not keep the stored tensor in the base cache (REMEMBER_SHARE), e.g. because the
   * file it belongs to is larger than the cache, which would only churn through its tensors.
   */
  remember?: boolean;
}

/**
 * Writes objects for one writer session. Objects go into pack transactions
 * that roll over every `packBytes`; nothing is visible to other processes
 * until `flush()` publishes the pack.
 *
 * Puts may overlap (ingestion encodes one segment while it reads and hashes
 * the next): encodes run concurrently, pack writes run one at a time in call
 * order, and a put of an id already being stored waits for that put and
 * reports a deduplicated object.
 */
export class ObjectWriter {
  private tx: PackTransaction | null = null;
  private txBytes = 0;
  private pending = new Map<string, ObjectAttrs>();
  /** Puts under way, by id (registered before the first await). */
  private inflight = new Map<string, Promise<PutResult>>();
  /** Serialises the pack-write stage of overlapping puts. */
  private storeChain: Promise<void> = Promise.resolve();

  constructor(
    readonly store: ObjectStore,
    readonly reader: ObjectReader,
    readonly opts: { level: number; maxChainDepth: number; packBytes?: number },
  ) {}

  async has(id: string): Promise<boolean> {
    return this.pending.has(id) || this.inflight.has(id) || (await this.store.has(id));
  }

  /**
   * Stores `t` under its content id unless present. With `base`, the codec may
   * choose a delta against it when that is smaller, provided the chain stays
   * within maxChainDepth. Objects of this session that are not yet published
   * (pending) are never used as bases.
   */
  put(
    t: Tensor,
    base?: PutBase | null,
    id?: string,
    extra?: Record<string, string>,
    opts: PutOptions = {},
  ): Promise<PutResult> {
    if (id === undefined) return contentId(t).then((oid) => this.put(t, base, oid, extra, opts));
    if (opts.lossy && lossyApplies(t)) return this.putLossy(t, base ?? null, id, extra, opts.lossy);
    const running = this.inflight.get(id);
    if (running) return running.then((r) => ({ ...r, stored: false }));
    const p = this.doPut(t, base ?? null, id, extra, opts);
    this.inflight.set(id, p);
    const done = () => {
      if (this.inflight.get(id) === p) this.inflight.delete(id);
    };
    p.then(done, done);
    return p;
  }

  /**
   * Declares that this session relies on the stored copy of `id` (see
   * PackTransaction.reuse): false when the store no longer has it, e.g. gc
   * removed it after this process loaded its view of the store. A writer never
   * trusts `has()` alone for a dedup or a delta base.
   */
  private reuse(id: string): Promise<boolean> {
    return this.stage(() => this.transaction().reuse(id));
  }

  /**
   * The base to encode against, when usable: published (and reused, so a repack keeps it), chain depth
   * within bounds, and related to `t` as `accept` allows (`baseRelation`: same dtype and shape, a cast, or
   * rows added/removed). The one check both the lossless and the lossy path use.
   */
  private async usableBase(
    t: Tensor,
    base: PutBase | null,
    oid: string,
    accept: (rel: 'same' | 'cast' | 'rows') => boolean,
  ): Promise<{ ref: { tensor: Tensor; id: string }; depth: number; decodedHere?: Tensor } | null> {
    if (
      !base ||
      base.id === oid ||
      this.pending.has(base.id) ||
      this.inflight.has(base.id) ||
      !(await this.store.has(base.id)) ||
      !(await this.reuse(base.id))
    )
      return null;
    const bd = attrDepth(await this.store.stat(base.id));
    if (bd + 1 > this.opts.maxChainDepth) return null;
    const bt = base.tensor ?? (await this.reader.tensor(base.id));
    // A base decoded here for this put alone goes back to the buffer pool after the encode (or now).
    const decodedHere = base.tensor ? undefined : bt;
    const rel = baseRelation(t, bt);
    if (rel === null || !accept(rel)) {
      this.reader.release(decodedHere);
      return null;
    }
    return { ref: { tensor: bt, id: base.id }, depth: bd + 1, ...(decodedHere ? { decodedHere } : {}) };
  }

  /**
   * The lossy path: the tensor is encoded with the requested codec (against
   * the base when one is usable; a stored exact copy is not reused, since the
   * caller asked for the lossy form) and stored under the decoded tensor's id.
   */
  private async putLossy(
    t: Tensor,
    base: PutBase | null,
    oid: string,
    extra: Record<string, string> | undefined,
    spec: LossySpec,
  ): Promise<PutResult> {
    const b = await this.usableBase(t, base, oid, (rel) => rel === 'same');
    let enc;
    try {
      enc = await encode(t, { codec: spec.codec, lossy: spec.options, base: b?.ref, level: this.opts.level });
    } catch (e) {
      // The codec refuses some data (NaN/Inf for QUANT/PER_AXIS/LOW_RANK): stored exactly instead.
      // Option errors were caught when the request was parsed (lib/ingest/lossy.ts).
      if (e instanceof InvalidArgumentError) return this.put(t, base, oid, extra, {});
      throw e;
    }
    const id = enc.id;
    const decoded = await decode(enc.bytes, b?.ref);
    this.reader.release(b?.decodedHere);
    const lossy = { codec: enc.codec, maxAbsError: enc.maxAbsError ?? 0, relL2Error: enc.relL2Error ?? 0 };
    const running = this.inflight.get(id);
    if (running) return running.then((r) => ({ ...r, stored: false, lossy, decoded }));
    const p = (async (): Promise<PutResult> => {
      const mine = this.pending.get(id);
      if (mine)
        return {
          id,
          stored: false,
          codec: mine.codec,
          base: mine.base || null,
          storedSize: mine.storedSize ?? 0,
          lossy,
          decoded,
        };
      if ((await this.store.has(id)) && (await this.reuse(id))) {
        const a = await this.store.stat(id).catch(() => null);
        if (a)
          return {
            id,
            stored: false,
            codec: a.codec,
            base: a.base || null,
            storedSize: a.storedSize ?? 0,
            lossy,
            decoded,
          };
      }
      const usedBase = b ? inspectObject(enc.bytes).baseId : null;
      const attrs: ObjectAttrs = {
        id,
        codec: enc.codec,
        dtype: t.dtype,
        shape: t.shape.slice(),
        base: usedBase ?? '',
        rawSize: t.data.byteLength,
        storedSize: enc.bytes.byteLength,
        extra: { ...extra, depth: String(usedBase && b ? b.depth : 0) },
      };
      await this.stage(async () => {
        await this.transaction().put(id, enc.bytes, attrs);
        this.pending.set(id, attrs);
        this.txBytes += enc.bytes.byteLength;
        if (this.txBytes >= (this.opts.packBytes ?? 1 << 30)) await this.commitTx();
      });
      return { id, stored: true, codec: enc.codec, base: usedBase, storedSize: enc.bytes.byteLength, lossy, decoded };
    })();
    this.inflight.set(id, p);
    const done = () => {
      if (this.inflight.get(id) === p) this.inflight.delete(id);
    };
    p.then(done, done);
    return p;
  }

  private async doPut(
    t: Tensor,
    base: PutBase | null,
    oid: string,
    extra: Record<string, string> | undefined,
    opts: PutOptions,
  ): Promise<PutResult> {
    const mine = this.pending.get(oid);
    if (mine)
      return { id: oid, stored: false, codec: mine.codec, base: mine.base || null, storedSize: mine.storedSize ?? 0 };
    if (await this.store.has(oid)) {
      // Tell the store we rely on the existing copy, so a repack cannot drop it under us.
      // When it is already gone, fall through and write it again.
      const a = (await this.reuse(oid)) ? await this.store.stat(oid).catch(() => null) : null;
      if (a) return { id: oid, stored: false, codec: a.codec, base: a.base || null, storedSize: a.storedSize ?? 0 };
    }
    if (base?.pureCast) {
      const r = await this.putPureCast(t, base, oid, extra, opts);
      if (r) return r;
    }
    const eo: EncodeOptions = { codec: 'auto', level: this.opts.level };
    // Same dtype and shape, or a cast (CAST) or row-resized (ROWS) relative.
    const usable = await this.usableBase(t, base, oid, () => true);
    if (usable) eo.base = usable.ref;
    const depth = usable?.depth ?? 0;
    const rawSize = t.data.byteLength;
    // Kept hot for the next ingest that picks it as a delta base (see below)?
    const remember = opts.remember !== false && this.reader.cacheFits(rawSize, REMEMBER_SHARE);
    const enc = await encode(t, eo);
    this.reader.release(usable?.decodedHere);
    opts.onEncoded?.(!remember);
    const usedBase = eo.base ? inspectObject(enc.bytes).baseId : null;
    const attrs: ObjectAttrs = {
      id: oid,
      codec: enc.codec,
      dtype: t.dtype,
      shape: t.shape.slice(),
      base: usedBase ?? '',
      rawSize,
      storedSize: enc.bytes.byteLength,
      extra: { ...extra, depth: String(usedBase ? depth : 0) },
    };
    await this.stage(async () => {
      await this.transaction().put(oid, enc.bytes, attrs);
      this.pending.set(oid, attrs);
      this.txBytes += enc.bytes.byteLength;
      if (this.txBytes >= (this.opts.packBytes ?? 1 << 30)) await this.commitTx();
    });
    // The store has written (or copied) the encoded bytes (PackTransaction.put): give them back.
    const storedSize = enc.bytes.byteLength;
    recycleLarge(enc.bytes);
    // Keep it hot for the next ingest that picks it as a delta base (a copy unless
    // the caller handed the buffer over: the cache is trusted without re-verification).
    // Only tensors small against the cache: it pays for series of small checkpoints
    // added in one process; a large tensor would push out the rest and keep its read
    // buffer from going back to the pool.
    if (remember)
      this.reader.remember(oid, { dtype: t.dtype, shape: t.shape.slice(), data: cacheCopy(t.data, !!opts.owned) });
    return { id: oid, stored: true, codec: enc.codec, base: usedBase, storedSize };
  }

  /** Counts of pure-cast puts (PutBase.pureCast): stored without reading the base, or refused. */
  readonly castStats = { stored: 0, refused: 0 };

  /**
   * A pure CAST object of `t` against `base` built from the ids alone (no base read), or null when
   * the base is not usable as one (gone, pending, another dtype or shape, too deep): the caller
   * then takes the ordinary path.
   */
  private async putPureCast(
    t: Tensor,
    base: PutBase,
    oid: string,
    extra: Record<string, string> | undefined,
    opts: PutOptions,
  ): Promise<PutResult | null> {
    const refuse = () => {
      this.castStats.refused++;
      return null;
    };
    if (base.id === oid || this.pending.has(base.id) || this.inflight.has(base.id)) return refuse();
    if (!(await this.store.has(base.id))) return refuse();
    const ba = await this.store.stat(base.id).catch(() => null);
    if (
      !ba ||
      ba.dtype === t.dtype ||
      !['F64', 'F32', 'F16', 'BF16'].includes(ba.dtype) ||
      ba.shape.length !== t.shape.length ||
      ba.shape.some((d, i) => d !== t.shape[i])
    )
      return refuse();
    const depth = attrDepth(ba) + 1;
    if (depth > this.opts.maxChainDepth || !(await this.reuse(base.id))) return refuse();
    const enc = encodePureCast(t, oid, { dtype: ba.dtype as DType, id: base.id }, base.pureCast, {
      level: this.opts.level,
    });
    opts.onEncoded?.(true);
    const attrs: ObjectAttrs = {
      id: oid,
      codec: enc.codec,
      dtype: t.dtype,
      shape: t.shape.slice(),
      base: base.id,
      rawSize: t.data.byteLength,
      storedSize: enc.bytes.byteLength,
      extra: { ...extra, depth: String(depth) },
    };
    await this.stage(async () => {
      await this.transaction().put(oid, enc.bytes, attrs);
      this.pending.set(oid, attrs);
      this.txBytes += enc.bytes.byteLength;
      if (this.txBytes >= (this.opts.packBytes ?? 1 << 30)) await this.commitTx();
    });
    this.castStats.stored++;
    return { id: oid, stored: true, codec: enc.codec, base: base.id, storedSize: enc.bytes.byteLength };
  }

  /**
   * Stores an object the caller encoded itself (e.g. a LOW_RANK approximation
   * that serves as the base of an exact residual, lib/git/lowrank.ts) under
   * `enc.id`, unless present. `base` (the object's delta base) must already be
   * published; the new object's chain depth is the base's plus one. Like every
   * put, it is visible to other objects as a base only after `flush()`.
   */
  async putEncoded(enc: EncodedObject, t: Pick<Tensor, 'dtype' | 'shape'>, base: string | null): Promise<PutResult> {
    if (this.pending.has(enc.id) || (await this.store.has(enc.id)))
      return { id: enc.id, stored: false, codec: enc.codec, base, storedSize: enc.bytes.byteLength };
    const depth = base ? attrDepth(await this.store.stat(base)) + 1 : 0;
    if (base && !(await this.reuse(base))) throw new ObjectNotFoundError(`delta base ${base} is no longer stored`);
    const attrs: ObjectAttrs = {
      id: enc.id,
      codec: enc.codec,
      dtype: t.dtype,
      shape: t.shape.slice(),
      base: base ?? '',
      rawSize: enc.bytes.byteLength,
      storedSize: enc.bytes.byteLength,
      extra: { depth: String(depth) },
    };
    attrs.rawSize = t.shape.reduce((n, d) => n * d, 1) * DTYPES[t.dtype].size;
    await this.stage(async () => {
      await this.transaction().put(enc.id, enc.bytes, attrs);
      this.pending.set(enc.id, attrs);
      this.txBytes += enc.bytes.byteLength;
    });
    return { id: enc.id, stored: true, codec: enc.codec, base, storedSize: enc.bytes.byteLength };
  }

  /** Runs a pack-stage step after every earlier one (a failed step does not block later ones). */
  private stage<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.storeChain.then(fn);
    this.storeChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private transaction(): PackTransaction {
    if (!this.tx) {
      this.tx = this.store.beginWrite();
      this.txBytes = 0;
    }
    return this.tx;
  }

  private async commitTx(): Promise<void> {
    const tx = this.tx;
    this.tx = null;
    if (tx) await tx.commit();
    this.pending.clear();
  }

  /** Waits for every put under way. */
  private async settle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight.values()]);
    await this.storeChain;
  }

  /** Publishes the current pack (temp file, fsync, rename), after every put under way. */
  async flush(): Promise<void> {
    await this.settle();
    await this.stage(() => this.commitTx());
  }

  async abort(): Promise<void> {
    await this.settle();
    const tx = this.tx;
    this.tx = null;
    this.pending.clear();
    if (tx) await tx.abort();
  }
}
