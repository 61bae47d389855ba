/**
 * MemoryStore: the ObjectStore contract held in process memory. Used by tests
 * and as the reference behaviour the conformance suite checks every backend
 * against. Bytes are copied on put and on get, so callers can never alter
 * stored objects; checksums are computed and verified like on disk.
 *
 * @example
 * const store = new MemoryStore();
 * const tx = store.beginWrite();
 * await tx.put('abc', bytes, { codec: 'raw', dtype: 'U8', shape: [bytes.length], rawSize: bytes.length });
 * await tx.commit();
 */
import { ChecksumMismatchError, InvalidArgumentError, ObjectNotFoundError, invalidParameter } from '../errors';
import { native } from '../native';
import {
  checkId,
  normalizeAttrs,
  type ObjectAttrs,
  type ObjectStore,
  type PackInfo,
  type PackTransaction,
  type RepackOptions,
  type RepackResult,
  type StoredAttrs,
  type StoredObject,
  type StoreProblem,
} from './object-store';

interface Held {
  bytes: Uint8Array;
  attrs: StoredAttrs;
  /** Last write or reuse (ms since epoch): repack's grace period looks at it. */
  touchedMs: number;
}

function copyAttrs(a: StoredAttrs): StoredAttrs {
  return { ...a, shape: a.shape.slice(), extra: { ...a.extra } };
}

export class MemoryStore implements ObjectStore {
  readonly kind = 'memory';
  private objects = new Map<string, Held>();
  private packCounter = 0;
  private closed = false;

  private checkOpen(): void {
    if (this.closed) throw new InvalidArgumentError('memory object store is closed');
  }

  async has(id: string): Promise<boolean> {
    this.checkOpen();
    return this.objects.has(id);
  }

  private held(id: string): Held {
    checkId(id);
    const h = this.objects.get(id);
    if (!h) throw new ObjectNotFoundError(`object ${id} is not in the memory store`, { id });
    return h;
  }

  async stat(id: string): Promise<StoredAttrs> {
    this.checkOpen();
    return copyAttrs(this.held(id).attrs);
  }

  async get(id: string): Promise<StoredObject> {
    this.checkOpen();
    const h = this.held(id);
    const sum = native.xxh3_128(h.bytes);
    if (sum !== h.attrs.checksum)
      throw new ChecksumMismatchError(
        `object ${id} in the memory store is corrupted: stored bytes hash to ${sum} but the recorded checksum is ${h.attrs.checksum}`,
        { id, pack: h.attrs.location },
      );
    return { bytes: Buffer.from(h.bytes), attrs: copyAttrs(h.attrs) };
  }

  async *list(): AsyncIterableIterator<StoredAttrs> {
    this.checkOpen();
    for (const h of [...this.objects.values()]) yield copyAttrs(h.attrs);
  }

  async refresh(): Promise<void> {
    this.checkOpen();
  }

  beginWrite(): PackTransaction {
    this.checkOpen();
    return new MemoryTransaction(this);
  }

  /** @internal */
  _touch(id: string): boolean {
    const h = this.objects.get(id);
    if (h) h.touchedMs = Date.now();
    return h !== undefined;
  }

  /** @internal publishes staged objects. */
  _publish(staged: Map<string, { bytes: Uint8Array; attrs: StoredAttrs }>): PackInfo {
    const name = `memory-${++this.packCounter}`;
    let bytes = 0;
    const now = Date.now();
    for (const [id, s] of staged) {
      if (this.objects.has(id)) continue;
      s.attrs.location = name;
      this.objects.set(id, { bytes: s.bytes, attrs: s.attrs, touchedMs: now });
      bytes += s.bytes.byteLength;
    }
    return { name, objects: staged.size, bytes };
  }

  /** Test hook: flips one bit of a stored object so reads must detect it. */
  _corrupt(id: string, byte = 0): void {
    const h = this.held(id);
    if (h.bytes.byteLength === 0) throw new InvalidArgumentError(`object ${id} is empty`);
    h.bytes[byte % h.bytes.byteLength] ^= 1;
  }

  async repack(keep: (id: string) => boolean, opts: RepackOptions = {}): Promise<RepackResult> {
    this.checkOpen();
    if (typeof keep !== 'function') throw invalidParameter('keep', 'function', keep);
    const graceMs = opts.graceMs ?? 0;
    if (!Number.isFinite(graceMs) || graceMs < 0) throw invalidParameter('graceMs', 'non-negative number', graceMs);
    const cutoff = Date.now() - graceMs;
    let dropped = 0;
    for (const [id, h] of [...this.objects]) {
      if (graceMs > 0 && h.touchedMs > cutoff) continue;
      if (!keep(id)) {
        this.objects.delete(id);
        dropped++;
      }
    }
    return { newPack: null, removedPacks: [], skippedPacks: [], copied: 0, dropped };
  }

  async verify(): Promise<StoreProblem[]> {
    this.checkOpen();
    const problems: StoreProblem[] = [];
    for (const [id, h] of this.objects) {
      if (native.xxh3_128(h.bytes) !== h.attrs.checksum)
        problems.push({
          kind: 'object',
          id,
          pack: h.attrs.location,
          code: ChecksumMismatchError.code,
          message: `object ${id} is corrupted`,
        });
    }
    return problems;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

class MemoryTransaction implements PackTransaction {
  private staged = new Map<string, { bytes: Uint8Array; attrs: StoredAttrs }>();
  private reused = new Set<string>();
  private state: 'open' | 'done' = 'open';

  constructor(private readonly store: MemoryStore) {}

  get count(): number {
    return this.staged.size;
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new InvalidArgumentError('pack transaction is already finished');
  }

  async reuse(id: string): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    if (this.staged.has(id)) return true;
    if (!this.store._touch(id)) return false;
    this.reused.add(id);
    return true;
  }

  async put(id: string, bytes: Uint8Array, attrs: ObjectAttrs): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    if (!ArrayBuffer.isView(bytes)) throw invalidParameter('bytes', 'Uint8Array', bytes);
    const a = normalizeAttrs(id, attrs);
    if (this.staged.has(id) || (await this.reuse(id))) return false;
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    this.staged.set(id, {
      bytes: copy,
      attrs: { id, ...a, storedSize: copy.byteLength, checksum: native.xxh3_128(copy) },
    });
    return true;
  }

  async commit(): Promise<PackInfo | null> {
    this.checkOpen();
    this.state = 'done';
    const gone = [...this.reused].filter((id) => !this.store._touch(id));
    const info = this.staged.size > 0 ? this.store._publish(this.staged) : null;
    this.staged.clear();
    if (gone.length > 0)
      throw new ObjectNotFoundError(
        `${gone.length} reused object(s) (first ${gone[0]}) were removed by a concurrent repack before this transaction committed; write them again`,
        { ids: gone },
      );
    return info;
  }

  async abort(): Promise<void> {
    this.state = 'done';
    this.staged.clear();
  }
}
