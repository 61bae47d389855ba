/**
 * Negotiation and transfer between two repositories: what the receiver lacks, moved in an order that keeps
 * it consistent at every instant. The same code pushes (local → remote), fetches and clones (remote →
 * local), and completes a partial clone; a "side" is anything with meta objects and an object store, which
 * a RemoteRepo and a local repository context both are.
 *
 * What moves:
 * 1. refs are compared by the caller (push: fast-forward check; fetch: every branch and tag);
 * 2. meta objects: walked from the tips in the sender, stopping at any the receiver already has. The
 *    receiver's meta objects are *closed*: a commit is only ever written after its tree and parents, a
 *    tree after every object it names, so one it has implies everything below it (the resume rule:
 *    whatever an interrupted transfer wrote whole is not sent again);
 * 3. tensor objects (segments, skeletons, blobs) named by the new trees and absent from the receiver's
 *    store, each delta with its base unless the receiver has the base (recursively).
 *
 * In what order (the durability contract of transport.ts): all tensor objects go up in ONE pack
 * transaction, as the stored (already encoded) bytes, never re-encoded; when it has committed, the meta
 * objects follow (trees, then commits parents-first, then tags); the caller moves refs last, each by
 * compare-and-swap. A process killed anywhere leaves the receiver with at most an unreferenced pack or
 * unreferenced meta objects, which a rerun reuses and gc eventually removes.
 *
 * Everything is verified before it is written: the sender's store checks each object's checksum on read,
 * and each object is decoded here (against its base: the receiver's copy, or the verified incoming one),
 * which checks its content id end to end; meta objects are checked against their sha256 and decoded. A
 * damaged object stops the transfer with an error naming it, and nothing of the transaction is published.
 *
 * @example
 * const r = await transfer(local, remote, [headId]);
 * r.objects, r.objectBytes   // what was sent
 */
import * as os from 'node:os';
import type { PackEntry } from '../../binding';
import { decode, inspectObject, type ObjectHeader } from '../codec';
import { ChecksumMismatchError, CoralError, CorruptObjectError, InternalError, ObjectNotFoundError } from '../errors';
import { globToRegExp } from '../merge/rules';
import { decodeMeta, type MetaObject } from '../models/meta';
import type { Tree } from '../models/tree';
import { ObjectReader } from '../odb/objects';
import { ASYNC_THRESHOLD_BYTES, allocLarge, callAsync, native, recycleLarge } from '../native';
import type {
  ObjectAttrs,
  ObjectStore,
  PackInfo,
  PackTransaction,
  StoredAttrs,
  StoredObject,
} from '../store/object-store';
import {
  packSink,
  packSource,
  type PackBytes,
  type PackImport,
  type PackListing,
  type PackSink,
  type PackSource,
} from '../store/pack-stream';
import type { Tensor } from '../tensor/tensor';
import { crashPoint } from '../util/crash';
import type { RemoteMeta } from './transport';

/** One end of a transfer: meta objects and tensor objects (a RemoteRepo, or a repository context's parts). */
export interface TransferSide {
  readonly meta: RemoteMeta;
  readonly objects: ObjectStore;
}

/**
 * Which objects of a file a partial clone wants: `wanted(path, null)` for the whole file (skeleton and
 * every segment), else `wanted(path, tensorNames)` for one segment viewed by those tensors.
 */
export type ObjectFilter = (path: string, tensors: readonly string[] | null) => boolean;

export interface TransferOptions {
  /** Only objects this filter wants (a partial clone); their delta bases always go along. */
  filter?: ObjectFilter | null;
  /**
   * Walk every meta object reachable from the tips, even those the receiver has, and fetch every object
   * they name that it lacks (completes a partial clone; `coral fetch --all-objects`).
   */
  complete?: boolean;
  /** Crash points are named `<what>:after-pack`, `<what>:after-trees`, `<what>:after-meta` (lib/util/crash.ts). */
  what?: string;
  /**
   * Which side reads delta bases cheaply when an incoming object is checked against its base: 'src' for a
   * push (the local repository sends), 'dst' (default) for a fetch.
   */
  local?: 'src' | 'dst';
  /** Called as objects are copied. */
  onProgress?: (done: number, total: number) => void;
}

export interface TransferReport {
  /** Meta objects (commits, trees, tags) written to the receiver. */
  metas: number;
  metaBytes: number;
  /** Tensor objects written to the receiver. */
  objects: number;
  /** Stored (encoded) bytes of those objects: exactly what their packs hold in the sender. */
  objectBytes: number;
  /** The last pack the objects went into (null when none were needed). */
  pack: PackInfo | null;
  /** Every pack published on the receiver, in order (whole packs of the sender first). */
  packs: PackInfo[];
  /** Objects left out by the filter (promised by the sender). */
  filtered: number;
  /**
   * Files (distinct contents, by sha256) of the walked trees that needed at least one object, and their
   * total size: what copying the changed files whole would have moved, the baseline for `objectBytes`.
   */
  files: number;
  fileBytes: number;
}

/** A report of a transfer that moved nothing (yet). */
export function emptyTransferReport(): TransferReport {
  return {
    metas: 0,
    metaBytes: 0,
    objects: 0,
    objectBytes: 0,
    pack: null,
    packs: [],
    filtered: 0,
    files: 0,
    fileBytes: 0,
  };
}

/** An ObjectFilter from globs (`*`, `?`, `[…]`; lib/merge/rules.ts): a file path or a tensor name matches. */
export function globFilter(globs: readonly string[]): ObjectFilter {
  const res = globs.map((g) => globToRegExp(g));
  const any = (s: string) => res.some((r) => r.test(s));
  return (p, tensors) => any(p) || (tensors !== null && tensors.some(any));
}

/** The objects of a tree that a filter wants (all of them without a filter). */
export function treeObjects(tree: Tree, filter: ObjectFilter | null | undefined, out: Set<string>): number {
  let left = 0;
  for (const [p, e] of Object.entries(tree.files)) {
    if (!filter || filter(p, null)) {
      out.add(e.skeleton);
      for (const s of e.segments) out.add(s.object);
      continue;
    }
    left++; // the skeleton
    e.segments.forEach((s, i) => {
      const names = e.tensors.filter((t) => t.segment === i).map((t) => t.name);
      if (filter(p, names)) out.add(s.object);
      else left++;
    });
  }
  return left;
}

interface WalkedMeta {
  id: string;
  bytes: Uint8Array;
  obj: MetaObject;
  /** The receiver lacks it (it must be written). */
  write: boolean;
}

/** Reads a meta object from whichever side has it (the receiver first: usually local). */
async function readMeta(src: TransferSide, dst: TransferSide, id: string, dstHas: boolean): Promise<Uint8Array> {
  if (dstHas) return dst.meta.get(id);
  return src.meta.get(id);
}

/** Runs `fn` over `items` with at most `limit` in flight; rejects with the first failure (after all settle). */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  const r = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const bad = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (bad) throw bad.reason;
}

/** An Error for a rejection reason (a non-Error one is wrapped). */
function asError(e: unknown): Error {
  return e instanceof Error ? e : new InternalError(`transfer failed: ${String(e)}`);
}

/** Meta objects looked up / read at once while walking (each is one request on a remote). */
const META_CONCURRENCY = 8;

/**
 * Walks meta objects from `tips`; see the module comment for the stopping rule. Up to META_CONCURRENCY
 * lookups and reads run at once (a remote answers each with a round trip); the order of the result does
 * not matter (writeOrder sorts it).
 */
async function walkMeta(
  src: TransferSide,
  dst: TransferSide,
  tips: readonly string[],
  complete: boolean,
): Promise<WalkedMeta[]> {
  const seen = new Set<string>();
  const out: WalkedMeta[] = [];
  const stack = [...tips];
  let running = 0;
  const st = { failure: null as Error | null };
  let wake: (() => void) | null = null;
  const one = async (id: string) => {
    const has = await dst.meta.has(id);
    if (has && !complete) return;
    const bytes = await readMeta(src, dst, id, has);
    let obj: MetaObject;
    try {
      obj = decodeMeta(bytes);
    } catch (e) {
      throw new CorruptObjectError(`meta object ${id}: ${(e as Error).message}`, { id });
    }
    out.push({ id, bytes, obj, write: !has });
    if (obj.type === 'commit') stack.push(obj.value.tree, ...obj.value.parents);
    else if (obj.type === 'tag') stack.push(obj.value.object);
  };
  for (;;) {
    if (st.failure) throw st.failure;
    const id = stack.pop();
    if (id === undefined) {
      if (running === 0) break;
      await new Promise<void>((r) => (wake = r));
      continue;
    }
    if (seen.has(id)) continue;
    seen.add(id);
    while (running >= META_CONCURRENCY) await new Promise<void>((r) => (wake = r));
    running++;
    void one(id)
      .catch((e: unknown) => {
        st.failure ??= asError(e);
      })
      .finally(() => {
        running--;
        const w = wake;
        wake = null;
        w?.();
      });
  }
  const failed = st.failure as Error | null; // set by the tasks that ran after the last check
  if (failed) throw failed;
  return out;
}

/** Commits ordered parents first (Kahn over the parent links inside the set); trees first, tags last. */
function writeOrder(metas: WalkedMeta[]): WalkedMeta[] {
  const trees = metas.filter((m) => m.obj.type === 'tree');
  const commits = metas.filter((m) => m.obj.type === 'commit');
  const tags = metas.filter((m) => m.obj.type === 'tag');
  const byId = new Map(commits.map((c) => [c.id, c]));
  const pending = new Map<string, number>();
  const children = new Map<string, string[]>();
  for (const c of commits) {
    const parents = c.obj.type === 'commit' ? c.obj.value.parents.filter((p) => byId.has(p)) : [];
    pending.set(c.id, new Set(parents).size);
    for (const p of new Set(parents)) children.set(p, [...(children.get(p) ?? []), c.id]);
  }
  const ready = commits.filter((c) => pending.get(c.id) === 0).map((c) => c.id);
  const ordered: WalkedMeta[] = [];
  while (ready.length) {
    const id = ready.shift()!;
    ordered.push(byId.get(id)!);
    for (const ch of children.get(id) ?? []) {
      const n = pending.get(ch)! - 1;
      pending.set(ch, n);
      if (n === 0) ready.push(ch);
    }
  }
  // Tags on tags: a tag after the tag it names.
  const tagIds = new Set(tags.map((t) => t.id));
  const tagOrdered: WalkedMeta[] = [];
  const placed = new Set<string>();
  for (let guard = 0; tagOrdered.length < tags.length && guard <= tags.length; guard++)
    for (const t of tags) {
      if (placed.has(t.id)) continue;
      const target = t.obj.type === 'tag' ? t.obj.value.object : '';
      if (!tagIds.has(target) || placed.has(target)) {
        tagOrdered.push(t);
        placed.add(t.id);
      }
    }
  return [...trees, ...ordered, ...tagOrdered];
}

/** The attributes to put (the store fills in id, storedSize, checksum and location itself). */
function putAttrs(a: StoredAttrs): ObjectAttrs {
  return { codec: a.codec, dtype: a.dtype, shape: a.shape, base: a.base, rawSize: a.rawSize, extra: a.extra };
}

/** Packs smaller than this are not sent whole: their objects join the per-object pack (fewer tiny packs). */
const WHOLE_PACK_MIN = 4 << 20;
/** Reads of a pack's gaps and of runs of small objects are at most this long. */
const SPAN_MAX = 8 << 20;
/** Bytes between objects (HDF5 structure) read together with the large object after them. */
const GAP_JOIN = 1 << 20;
/** Bytes of a pack read ahead of the receiver's writes (at least two spans, however large). */
const READ_WINDOW = 128 << 20;
/** Bytes of a pack waiting to be written on the receiver while the next spans are read and checked. */
const WRITE_AHEAD = 32 << 20;
/** Content-id checks (decodes) running at once; the reads wait when more are pending. */
const DECODES = 2;
/** The per-object path commits (publishes) a pack every this many bytes while the next one fills. */
const ROLL_BYTES = 256 << 20;

/** How much decoded-base memory a fetch keeps for incoming deltas (beyond it, a base is decoded again). */
function baseBudget(): number {
  return Math.max(64 << 20, Math.min(1 << 30, Math.floor(os.totalmem() / 8)));
}

/**
 * Checks incoming objects before they are published on the receiver:
 * - always: the stored bytes against their XXH3-128 checksum (unless the sender's store has just
 *   checked them on read), and the codec header against the id and base the index claims;
 * - in `decode` mode (fetch, clone: the sender is another repository): the content id, end to end, by
 *   decoding each object against its base (the receiver's copy, or the incoming one, verified first).
 *   Decoded bases that other incoming objects need are kept (up to a memory budget) until their last use.
 *
 * A push (`checksum` mode) does not decode: every object in the local store was verified when it got
 * there (encoded here from a tensor whose content id this process computed, or decoded on arrival by a
 * fetch), and its checksum, checked as it streams out, proves the bytes are still those. Decoding again
 * would only re-prove that, at the cost of most of a push's CPU; whoever reads the objects from the
 * remote later decodes and checks them on arrival anyway, so nothing unverified enters a repository.
 */
class ArrivalCheck {
  private readonly srcReader: ObjectReader;
  private readonly dstReader: ObjectReader;
  /** Verified decoded bases that incoming deltas still need; `holds` counts the decodes using one now. */
  private readonly kept = new Map<string, { t: Tensor; buf: Buffer | null; holds: number }>();
  private keptBytes = 0;
  /** Content-id checks under way, for ids other incoming objects use as their base. */
  private readonly decoding = new Map<string, Promise<Tensor>>();
  private pending = 0;
  private waiters: Array<() => void> = [];
  /** Decode outputs nobody holds any more, reused for the next ones (see `take`). */
  readonly scratch = new BufferReuse();
  constructor(
    private readonly src: ObjectStore,
    private readonly dst: ObjectStore,
    /** How many incoming objects still need each id as their base. */
    private readonly uses: Map<string, number>,
    readonly mode: 'decode' | 'checksum',
    private readonly preferSrc: boolean,
    private readonly budget = baseBudget(),
  ) {
    this.srcReader = new ObjectReader(src);
    this.dstReader = new ObjectReader(dst);
  }

  /** Resolves once at most `max` decodes are pending. */
  async room(max = DECODES): Promise<void> {
    while (this.pending > max) await new Promise<void>((r) => this.waiters.push(r));
  }

  /** Gives every reusable buffer back to the native pool (the transfer is over). */
  close(): void {
    for (const k of this.kept.values()) if (k.holds === 0 && k.buf) recycleLarge(k.buf);
    this.kept.clear();
    this.keptBytes = 0;
    this.scratch.close();
  }

  private damaged(id: string, e: unknown, pack?: string): CoralError {
    if (e instanceof CoralError && (e.code === ChecksumMismatchError.code || e.code === CorruptObjectError.code)) {
      const d = (e.data ?? {}) as { id?: string };
      if (d.id === id) return e;
    }
    const msg = e instanceof Error ? e.message : String(e);
    return new CorruptObjectError(`object ${id} from the sender is damaged: ${msg}`, {
      id,
      pack,
      cause: (e as { code?: string }).code,
    });
  }

  /**
   * Checks one object. `bytes` are its stored bytes; `checksum` is the one to check them against, or null
   * when the sender's store already did (ObjectStore.get). Rejects with an error naming the object.
   */
  async check(
    id: string,
    bytes: Uint8Array,
    attrs: { base?: string },
    checksum: string | null,
    pack?: string,
  ): Promise<void> {
    // A base other incoming objects use is registered before anything is awaited: a delta whose check
    // starts after this call (its span comes later in the read order) then waits for this check instead
    // of reading and decoding the base a second time.
    if (this.mode === 'decode' && (this.uses.get(id) ?? 0) > 0 && !this.decoding.has(id)) {
      let settle!: (t: Promise<Tensor>) => void;
      const gate = new Promise<Tensor>((resolve) => (settle = resolve));
      gate.catch(() => undefined);
      this.decoding.set(id, gate);
      const run = this.checkOne(id, bytes, attrs, checksum, pack, true);
      settle(run);
      try {
        await run;
      } finally {
        if (this.decoding.get(id) === gate) this.decoding.delete(id);
      }
      return;
    }
    await this.checkOne(id, bytes, attrs, checksum, pack, false);
  }

  /** `check`'s work; resolves to the decoded tensor in `decode` mode (null in `checksum` mode). */
  private async checkOne(
    id: string,
    bytes: Uint8Array,
    attrs: { base?: string },
    checksum: string | null,
    pack: string | undefined,
    shared: boolean,
  ): Promise<Tensor> {
    if (checksum !== null) {
      const sum =
        bytes.byteLength >= ASYNC_THRESHOLD_BYTES
          ? await callAsync(() => native.xxh3_128Async(bytes))
          : native.xxh3_128(bytes);
      if (sum !== checksum)
        throw new ChecksumMismatchError(
          `object ${id}${pack ? ` in pack ${pack}` : ''} from the sender is corrupted: its stored bytes hash to ${sum} ` +
            `but the recorded checksum is ${checksum}`,
          { id, pack },
        );
    }
    let h: ObjectHeader;
    try {
      h = inspectObject(bytes);
    } catch (e) {
      throw this.damaged(id, e, pack);
    }
    const base = attrs.base ?? '';
    if (h.id !== id || (h.baseId ?? '') !== base)
      throw new CorruptObjectError(
        `object ${id} from the sender is damaged: its header names object ${h.id}` +
          (h.baseId || base ? ` with base ${h.baseId ?? 'none'} (expected ${base || 'none'})` : ''),
        { id, pack },
      );
    if (this.mode === 'checksum') return null as unknown as Tensor;
    this.pending++;
    // The decoded tensor goes into a reused buffer when it is large (no fresh pages to fault in and zero);
    // `own` is that buffer while this check holds it.
    let own = h.nbytes >= REUSE_MIN ? this.scratch.take(h.nbytes) : null;
    const run = (async () => {
      const b = base ? await this.baseTensor(base) : null;
      let t: Tensor;
      try {
        t = await decode(bytes, b ? { tensor: b.t, id: base } : null, own ? { out: own.subarray(0, h.nbytes) } : {});
      } finally {
        b?.release();
      }
      if ((this.uses.get(id) ?? 0) > 0 && this.keptBytes + t.data.byteLength <= this.budget) {
        this.kept.set(id, { t, buf: own, holds: 0 });
        this.keptBytes += t.data.byteLength;
        own = null; // the kept entry owns it now
      }
      return t;
    })();
    try {
      return await run;
    } catch (e) {
      throw this.damaged(id, e, pack);
    } finally {
      // Nobody waits for the tensor and nobody keeps it: its buffer serves the next decode. (A shared one
      // that was not kept may still be in use by a delta that awaited it: the GC frees that one.)
      if (own && !shared) this.scratch.give(own);
      else if (own) own = null;
      this.pending--;
      const w = this.waiters;
      this.waiters = [];
      w.forEach((f) => f());
    }
  }

  /** One use of `id` as a base is done; after the last one (and its decode) its decoded tensor goes. */
  private used(id: string): void {
    const n = (this.uses.get(id) ?? 1) - 1;
    this.uses.set(id, n);
    this.drop(id);
  }

  private drop(id: string): void {
    const k = this.kept.get(id);
    if (!k || k.holds > 0 || (this.uses.get(id) ?? 0) > 0) return;
    this.kept.delete(id);
    this.keptBytes -= k.t.data.byteLength;
    if (k.buf) this.scratch.give(k.buf);
  }

  /** The decoded base `base`, held until `release()` (the decode that uses it is done). */
  private async baseTensor(base: string): Promise<{ t: Tensor; release: () => void }> {
    const d = this.decoding.get(base);
    if (d && !this.kept.has(base)) await d.catch(() => undefined);
    const k = this.kept.get(base);
    if (k) {
      k.holds++;
      this.used(base);
      return {
        t: k.t,
        release: () => {
          k.holds--;
          this.drop(base);
        },
      };
    }
    if (d) {
      const t = await d;
      this.used(base);
      return { t, release: () => undefined };
    }
    // Not verified in this transfer (or no longer kept): read the cheap side when it has it.
    const none = () => undefined;
    if (this.preferSrc && (await this.src.has(base))) return { t: await this.srcReader.tensor(base), release: none };
    if (await this.dst.has(base)) return { t: await this.dstReader.tensor(base), release: none };
    return { t: await this.srcReader.tensor(base), release: none };
  }
}

/** Decoded tensors at least this large go into reused buffers (smaller ones are cheap to allocate). */
const REUSE_MIN = 4 << 20;

/**
 * Large buffers a transfer reuses (decode outputs, pack spans): a buffer whose pages are already mapped
 * costs nothing to fill again, where a fresh one is faulted in and zeroed by the kernel page by page
 * (on a busy 2-core host, as much CPU as the decode itself). Holds at most `limit` bytes; `close` gives
 * them back to the native pool.
 */
class BufferReuse {
  private free: Buffer[] = [];
  private bytes = 0;
  constructor(private readonly limit = 512 << 20) {}

  /** A buffer of at least `n` bytes (a reused one no more than twice as large, else a new one). */
  take(n: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const c = this.free[i].length;
      if (c >= n && c <= 2 * n && (best < 0 || c < this.free[best].length)) best = i;
    }
    // A new one is made a power of two large: spans and decoded tensors of one family differ in size
    // (a 53 MiB span, a 64 MiB tensor), and a buffer that can serve any of them is reused instead of a
    // new one faulted in. The pages past `n` cost nothing until a larger need touches them.
    if (best < 0) return allocLarge(n <= REUSE_MIN ? n : 2 ** Math.ceil(Math.log2(n)));
    const b = this.free[best];
    this.free.splice(best, 1);
    this.bytes -= b.length;
    return b;
  }

  /** Takes `b` back for reuse; nothing may use it any more. */
  give(b: Buffer): void {
    if (this.bytes + b.length > this.limit) {
      // Make room by dropping the smallest ones first: large buffers are the costly ones to fault in.
      this.free.sort((x, y) => x.length - y.length);
      while (this.free.length && this.bytes + b.length > this.limit) {
        const x = this.free.shift()!;
        this.bytes -= x.length;
        recycleLarge(x);
      }
      if (this.bytes + b.length > this.limit) return recycleLarge(b);
    }
    this.free.push(b);
    this.bytes += b.length;
  }

  close(): void {
    for (const b of this.free) recycleLarge(b);
    this.free = [];
    this.bytes = 0;
  }
}

/** A byte range of a pack read at once, and the objects wholly inside it. */
interface Span {
  offset: number;
  length: number;
  objects: PackEntry[];
}

/**
 * Cuts a pack into spans in file order: each large object alone, runs of adjacent small objects and the
 * bytes between objects (HDF5 structure) in spans of at most SPAN_MAX. Null when the entries do not tile
 * the file sanely (an object without an offset, overlapping objects, an object past the end).
 */
function planSpans(pack: PackListing): Span[] | null {
  const objs = [...pack.entries].sort((a, b) => (a.offset ?? -1) - (b.offset ?? -1));
  const spans: Span[] = [];
  const gap = (from: number, to: number) => {
    for (let at = from; at < to; at += SPAN_MAX)
      spans.push({ offset: at, length: Math.min(SPAN_MAX, to - at), objects: [] });
  };
  let at = 0;
  for (const e of objs) {
    if (e.size === 0 || e.offset === null || e.offset < at || e.offset + e.size > pack.size) return null;
    // A large object's span starts with the small gap before it (its HDF5 header), so that each such span
    // can go to the receiver as one piece (an S3 part of its own, without a copy).
    if (e.size >= SPAN_MAX && e.offset - at <= GAP_JOIN) {
      spans.push({ offset: at, length: e.offset + e.size - at, objects: [e] });
      at = e.offset + e.size;
      continue;
    }
    gap(at, e.offset);
    const last = spans[spans.length - 1];
    if (
      last &&
      last.objects.length &&
      last.offset + last.length === e.offset &&
      last.length + e.size <= SPAN_MAX &&
      e.size < SPAN_MAX
    ) {
      last.length += e.size;
      last.objects.push(e);
    } else spans.push({ offset: e.offset, length: e.size, objects: [e] });
    at = e.offset + e.size;
  }
  gap(at, pack.size);
  return spans;
}

/** Packs of the sender that go over whole: large enough, and every object in them wanted, once. */
function wholePacks(
  src: ObjectStore,
  dst: ObjectStore,
  need: Map<string, StoredAttrs>,
): Array<{ pack: PackListing; spans: Span[] }> {
  const from = packSource(src);
  if (!from || !packSink(dst)) return [];
  const claimed = new Set<string>();
  const out: Array<{ pack: PackListing; spans: Span[] }> = [];
  for (const pack of from.packListing()) {
    if (pack.size < WHOLE_PACK_MIN || !pack.entries.length) continue;
    if (!pack.entries.every((e) => need.has(e.id) && !claimed.has(e.id))) continue;
    const spans = planSpans(pack);
    if (!spans) continue;
    for (const e of pack.entries) claimed.add(e.id);
    out.push({ pack, spans });
  }
  // Packs holding bases go before the packs whose deltas use them (a fetch then decodes each base once).
  const home = new Map<string, number>();
  out.forEach((p, i) => p.pack.entries.forEach((e) => home.set(e.id, i)));
  const deps = out.map((p, i) => {
    const d = new Set<number>();
    for (const e of p.pack.entries) {
      const h = e.base ? home.get(e.base) : undefined;
      if (h !== undefined && h !== i) d.add(h);
    }
    return d;
  });
  const ordered: number[] = [];
  const placed = new Set<number>();
  while (ordered.length < out.length) {
    const next = out.findIndex((_, i) => !placed.has(i) && [...deps[i]].every((j) => placed.has(j)));
    const pick = next >= 0 ? next : out.findIndex((_, i) => !placed.has(i)); // a cycle: any order is correct
    placed.add(pick);
    ordered.push(pick);
  }
  return ordered.map((i) => out[i]);
}

/** One span of a pack being read: the bytes land in `owner` (a reused buffer, perhaps larger). */
interface SpanRead {
  /** The pack it belongs to (an index into the feed's packs). */
  p: number;
  span: Span;
  owner: Buffer;
  bytes: Promise<Buffer>;
  /** With write-through: settles when every piece of the span is written to the receiver's import. */
  written: Promise<void> | null;
}

/**
 * The order in which a feed reads the spans of its packs. Each pack's spans stay in file order; the packs
 * are interleaved so that a span holding deltas is read right after the spans holding their bases:
 * 1. the last pack whose next span needs a base from these packs, every such base already read;
 * 2. else the first pack whose next span needs no base still to come (packs without deltas between them
 *    go one after the other, as listed, so they are published in that order as they complete);
 * 3. else (a cycle) the first pack not read yet.
 * A gap span (HDF5 structure, no object) goes with the object span after it. A base's decoded tensor is
 * then needed only until the delta read after it is checked, not until a whole later pack has arrived:
 * for a base pack and its fine-tune, two or three decoded tensors are live at once instead of a pack's
 * worth, each fresh one costing the kernel a fault and a zeroed page per 4 KiB.
 */
export function readOrder(items: ReadonlyArray<{ pack: PackListing; spans: Span[] }>): Array<[number, number]> {
  const inFeed = new Set<string>();
  for (const it of items) for (const e of it.pack.entries) inFeed.add(e.id);
  const read = new Set<string>();
  const at = items.map(() => 0);
  /** Pack p's next unit (its gap spans and the object span after them): where it ends, its objects. */
  const units = items.map(() => ({ from: -1, end: 0, objects: [] as PackEntry[] }));
  const unit = (p: number) => {
    const u = units[p];
    if (u.from === at[p]) return u;
    const spans = items[p].spans;
    let s = at[p];
    while (s < spans.length - 1 && !spans[s].objects.length) s++;
    u.from = at[p];
    u.end = s + 1;
    u.objects = spans[s].objects;
    return u;
  };
  const unitEnd = (p: number) => unit(p).end;
  const objectsOf = (p: number) => unit(p).objects;
  const ready = (p: number) => objectsOf(p).every((e) => !e.base || !inFeed.has(e.base) || read.has(e.base));
  const dependent = (p: number) => objectsOf(p).some((e) => e.base && inFeed.has(e.base));
  const open = (p: number) => at[p] < items[p].spans.length;
  const out: Array<[number, number]> = [];
  for (;;) {
    let pick = -1;
    for (let p = items.length - 1; p >= 0 && pick < 0; p--) if (open(p) && dependent(p) && ready(p)) pick = p;
    for (let p = 0; p < items.length && pick < 0; p++) if (open(p) && ready(p)) pick = p;
    for (let p = 0; p < items.length && pick < 0; p++) if (open(p)) pick = p;
    if (pick < 0) return out;
    for (const end = unitEnd(pick); at[pick] < end; at[pick]++) {
      for (const e of items[pick].spans[at[pick]].objects) read.add(e.id);
      out.push([pick, at[pick]]);
    }
  }
}

/**
 * Reads the spans of a list of packs in `readOrder`, a bounded window ahead of the consumer (READ_WINDOW
 * bytes, at least two spans), and on into the next pack while the current one is still being checked,
 * written and published: the downloads never wait for a pack's tail. Each pack is opened when its first
 * span is read and closed after its last.
 *
 * Write-through: when the receiver's import takes bytes at any position (a local pack file) and the
 * source hands them over piece by piece as they arrive (S3), each piece is written to the import the
 * moment it lands, while it is still in the CPU's cache, instead of the whole span later from memory
 * (on a busy host that copy into the page cache cost as much as the decode). The pieces go to the
 * import's temp file only: the pack is published after every object in it passed its checks, and an
 * import that fails is aborted, its file removed.
 */
class SpanFeed {
  private readonly order: Array<[number, number]>;
  private at = 0;
  private ahead = 0;
  private readonly queue: SpanRead[] = [];
  private readonly open: Array<Promise<PackBytes> | null>;
  private readonly pendingReads: number[];
  private readonly reads: Array<Array<Promise<unknown>>>;
  /** The receiver's import of each pack (made when its first span is read). */
  private readonly imports: Array<PackImport | null>;
  /** Imports handed to copyPacks (which then commits or aborts them). */
  private readonly taken: boolean[];
  constructor(
    private readonly src: PackSource,
    private readonly sink: PackSink,
    private readonly items: ReadonlyArray<{ pack: PackListing; spans: Span[] }>,
    private readonly scratch: BufferReuse,
  ) {
    this.order = readOrder(items);
    this.open = items.map(() => null);
    this.pendingReads = items.map((it) => it.spans.length);
    this.reads = items.map(() => []);
    this.imports = items.map(() => null);
    this.taken = items.map(() => false);
  }

  /** Pack `p`'s import on the receiver; the caller commits or aborts it. */
  importOf(p: number): PackImport {
    this.taken[p] = true;
    return this.importFor(p);
  }

  private importFor(p: number): PackImport {
    return (this.imports[p] ??= this.sink.importPack(this.items[p].pack.size, this.items[p].pack.entries));
  }

  /** Starts reads while the window has room. */
  private fill(): void {
    while (this.at < this.order.length) {
      const [p, s] = this.order[this.at];
      const span = this.items[p].spans[s];
      if (this.queue.length >= 2 && this.ahead + span.length > READ_WINDOW) return;
      this.at++;
      const rd = (this.open[p] ??= this.src.openPack(this.items[p].pack.name));
      const owner = span.length >= REUSE_MIN ? this.scratch.take(span.length) : Buffer.allocUnsafe(span.length);
      const buf = owner.subarray(0, span.length);
      const imp = this.importFor(p);
      let landed: ((from: number, to: number) => void) | undefined;
      let written: Promise<void> | null = null;
      const pieces: Array<Promise<void>> = [];
      let through = 0;
      if (imp.writeAt) {
        const writeAt = imp.writeAt.bind(imp);
        landed = (from, to) => {
          through += to - from;
          const w = writeAt(span.offset + from, buf.subarray(from, to));
          w.catch(() => undefined);
          pieces.push(w);
        };
      }
      const bytes = rd
        .then((r) => r.read(span.offset, buf, landed))
        .then(() => buf)
        .finally(() => {
          if (--this.pendingReads[p] === 0) void this.closePack(p);
        });
      bytes.catch(() => undefined);
      if (imp.writeAt) {
        const writeAt = imp.writeAt.bind(imp);
        // A source that does not hand pieces over (a local pack) filled the span at once: write it whole.
        written = bytes.then(async () => {
          if (through === 0) await writeAt(span.offset, buf);
          else if (through !== span.length)
            throw new InternalError(`pack read handed over ${through} of ${span.length} bytes`);
          await Promise.all(pieces);
        });
        written.catch(() => undefined);
      }
      this.reads[p].push(bytes);
      this.queue.push({ p, span, owner, bytes, written });
      this.ahead += span.length;
    }
  }

  private async closePack(p: number): Promise<void> {
    const rd = this.open[p];
    this.open[p] = null;
    if (rd) await (await rd.catch(() => null))?.close().catch(() => undefined);
  }

  /** The next span in the read order, or null after the last one. */
  next(): SpanRead | null {
    this.fill();
    const r = this.queue.shift() ?? null;
    if (r) this.ahead -= r.span.length;
    return r;
  }

  /**
   * Stops reading (after a failure). Resolves once the writes of spans read but not consumed have
   * settled and the imports nobody took are aborted; packs still open are closed once their reads settle.
   */
  async stop(): Promise<void> {
    this.at = this.order.length;
    this.open.forEach((rd, p) => {
      if (rd) void Promise.allSettled(this.reads[p]).then(() => this.closePack(p));
    });
    // Spans read but not consumed may still be writing into their import: let them settle first.
    await Promise.allSettled(this.queue.map((r) => r.written ?? r.bytes));
    await Promise.all(
      this.imports.map(async (imp, p) => {
        if (!imp || this.taken[p]) return;
        this.taken[p] = true;
        await imp.abort();
      }),
    );
  }
}

/** A pack being copied by copyPacks. */
interface PackCopy {
  imp: PackImport;
  checks: Array<Promise<void>>;
  /** Its writes, in order; `writing` bytes of them are still pending (without write-through). */
  writes: Promise<void>;
  writing: number;
  /** Spans not consumed yet. */
  left: number;
  committed: boolean;
}

/**
 * Sends whole packs as they are: their bytes are read in spans (by `feed`, a bounded window ahead, in its
 * read order across the packs), each object is checked as its span arrives (in that order, so a base's
 * check has started before any delta's that needs it), and the spans stream into the receivers' imports
 * while the checks run. The packs are published in their listed order (bases first), each once every
 * object in it passed and its bytes are written, while the later ones are still being read; on any
 * failure every import not yet published is aborted, so nothing more becomes visible.
 */
async function copyPacks(
  feed: SpanFeed,
  items: ReadonlyArray<{ pack: PackListing; spans: Span[] }>,
  check: ArrivalCheck,
  beforeCommit: () => void,
  progress: (objects: number) => void,
  committed: (p: number, info: PackInfo) => void,
): Promise<void> {
  const copies: Array<PackCopy | null> = items.map(() => null);
  let failed = null as Error | null;
  let commits: Promise<void> = Promise.resolve();
  let nextCommit = 0;
  const commitReady = () => {
    while (nextCommit < items.length && copies[nextCommit]?.left === 0) {
      const p = nextCommit++;
      const c = copies[p]!;
      commits = commits.then(async () => {
        await c.writes;
        await Promise.all(c.checks);
        if (failed) return;
        try {
          beforeCommit();
          const info = await c.imp.commit();
          c.committed = true;
          committed(p, info);
        } catch (e) {
          failed ??= asError(e);
        }
      });
    }
  };
  try {
    for (;;) {
      const r = feed.next();
      if (!r) break;
      const c = (copies[r.p] ??= {
        imp: feed.importOf(r.p),
        checks: [],
        writes: Promise.resolve(),
        writing: 0,
        left: items[r.p].spans.length,
        committed: false,
      });
      const buf = await r.bytes;
      const giveBack = () => {
        if (r.owner.length >= REUSE_MIN) check.scratch.give(r.owner);
      };
      if (failed) {
        giveBack();
        throw failed;
      }
      // The span's memory is reused once its write and every check of it are done.
      let holds = r.span.objects.length + 1;
      const release = () => {
        if (--holds === 0) giveBack();
      };
      for (const e of r.span.objects) {
        const bytes = buf.subarray(e.offset! - r.span.offset, e.offset! - r.span.offset + e.size);
        c.checks.push(
          check
            .check(e.id, bytes, e, e.checksum, items[r.p].pack.name)
            .then(
              () => progress(1),
              (err: unknown) => {
                failed ??= asError(err);
              },
            )
            .finally(release),
        );
      }
      if (r.written) {
        // Written through as it arrived (see SpanFeed): the span is released once those writes are done.
        const w = r.written;
        c.writes = c.writes.then(() =>
          w.then(release, (e: unknown) => {
            failed ??= asError(e);
            release();
          }),
        );
      } else {
        // Writes go in order, one at a time, behind the reads: at most WRITE_AHEAD bytes wait for them.
        while (c.writing > WRITE_AHEAD) await c.writes;
        const n = buf.length;
        c.writing += n;
        c.writes = c.writes.then(async () => {
          if (failed) return release();
          try {
            await c.imp.write(buf, release);
          } catch (e) {
            failed ??= asError(e);
          } finally {
            c.writing -= n;
          }
        });
      }
      c.left--;
      commitReady();
      await check.room();
    }
    if (nextCommit !== items.length) throw new InternalError(`${items.length - nextCommit} packs were not read whole`);
    await commits;
    if (failed) throw failed;
  } catch (e) {
    failed ??= asError(e);
    await feed.stop();
    await commits;
    for (const c of copies) {
      if (!c) continue;
      await c.writes;
      if (!c.committed) await c.imp.abort();
    }
    for (const c of copies) if (c) await Promise.all(c.checks);
    throw e;
  }
}

/** Files of the walked trees that needed at least one of `need`'s objects (one per content), and their size. */
function changedFiles(metas: WalkedMeta[], need: Map<string, unknown>): { files: number; fileBytes: number } {
  const seen = new Set<string>();
  let fileBytes = 0;
  for (const m of metas) {
    if (m.obj.type !== 'tree') continue;
    for (const e of Object.values(m.obj.value.files)) {
      if (seen.has(e.sha256)) continue;
      if (!need.has(e.skeleton) && !e.segments.some((s) => need.has(s.object))) continue;
      seen.add(e.sha256);
      fileBytes += e.size;
    }
  }
  return { files: seen.size, fileBytes };
}

/**
 * Moves what `dst` lacks of everything reachable from `tips` (commit or tag ids in `src`): tensor objects
 * (in packs), then meta objects. The caller moves refs afterwards.
 */
export async function transfer(
  src: TransferSide,
  dst: TransferSide,
  tips: readonly string[],
  opts: TransferOptions = {},
): Promise<TransferReport> {
  const what = opts.what ?? 'transfer';
  const metas = await walkMeta(src, dst, tips, !!opts.complete);
  const filter = opts.complete ? null : opts.filter;

  // Tensor objects named by the trees walked, minus what the receiver has.
  const named = new Set<string>();
  let filtered = 0;
  for (const m of metas) if (m.obj.type === 'tree') filtered += treeObjects(m.obj.value, filter, named);
  const need = new Map<string, StoredAttrs>();
  const order: string[] = [];
  const baseUses = new Map<string, number>();
  // Depth-first so every base is placed before the deltas made from it.
  const visit = async (id: string): Promise<void> => {
    if (need.has(id) || (await dst.objects.has(id))) return;
    let a: StoredAttrs;
    try {
      a = await src.objects.stat(id);
    } catch (e) {
      if (e instanceof ObjectNotFoundError)
        throw new ObjectNotFoundError(
          `object ${id} is needed by the receiver but the sender does not have it${
            src.objects.kind === 'local-pack' ? ' (a partial clone? run `coral fetch --all-objects` first)' : ''
          }`,
          { id },
        );
      throw e;
    }
    need.set(id, a);
    if (a.base) {
      baseUses.set(a.base, (baseUses.get(a.base) ?? 0) + 1);
      await visit(a.base);
    }
    order.push(id);
  };
  for (const id of named) await visit(id);

  const report: TransferReport = { ...emptyTransferReport(), filtered, ...changedFiles(metas, need) };
  if (order.length) {
    const mode = opts.local === 'src' ? 'checksum' : 'decode';
    const check = new ArrivalCheck(src.objects, dst.objects, baseUses, mode, opts.local === 'src');
    let done = 0;
    const progress = (n: number) => opts.onProgress?.((done += n), order.length);
    let committing = false;
    const beforeCommit = () => {
      if (!committing) crashPoint(`${what}:before-pack`);
      committing = true;
    };
    const published = (info: PackInfo | null) => {
      if (!info) return;
      report.packs.push(info);
      report.pack = info;
    };
    // 1. Whole packs of the sender that the receiver wants entirely, as they are.
    //    A push sends two at a time (each upload's tail, the last parts and the multipart completion,
    //    overlaps the other's bytes), each copier reading its own pack.
    //    A fetch reads every pack through one feed, interleaved so that each delta's span comes right
    //    after its base's (readOrder: a decoded base is freed as soon as its deltas are checked, not
    //    held until their pack arrives), and publishes the packs bases first as each completes.
    const whole = wholePacks(src.objects, dst.objects, need);
    const sentWhole = new Set<string>();
    const from = packSource(src.objects);
    const into = packSink(dst.objects);
    const shared = mode === 'decode' && from && into ? new SpanFeed(from, into, whole, check.scratch) : null;
    const sent = (item: (typeof whole)[number], info: PackInfo) => {
      published(info);
      for (const e of item.pack.entries) {
        sentWhole.add(e.id);
        report.objects++;
        report.objectBytes += e.size;
      }
    };
    if (shared) await copyPacks(shared, whole, check, beforeCommit, progress, (p, info) => sent(whole[p], info));
    else {
      let nextPack = 0;
      const copier = async () => {
        while (nextPack < whole.length) {
          const item = whole[nextPack++];
          const feed = new SpanFeed(from!, into!, [item], check.scratch);
          await copyPacks(feed, [item], check, beforeCommit, progress, (_, info) => sent(item, info));
        }
      };
      const copiers = Array.from({ length: Math.min(2, whole.length) }, copier);
      const copied = await Promise.allSettled(copiers);
      const copyFailed = copied.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (copyFailed) throw copyFailed.reason;
    }
    // 2. Everything else, object by object (reads overlapped with checks and writes), into packs that are
    //    published every ROLL_BYTES while the next one fills.
    const rest = order.filter((id) => !sentWhole.has(id));
    let tx = null as PackTransaction | null;
    let txBytes = 0;
    let txChecks: Array<Promise<void>> = [];
    let commitRun: Promise<void> = Promise.resolve();
    let failed = null as Error | null;
    const flush = async () => {
      const t = tx;
      const cs = txChecks;
      tx = null;
      txBytes = 0;
      txChecks = [];
      if (!t) return;
      await commitRun;
      commitRun = (async () => {
        try {
          await Promise.all(cs);
          if (failed) throw failed;
          beforeCommit();
          published(await t.commit());
        } catch (e) {
          await t.abort();
          failed ??= asError(e);
        }
      })();
    };
    const gets: Array<Promise<StoredObject>> = [];
    let nextGet = 0;
    let aheadBytes = 0;
    const fill = () => {
      while (nextGet < rest.length && (gets.length === 0 || aheadBytes <= READ_WINDOW)) {
        const id = rest[nextGet++];
        const g = src.objects.get(id); // checksum verified by the store
        g.catch(() => undefined);
        gets.push(g);
        aheadBytes += need.get(id)!.storedSize;
      }
    };
    try {
      for (const id of rest) {
        fill();
        const { bytes, attrs } = await gets.shift()!;
        aheadBytes -= need.get(id)!.storedSize;
        if (failed) throw failed;
        const c = check.check(id, bytes, attrs, null).then(
          () => progress(1),
          (err: unknown) => {
            failed ??= asError(err);
          },
        );
        tx ??= dst.objects.beginWrite();
        txChecks.push(c);
        if (await tx.put(id, bytes, putAttrs(attrs))) {
          report.objects++;
          report.objectBytes += bytes.byteLength;
          txBytes += bytes.byteLength;
        }
        await check.room();
        if (txBytes >= ROLL_BYTES) await flush();
      }
      await flush();
      await commitRun;
      if (failed) throw failed;
      // Every check has settled: nothing uses the reused buffers any more. (After a failure they are left
      // to the GC: a decode that was still running may hold one.)
      check.close();
    } catch (e) {
      await tx?.abort();
      await commitRun;
      throw e;
    }
    crashPoint(`${what}:after-pack`);
  }

  // Trees (all independent), then commits in waves (each after its parents), then tags in order; up to
  // META_CONCURRENCY writes at once within a wave, since each is a round trip on a remote.
  const ordered = writeOrder(metas.filter((x) => x.write));
  const put = async (m: WalkedMeta) => {
    await dst.meta.put(m.bytes);
    report.metas++;
    report.metaBytes += m.bytes.byteLength;
  };
  const trees = ordered.filter((m) => m.obj.type === 'tree');
  await forEachLimit(trees, META_CONCURRENCY, put);
  if (trees.length < ordered.length) crashPoint(`${what}:after-trees`);
  const commits = ordered.filter((m) => m.obj.type === 'commit');
  for (let i = 0; i < commits.length;) {
    const wave: WalkedMeta[] = [];
    while (i < commits.length) {
      const c = commits[i];
      const parents = c.obj.type === 'commit' ? c.obj.value.parents : [];
      if (wave.length && parents.some((p) => wave.some((w) => w.id === p))) break;
      wave.push(c);
      i++;
    }
    await forEachLimit(wave, META_CONCURRENCY, put);
  }
  for (const m of ordered) if (m.obj.type === 'tag') await put(m);
  crashPoint(`${what}:after-meta`);
  return report;
}
