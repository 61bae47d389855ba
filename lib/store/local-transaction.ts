/**
 * LocalTransaction: one pack being written for a LocalPackStore (local.ts
 * has the publication protocol). The pack is built in `<root>/tmp/` and handed
 * to the store to publish on commit; `reuse` freshens the pack of an object
 * that is already stored so that a concurrent repack leaves it alone.
 */
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { PackEntry, PackWriter } from '../../binding';
import { Hdf5Error, InternalError, InvalidArgumentError, ObjectNotFoundError, invalidParameter } from '../errors';
import { ASYNC_THRESHOLD_BYTES, callAsync, callSync, native } from '../native';
import { faultPoint } from '../util/crash';
import { fullDiskError, randomHex, unlinkIfExists } from './fs';
import { checkId, normalizeAttrs, type ObjectAttrs, type PackInfo, type PackTransaction } from './object-store';

/** What a transaction needs of its store (LocalPackStore's @internal hooks). */
export interface TransactionStore {
  readonly tmpDir: string;
  /** The small-object bound given to pack writers. */
  readonly _smallMax: number;
  /** Location of an id (no I/O). */
  _locate(id: string): { readonly pack: string } | undefined;
  /** Marks a pack as in use "now"; false when the pack is gone. */
  _freshen(pack: string): Promise<boolean>;
  refresh(): Promise<void>;
  /** Publishes a finished pack file from tmp/ into packs/ with its index. */
  _publish(tmpPath: string, name: string, size: number, entries: PackEntry[]): Promise<void>;
  /** Bookkeeping: the transaction is finished. */
  _txDone(tx: LocalTransaction): void;
}

/** One pack being written. Puts run one after another; HDF5 serialises them anyway. */
export class LocalTransaction implements PackTransaction {
  private writer: PackWriter | null = null;
  private tmpPath = '';
  private name = '';
  private written = 0;
  /** Bytes the writer's small-object part can still take (PackPutResult.room; 0 until the first put). */
  private room = 0;
  private stagedIds = new Set<string>();
  private reused = new Set<string>();
  private freshened = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  /** The first failed write (always an Error: a non-Error rejection is wrapped); later writes and commit rethrow it. */
  private failure: Error | null = null;
  private state: 'open' | 'committing' | 'done' = 'open';

  /** `raw`: repack's internal writer, which must not dedup against the packs it is replacing. */
  constructor(
    private readonly store: TransactionStore,
    private readonly raw: boolean,
  ) {}

  get count(): number {
    return this.stagedIds.size;
  }

  staged(id: string): boolean {
    return this.stagedIds.has(id);
  }

  private checkOpen(): void {
    if (this.state !== 'open')
      throw new InvalidArgumentError(
        `pack transaction is already ${this.state === 'done' ? 'finished' : 'committing'}`,
      );
  }

  async reuse(id: string): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    if (this.stagedIds.has(id)) return true;
    for (let attempt = 0; attempt < 2; attempt++) {
      const loc = this.store._locate(id);
      if (!loc) return false;
      if (this.freshened.has(loc.pack) || (await this.store._freshen(loc.pack))) {
        this.freshened.add(loc.pack);
        this.reused.add(id);
        return true;
      }
      await this.store.refresh(); // its pack vanished: look again
    }
    return false;
  }

  async put(id: string, bytes: Uint8Array, attrs: ObjectAttrs): Promise<boolean> {
    this.checkOpen();
    checkId(id);
    if (!ArrayBuffer.isView(bytes)) throw invalidParameter('bytes', 'Uint8Array', bytes);
    const a = normalizeAttrs(id, attrs);
    if (this.stagedIds.has(id)) return false;
    if (!this.raw && (await this.reuse(id))) return false;
    if (this.stagedIds.has(id)) return false; // staged by a concurrent put while we looked
    this.stagedIds.add(id);
    const run = this.chain.then(() => this.write(id, bytes, a));
    this.chain = run.catch((e: unknown) => {
      this.failure ??= e instanceof Error ? e : new InternalError(`pack write failed: ${String(e)}`);
    });
    await run;
    return true;
  }

  private async write(id: string, bytes: Uint8Array, a: ReturnType<typeof normalizeAttrs>): Promise<void> {
    if (this.failure) throw this.failure;
    try {
      await this.writeRaw(id, bytes, a);
    } catch (e) {
      throw fullDiskError(e, 'write pack', this.tmpPath);
    }
  }

  private async writeRaw(id: string, bytes: Uint8Array, a: ReturnType<typeof normalizeAttrs>): Promise<void> {
    if (!this.writer) {
      this.name = `pack-${randomHex(16)}.h5`;
      this.tmpPath = path.join(this.store.tmpDir, `${this.name}.tmp`);
      this.writer = callSync(() => new native.PackWriter(this.tmpPath, { smallObjectMax: this.store._smallMax }));
    }
    const w = this.writer;
    const pa = { codec: a.codec, dtype: a.dtype, shape: a.shape, base: a.base, rawSize: a.rawSize, extra: a.extra };
    const fault = faultPoint('pack:write');
    if (fault)
      throw new Hdf5Error(
        `pack ${this.tmpPath}: object ${id}: cannot write data (file write failed: errno = ${(osConstants.errno as Record<string, number>)[fault] ?? -1}, error message = 'injected ${fault}'; driver write request failed)`,
      );
    // A small object that fits the writer's part only costs a copy and a checksum: put on this thread. One
    // that fills the part makes the writer write it out (8 MiB), so that put goes to the pool, as large ones do.
    const n = bytes.byteLength;
    const quick = n < ASYNC_THRESHOLD_BYTES && (n >= this.store._smallMax || n <= this.room);
    const r = quick ? callSync(() => w.put(id, bytes, pa)) : await callAsync(() => w.putAsync(id, bytes, pa));
    this.room = r.room;
    this.written++;
  }

  async commit(): Promise<PackInfo | null> {
    this.checkOpen();
    this.state = 'committing';
    try {
      await this.chain;
      if (this.failure) throw this.failure;
      let info: PackInfo | null = null;
      if (this.writer && this.written > 0) {
        const w = this.writer;
        this.writer = null;
        // finish() reports every object with its final offset (small objects' bytes are placed then).
        let done: { size: number; entries: PackEntry[] };
        try {
          done = await callAsync(() => w.finish());
        } catch (e) {
          throw fullDiskError(e, 'write pack', this.tmpPath);
        }
        const { size, entries } = done;
        await this.store._publish(this.tmpPath, this.name, size, entries);
        info = { name: this.name, objects: entries.length, bytes: size };
      }
      if (this.reused.size > 0) {
        await this.store.refresh();
        const gone = [...this.reused].filter((id) => !this.store._locate(id));
        if (gone.length > 0)
          throw new ObjectNotFoundError(
            `${gone.length} reused object(s) (first ${gone[0]}) were removed by a concurrent repack before this ` +
              'transaction committed; write them again',
            { ids: gone },
          );
      }
      return info;
    } catch (e) {
      await this.cleanup();
      throw e;
    } finally {
      this.state = 'done';
      this.store._txDone(this);
    }
  }

  private async cleanup(): Promise<void> {
    if (this.writer) {
      this.writer.abort();
      this.writer = null;
    }
    if (this.tmpPath) await unlinkIfExists(this.tmpPath).catch(() => undefined);
  }

  async abort(): Promise<void> {
    if (this.state === 'done') return;
    this.state = 'done';
    await this.chain;
    await this.cleanup();
    this.store._txDone(this);
  }
}
