/**
 * Partial clones: the object store of a repository whose remote promises the objects the clone left out
 * (`clone --filter`). Reads of a missing object fetch it from the remote on demand, verify it (checksum,
 * then a decode against its base, which checks the content id) and store it locally, so checkout, diff
 * and show work on any commit; everything else (`has`, writes, gc, fsck) sees the local store as it is.
 *
 * Objects fetched on demand go into one pack transaction per store instance (a command), published when
 * it holds FLUSH_BYTES or when the store closes, rather than one pack per object: a checkout of a file
 * with 500 tensors adds one pack, not 500. Until then they are served from memory; a process killed
 * before the publish loses only the cache (the objects are fetched again next time).
 * `coral fetch --all-objects` fetches every promised object at once and turns the clone into a full one.
 *
 * @example
 * const store = new PromisorStore(await openLocalStore('.coral'), origin);
 * await store.get(id);               // fetched from origin if it is not here yet
 * isPromised(store)                  // 'origin'
 */
import { decode } from '../codec';
import { CorruptObjectError, ObjectNotFoundError } from '../errors';
import { ObjectReader } from '../odb/objects';
import type {
  ObjectStore,
  PackTransaction,
  RepackOptions,
  RepackResult,
  StoredAttrs,
  StoredObject,
  StoreProblem,
} from '../store/object-store';
import { packSource, type PackBytes, type PackListing } from '../store/pack-stream';
import type { RemoteConfig } from './config';
import type { RemoteRepo } from './transport';

export class PromisorStore implements ObjectStore {
  readonly kind: string;
  private remote: Promise<RemoteRepo> | null = null;
  private readonly inflight = new Map<string, Promise<StoredObject>>();
  private readonly reader: ObjectReader;
  /** Fetched objects not yet published locally, served from memory until the pack is committed. */
  private readonly pending = new Map<string, StoredObject>();
  private pendingBytes = 0;
  private tx: PackTransaction | null = null;
  /** Serialises writes into the pending transaction. */
  private chain: Promise<void> = Promise.resolve();
  /** Objects fetched on demand by this instance. */
  fetched = 0;
  /** Pending bytes above which the fetched objects are published (256 MiB). */
  static readonly FLUSH_BYTES = 256 * 1024 * 1024;

  constructor(
    /** The local store (what the repository really holds). */
    readonly inner: ObjectStore,
    /** The remote that promises the missing objects. */
    readonly promisor: RemoteConfig,
  ) {
    this.kind = inner.kind;
    this.reader = new ObjectReader(this);
  }

  has(id: string): Promise<boolean> {
    return this.inner.has(id);
  }

  async get(id: string): Promise<StoredObject> {
    try {
      return await this.inner.get(id);
    } catch (e) {
      if (!(e instanceof ObjectNotFoundError)) throw e;
    }
    return this.pending.get(id) ?? (await this.fetchMissing(id));
  }

  async stat(id: string): Promise<StoredAttrs> {
    try {
      return await this.inner.stat(id);
    } catch (e) {
      if (!(e instanceof ObjectNotFoundError)) throw e;
    }
    return (this.pending.get(id) ?? (await this.fetchMissing(id))).attrs;
  }

  /** Publishes the objects fetched so far (one pack). Called by close(). */
  async flush(): Promise<void> {
    const run = this.chain.then(async () => {
      const tx = this.tx;
      this.tx = null;
      if (tx) await tx.commit();
      this.pending.clear();
      this.pendingBytes = 0;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  beginWrite(): PackTransaction {
    return this.inner.beginWrite();
  }
  list(): AsyncIterableIterator<StoredAttrs> {
    return this.inner.list();
  }
  refresh(): Promise<void> {
    return this.inner.refresh();
  }
  repack(keep: (id: string) => boolean, opts?: RepackOptions): Promise<RepackResult> {
    return this.inner.repack(keep, opts);
  }
  verify(): Promise<StoreProblem[]> {
    return this.inner.verify();
  }
  /** Whole packs of the local store (lib/store/pack-stream.ts): what a push can send as it is. */
  packListing(): PackListing[] {
    return packSource(this.inner)?.packListing() ?? [];
  }
  openPack(name: string): Promise<PackBytes> {
    const s = packSource(this.inner);
    if (!s) return Promise.reject(new ObjectNotFoundError(`pack ${name} is not in this store`, { pack: name }));
    return s.openPack(name);
  }
  /** `coral fsck --rebuild-index` on the local store. */
  async rebuildIndex(): Promise<unknown> {
    const s = this.inner as { rebuildIndex?: () => Promise<unknown> };
    return s.rebuildIndex ? s.rebuildIndex() : undefined;
  }

  async close(): Promise<void> {
    const r = this.remote;
    this.remote = null;
    try {
      await Promise.allSettled([...this.inflight.values()]);
      await this.flush();
      if (r) await (await r.catch(() => null))?.close();
    } finally {
      await this.tx?.abort();
      await this.inner.close();
    }
  }

  private open(): Promise<RemoteRepo> {
    if (!this.remote) {
      const token = process.env.CORAL_TOKEN || this.promisor.token;
      // The transports (node:http, node:https, the S3 client) load on the first miss, not with the store.
      const p = import('./open').then(({ openRemote }) =>
        openRemote(this.promisor.url, {
          ...(this.promisor.endpoint ? { endpoint: this.promisor.endpoint } : {}),
          ...(token ? { token } : {}),
        }),
      );
      p.catch(() => {
        if (this.remote === p) this.remote = null; // retry on the next miss
      });
      this.remote = p;
    }
    return this.remote;
  }

  private fetchMissing(id: string): Promise<StoredObject> {
    let p = this.inflight.get(id);
    if (!p) {
      p = this.fetchOne(id).finally(() => this.inflight.delete(id));
      this.inflight.set(id, p);
    }
    return p;
  }

  private async fetchOne(id: string): Promise<StoredObject> {
    const remote = await this.open();
    let obj: StoredObject;
    try {
      obj = await remote.objects.get(id); // checksum verified by the remote's store
    } catch (e) {
      if (e instanceof ObjectNotFoundError)
        throw new ObjectNotFoundError(
          `object ${id} is not in this partial clone and its promisor remote '${this.promisor.name}' (${this.promisor.url}) does not have it either`,
          { id, remote: this.promisor.name },
        );
      throw e;
    }
    const { bytes, attrs } = obj;
    try {
      // The base comes through this store too: fetched on demand when it is missing as well.
      const base = attrs.base ? { tensor: await this.reader.tensor(attrs.base), id: attrs.base } : null;
      await decode(bytes, base);
    } catch (e) {
      if (e instanceof ObjectNotFoundError) throw e;
      throw new CorruptObjectError(
        `object ${id} from remote '${this.promisor.name}' is damaged: ${(e as Error).message}`,
        { id, remote: this.promisor.name },
      );
    }
    const local: StoredObject = { bytes, attrs: { ...attrs, location: undefined } };
    const { codec, dtype, shape, base, rawSize, extra } = attrs;
    const run = this.chain.then(async () => {
      this.tx ??= this.inner.beginWrite();
      await this.tx.put(id, bytes, { codec, dtype, shape, base, rawSize, extra });
      this.pending.set(id, local);
      this.pendingBytes += bytes.byteLength;
    });
    this.chain = run.catch(() => undefined);
    await run;
    this.fetched++;
    if (this.pendingBytes >= PromisorStore.FLUSH_BYTES) await this.flush();
    return local;
  }
}

/** The remote promising a store's missing objects (a partial clone), or null. */
export function isPromised(store: ObjectStore): string | null {
  return store instanceof PromisorStore ? store.promisor.name : null;
}

/** What a repository holds locally: the store under a partial clone's promisor, else the store itself. */
export function localObjects(store: ObjectStore): ObjectStore {
  return store instanceof PromisorStore ? store.inner : store;
}
