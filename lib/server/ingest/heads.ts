/**
 * Series heads: the decoded delta base each checkpoint series will ask for next, kept in memory by the
 * server between uploads.
 *
 * A training job uploads one version after another to one path; each tensor of version k+1 is delta
 * encoded against the same tensor of version k (the branch head's), or, once k sits at the chain-depth
 * bound, against k's own base (lib/ingest/bases.ts resolveDepth). Decoding that base from the store
 * costs its whole chain (up to `core.maxChainDepth` decodes of the tensor's size) on every upload, while
 * the server had the exact bytes in hand when version k arrived. So after an upload is published, each
 * of its new tensors that can serve as the next base is kept as the head of its series
 * (repository, path, tensor name), replacing the previous head; the next upload's base lookup
 * (`ObjectReader.tensor`, by content id) finds it without reading the store.
 *
 * Memory: heads are bounded in bytes for the whole process (`limitBytes`), the budget the per-repository
 * base cache had before (it kept remembered leaves of small tensors only). A new head replaces its own
 * series' head; it may push out heads of other paths (least recently used first), never those of its
 * own path: a file larger than the budget keeps a fixed subset of its tensors hot instead of each one
 * evicting the next. A head handed out as a delta base is reference counted and given back to the
 * buffer pool only when the last user released it, so a replaced head never leaves memory while an
 * encode still reads it, and never lingers until a GC once nobody does.
 *
 * @example
 * const heads = new SeriesHeads(64 << 20);
 * const reader = new HeadReader(repo.objects, heads);
 * // reader.tensor(id) answers from the heads when it can; heads.install(...) after the upload is published
 */
import { ObjectReader } from '../../odb/objects';
import { recycleLarge } from '../../native';
import type { ObjectStore } from '../../store/object-store';
import type { Tensor } from '../../tensor/tensor';

/** One tensor buffer the heads know about. */
interface Held {
  t: Tensor;
  /** Users that took it as a base (`take`) and have not released it. */
  refs: number;
  /** Series whose head it is: counted in `bytes` while more than 0. */
  slots: number;
}

interface Slot {
  key: string;
  id: string;
  held: Held;
  /** `repo \0 path`: heads of the same file never push out one another. */
  file: string;
}

/** Heads per content id and per series, bounded in bytes (see the module comment). */
export class SeriesHeads {
  /** Series (repo \0 path \0 name) -> head; Map order is least recently used first. */
  private readonly slots = new Map<string, Slot>();
  /** Content id -> a slot holding it (ids name bytes: any slot with the id will do). */
  private readonly byId = new Map<string, Slot>();
  /** Buffers known here, by their ArrayBuffer. */
  private readonly held = new Map<ArrayBufferLike, Held>();
  /** Bytes of heads (a replaced head still being read is its reader's memory, not counted here). */
  bytes = 0;
  /** Lookups answered from the heads / not. */
  readonly stats = { hits: 0, misses: 0, installed: 0, refused: 0 };

  constructor(readonly limitBytes: number) {}

  /** The head with this content id, taken as a base (`give` it back when done), or undefined. */
  take(id: string): Tensor | undefined {
    const s = this.byId.get(id);
    if (!s) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    s.held.refs++;
    // Recently used: last to be pushed out.
    this.slots.delete(s.key);
    this.slots.set(s.key, s);
    return s.held.t;
  }

  /** Gives back one reference from `take` or `install`. */
  give(t: Tensor): void {
    const h = this.held.get(t.data.buffer);
    if (!h || h.refs === 0) return;
    h.refs--;
    this.maybeFree(h);
  }

  /**
   * Makes `t` (content id `id`) the head of series (repo, path, name), replacing its previous head.
   * False when it is that series' head already (under another buffer), or does not fit the budget even
   * after pushing out heads of other files.
   * `t` must be a buffer nobody writes again. On success the caller holds one reference (`give` it
   * back once done reading `t`), so a later upload replacing this head does not free it under it.
   */
  install(repo: string, path: string, name: string, id: string, t: Tensor): boolean {
    const key = `${repo}\0${path}\0${name}`;
    const file = `${repo}\0${path}`;
    const old = this.slots.get(key);
    if (old?.id === id) return false;
    const existing = this.held.get(t.data.buffer);
    const extra = existing && existing.slots > 0 ? 0 : t.data.byteLength;
    // What dropping a slot takes off the budget: its bytes when no other series has the buffer. A
    // dropped head still being read (a delta base of an upload in flight) is that upload's memory
    // until it is done, as any base it decoded would be, and is freed then.
    const frees = (s: Slot | undefined) => (s && s.held.slots === 1 ? s.held.t.data.byteLength : 0);
    // Room: the replaced head goes, then heads of other files, least recently used first; nothing is
    // pushed out when even that would not make room.
    let room = this.limitBytes - this.bytes + frees(old);
    if (room < extra) {
      const others = [...this.slots.values()].filter((s) => s.file !== file);
      if (room + others.reduce((n, s) => n + frees(s), 0) < extra) {
        this.stats.refused++;
        return false;
      }
      for (const s of others) {
        if (room >= extra) break;
        room += frees(s);
        this.drop(s);
      }
    }
    if (old) this.drop(old);
    const h = existing ?? { t, refs: 0, slots: 0 };
    this.held.set(t.data.buffer, h);
    if (h.slots++ === 0) this.bytes += t.data.byteLength;
    h.refs++;
    const s: Slot = { key, id, held: h, file };
    this.slots.set(key, s);
    this.byId.set(id, s);
    this.stats.installed++;
    return true;
  }

  private drop(s: Slot): void {
    this.slots.delete(s.key);
    if (this.byId.get(s.id) === s) {
      this.byId.delete(s.id);
      // Another series may hold the same bytes under the same id.
      for (const o of this.slots.values())
        if (o.id === s.id) {
          this.byId.set(s.id, o);
          break;
        }
    }
    if (--s.held.slots === 0) this.bytes -= s.held.t.data.byteLength;
    this.maybeFree(s.held);
  }

  private maybeFree(h: Held): void {
    if (h.slots > 0 || h.refs > 0) return;
    this.held.delete(h.t.data.buffer);
    // Nobody reads it any more: its pages go back to the native pool now.
    recycleLarge(h.t.data);
  }
}

/**
 * The object reader of one upload: base lookups are answered from the series heads first (its own cache
 * is off: the heads are the server's cache of decoded tensors, within their budget). It counts the heads
 * it took and the tensors it made heads, and gives every reference back in `close()`, once the upload's
 * pipeline is done, whatever happened (an aborted upload leaks no reference).
 */
export class HeadReader extends ObjectReader {
  /** References this upload holds, by buffer. */
  private readonly refs = new Map<ArrayBufferLike, { t: Tensor; n: number }>();
  /** This upload's own tensors that became heads: the pipeline's releases of them are no-ops. */
  private readonly own = new Set<ArrayBufferLike>();

  constructor(
    store: ObjectStore,
    readonly heads: SeriesHeads,
  ) {
    super(store, 0, { cacheBases: false });
  }

  private hold(t: Tensor): void {
    const r = this.refs.get(t.data.buffer);
    if (r) r.n++;
    else this.refs.set(t.data.buffer, { t, n: 1 });
  }

  override async tensor(id: string, opts: { cacheBases?: boolean } = {}): Promise<Tensor> {
    const t = this.heads.take(id);
    if (!t) return super.tensor(id, opts);
    this.hold(t);
    return t;
  }

  /** Makes `t`, a tensor of this upload, the head of its series (SeriesHeads.install). */
  adopt(repo: string, path: string, name: string, id: string, t: Tensor): boolean {
    if (!this.heads.install(repo, path, name, id, t)) return false;
    this.own.add(t.data.buffer);
    this.hold(t);
    return true;
  }

  override release(t: Tensor | null | undefined): void {
    if (!t) return;
    if (this.own.has(t.data.buffer)) return;
    const r = this.refs.get(t.data.buffer);
    if (!r) return super.release(t);
    if (--r.n === 0) this.refs.delete(t.data.buffer);
    this.heads.give(t);
  }

  /** The upload is done reading: every reference it holds goes back. */
  close(): void {
    for (const { t, n } of this.refs.values()) for (let i = 0; i < n; i++) this.heads.give(t);
    this.refs.clear();
    this.own.clear();
  }
}
