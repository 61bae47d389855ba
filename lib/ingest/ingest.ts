/**
 * Ingestion: one checkpoint file -> skeleton + tensor objects -> FileEntry.
 *
 * The file is walked once, in offset order, one segment at a time, so peak
 * memory stays near the largest tensor (plus the skeleton, which excludes all
 * bulk data). Gaps between segments form the skeleton; any gap larger than
 * BLOB_CHUNK_BYTES (files coral cannot parse, large non-tensor records) is cut
 * into U8 blob segments stored as objects of their own, so it dedups and never
 * sits in memory whole.
 *
 * Delta bases: the `findBase` seam proposes a base for each segment (today the
 * same-named tensor of the parent commit's version of the file; similarity
 * search plugs in here). The object writer keeps a delta only when smaller.
 */
import * as fsp from 'node:fs/promises';
import { FormatError } from '../errors';
import type { CheckpointLayout } from '../formats';
import { DirectFile, readOnce } from './direct-read';
import { scanOrPlain } from './plain';
import type { FileEntry, LossyMark, SegmentEntry, TensorEntry } from '../models/tree';
import type { LossySpec, ObjectWriter, PutResult } from '../odb/objects';
import { DTYPES, type DType } from '../tensor/dtype';
import { tensor, type Tensor } from '../tensor/tensor';
import { contentId, contentIdWithCasts, OrderedSha256, type CastId } from '../hash';
import { allocLarge } from '../native';
import { LossyTally } from './lossy';
import { ScratchBuffers } from '../odb/scratch';
import type { ScratchSource } from '../store/object-store';

/** The base-query name of a file's skeleton (never a tensor name: those cannot start with '#'). */
export const SKELETON_NAME = '#skeleton';

/** Gaps above this size are stored as blob objects instead of skeleton bytes. */
export const BLOB_CHUNK_BYTES = 16 << 20;

export interface BaseQuery {
  path: string;
  /** Name of the segment: its first tensor's name, or `#<index>` when it has none. */
  name: string;
  dtype: DType;
  shape: number[];
  /** The segment's tensor and content id (always set by ingestFile; optional for other callers). */
  tensor?: Tensor;
  id?: string;
  /** Content ids of the tensor's RNE casts (F32/F64 tensors, when `IngestHooks.castIds` asks for them). */
  casts?: CastId[];
  /**
   * Buffers the lookup may decode a large base into (ObjectReader.tensor's `scratch`): the ingest
   * gives the returned base back to them once encoded; a candidate not returned is given back by
   * the lookup.
   */
  scratch?: ScratchSource;
}

/**
 * A base proposal; `tensor`, when given, is the decoded base (the writer then skips decoding it);
 * `pureCast`: the tensor is known to be the RNE cast of the base (PutBase.pureCast).
 */
export type FindBase = (q: BaseQuery) => Promise<{ id: string; tensor?: Tensor; pureCast?: 'RNE' } | null>;

/** Optional ingestion hooks (lib/ingest/bases.ts): extra object attributes, and a callback per new object. */
export interface IngestHooks {
  /**
   * Compute the ids of each F32/F64 tensor's RNE casts with its content id (one native pass,
   * lib/hash.ts `contentIdWithCasts`) and hand them over in `BaseQuery.casts`.
   */
  castIds?: boolean;
  /** Extra attributes to store with a new object (e.g. its similarity fingerprint). */
  attrs?(q: BaseQuery): Record<string, string> | undefined;
  /** Called after a new object was stored. */
  stored?(q: BaseQuery, r: PutResult): Promise<void>;
}

export interface IngestReport {
  path: string;
  bytes: number;
  segments: number;
  storedObjects: number;
  dedupedObjects: number;
  deltaObjects: number;
  storedBytes: number;
  /**
   * Set when a file that looked like a checkpoint could not be parsed and was
   * stored as a plain file (byte-exact, no tensors): why, e.g. `tensor "w" has
   * unsupported dtype "F4"`. `coral add` prints `stored as a plain file: <reason>`.
   */
  plainFile?: string;
  /** Set when tensors were stored lossy (`add --lossy`): the entry's lossy mark. */
  lossy?: LossyMark;
}

export interface IngestOptions {
  /** Throw the parser's error instead of storing an unparsable checkpoint as a plain file. */
  strict?: boolean;
  /** Store float tensors with this lossy codec (`coral add --lossy`); the entry is marked `lossy`. */
  lossy?: LossySpec;
  /** Called with the file's layout before any payload is read; throws to refuse it (e.g. server limits). */
  checkLayout?(layout: CheckpointLayout): void;
  /**
   * The file's sha256 (hex), when the caller already hashed exactly these bytes (git's filter hashes
   * what git sends while it spools it): the file is then not hashed a second time.
   */
  sha256?: string;
  /**
   * Read the file with O_DIRECT where the filesystem allows it (lib/ingest/direct-read.ts): for a
   * file written that way and read once (the git clean's spool), so its pages never enter the page cache.
   */
  direct?: boolean;
}

interface PlannedSegment {
  offset: number;
  length: number;
  dtype: DType;
  shape: number[];
  name: string;
  origIndex: number; // index in layout.segments, or -1 for blob chunks
}

function plan(layout: CheckpointLayout): PlannedSegment[] {
  const firstName = new Map<number, string>();
  for (const t of layout.tensors) if (!firstName.has(t.segment)) firstName.set(t.segment, t.name);
  const out: PlannedSegment[] = [];
  let pos = 0;
  const gap = (end: number) => {
    if (end - pos <= BLOB_CHUNK_BYTES) return;
    for (let o = pos; o < end; o += BLOB_CHUNK_BYTES) {
      const len = Math.min(BLOB_CHUNK_BYTES, end - o);
      // Leave small tails in the skeleton; chunk the bulk.
      if (len < BLOB_CHUNK_BYTES && o !== pos) break;
      out.push({ offset: o, length: len, dtype: 'U8', shape: [len], name: '', origIndex: -1 });
    }
  };
  layout.segments.forEach((s, i) => {
    if (s.offset < pos) throw new FormatError(`checkpoint layout has overlapping segments at byte ${s.offset}`);
    gap(s.offset);
    out.push({
      offset: s.offset,
      length: s.length,
      dtype: s.dtype,
      shape: s.shape.slice(),
      name: firstName.get(i) ?? '',
      origIndex: i,
    });
    pos = s.offset + s.length;
  });
  gap(layout.fileSize);
  // Segments without a tensor (blob chunks, opaque members) are named by position.
  out.forEach((p, i) => {
    if (!p.name) p.name = `#${i}`;
  });
  return out;
}

/**
 * Fills `buf` from `position`. Reads go through the callback API on the handle's fd: a promise read
 * allocates a small typed array per call, and V8 answers any allocation made while much external
 * memory (the tensors in flight) is young with a young-generation collection, about 60 per 512 MiB.
 */
async function readExact(fh: fsp.FileHandle, buf: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const bytesRead = await readOnce(fh.fd, buf, done, buf.byteLength - done, position + done);
    if (bytesRead === 0) throw new FormatError(`${file} changed while it was being read (unexpected end of file)`);
    done += bytesRead;
  }
}

/**
 * Segments up to this size may have two puts in flight and their base lookup
 * overlapping the previous encode; larger ones one put, and the lookup after
 * the previous encode, so that peak memory stays within 3 x the largest
 * segment + 256 MiB (a put being encoded holds a segment, its base and its
 * encoding).
 */
const TWO_PUTS_MAX_BYTES = 16 << 20;

/**
 * Segments up to this size run as tasks (lookup + put), up to `smallTasks` at once and
 * SMALL_TASKS_BUDGET bytes of segments between them (each also holds a base and an
 * encoding while it encodes, so at most 3x that budget: well inside the fixed 256 MiB).
 */
const SMALL_TASK_BYTES = 2 << 20;
const SMALL_TASKS_MAX = 16;
const SMALL_TASKS_BUDGET = 8 << 20;
const smallTasks = (bytes: number): number =>
  Math.max(2, Math.min(SMALL_TASKS_MAX, Math.floor(SMALL_TASKS_BUDGET / Math.max(1, bytes))));

/**
 * At most `depth` puts in flight (1 or 2; small-segment tasks, which report
 * "encoded" at once, up to SMALL_TASKS_MAX): the next may start once the newest is encoded
 * (its tensor read no more) and the oldest has finished (written). `settle`
 * waits for all and rethrows the first failure; `drain` waits and drops them
 * (cleanup after an error).
 */
class PutWindow {
  private puts: Array<{ done: Promise<void>; encoded: Promise<void> }> = [];

  /** Waits until a put may start with at most `depth` puts in flight. */
  async ready(depth: number): Promise<void> {
    while (this.puts.length >= depth) await this.puts.shift()!.done;
    await this.encoded();
  }

  /** Waits until the newest put no longer holds its tensor and base (encoded, or ended). */
  async encoded(): Promise<void> {
    const last = this.puts[this.puts.length - 1];
    // A put that stores nothing never reports "encoded": its end counts.
    if (last) await Promise.race([last.encoded, last.done]);
  }

  add(done: Promise<void>, encoded: Promise<void>): void {
    // Keep a failure from surfacing as an unhandled rejection before settle() sees it.
    done.catch(() => undefined);
    this.puts.push({ done, encoded });
  }

  async settle(): Promise<void> {
    while (this.puts.length) await this.puts.shift()!.done;
  }

  async drain(): Promise<void> {
    const all = this.puts.splice(0);
    await Promise.allSettled(all.map((p) => p.done));
  }
}

/**
 * Where the bytes of a file come from, in offset order (a file read at offsets, or an upload read as it
 * streams: lib/ingest/stream.ts). Calls come strictly in file order, each starting where the last ended.
 */
export interface PieceSource {
  /**
   * The bytes [from, offset) (null when empty) and then the `length` bytes at `offset`, in a fresh
   * buffer: `alloc(length)` when given (the ingest's reused buffers), else a new one.
   */
  read(
    from: number,
    offset: number,
    length: number,
    alloc?: (n: number) => Uint8Array,
  ): Promise<{ gap: Buffer | null; buf: Uint8Array }>;
  /** The last `length` bytes, from `from` to the end of the file. */
  tail(from: number, length: number): Promise<Buffer>;
  /** Called once every byte was read, before the skeleton is stored: a last consistency check. */
  done?(): Promise<void>;
}

export async function ingestFile(
  writer: ObjectWriter,
  absPath: string,
  relPath: string,
  findBase: FindBase | null,
  hooks: IngestHooks = {},
  opts: IngestOptions = {},
): Promise<{ entry: FileEntry; report: IngestReport }> {
  const { layout, plainFile } = await scanOrPlain(absPath, relPath, opts);
  opts.checkLayout?.(layout);
  // Either an ordinary handle, or (opts.direct) a reader that bypasses the page cache.
  const df = opts.direct ? DirectFile.open(absPath) : null;
  const fh = df ? null : await fsp.open(absPath, 'r');
  const readAt = (b: Uint8Array, pos: number) => (df ? df.read(b, pos) : readExact(fh!, b, pos, relPath));
  const stat = () => (df ? df.stat() : fh!.stat());
  try {
    const st0 = await stat();
    if (st0.size !== layout.fileSize) throw new FormatError(`${relPath} changed while it was being read`);
    const source: PieceSource = {
      read: async (from, offset, length, alloc = allocLarge) => {
        const gap = offset > from ? Buffer.allocUnsafe(offset - from) : null;
        if (gap) await readAt(gap, from);
        const buf = alloc(length);
        await readAt(buf, offset);
        return { gap, buf };
      },
      tail: async (from, length) => {
        const tail = Buffer.allocUnsafe(length);
        await readAt(tail, from);
        return tail;
      },
      done: async () => {
        const st1 = await stat();
        if (st1.size !== st0.size || st1.mtimeMs !== st0.mtimeMs)
          throw new FormatError(`${relPath} changed while it was being read; add it again once it is written`);
      },
    };
    return await ingestLayout(writer, layout, source, relPath, findBase, hooks, { ...opts, plainFile });
  } finally {
    df?.close();
    await fh?.close();
  }
}

/**
 * The pipeline of `ingestFile` over any source of the file's bytes: `layout` describes the file, `source`
 * hands its pieces over in order. `opts.plainFile` is the reason recorded for a file stored unparsed.
 */
export async function ingestLayout(
  writer: ObjectWriter,
  layout: CheckpointLayout,
  source: PieceSource,
  relPath: string,
  findBase: FindBase | null,
  hooks: IngestHooks = {},
  opts: IngestOptions & { plainFile?: string } = {},
): Promise<{ entry: FileEntry; report: IngestReport }> {
  const { plainFile } = opts;
  const planned = plan(layout);
  const report: IngestReport = {
    path: relPath,
    bytes: layout.fileSize,
    segments: planned.length,
    storedObjects: 0,
    dedupedObjects: 0,
    deltaObjects: 0,
    storedBytes: 0,
    ...(plainFile ? { plainFile } : {}),
  };
  const count = (r: PutResult) => {
    if (r.stored) {
      report.storedObjects++;
      report.storedBytes += r.storedSize;
      if (r.base) report.deltaObjects++;
    } else {
      report.dedupedObjects++;
    }
    lossy?.count(r);
  };
  // Only for `add --lossy`: the decoded file's sha256 and the worst errors (lib/ingest/lossy.ts).
  const lossy = opts.lossy ? new LossyTally() : null;
  // The file's sha256 runs on the pool (OrderedSha256), beside the other stages; a piece goes
  // back to the buffer pool only once it is hashed. A failure surfaces from the digest.
  const sha = opts.sha256 ? null : new OrderedSha256();
  const hash = (b: Uint8Array): Promise<void> => {
    const p = sha ? sha.update(b) : Promise.resolve();
    p.catch(() => undefined);
    return p;
  };
  const skeletonParts: Buffer[] = [];
  const segments: SegmentEntry[] = [];
  // Segment i+1 is read while segment i is hashed, encoded and written (a large
  // segment: while it is encoded), so disk reads overlap the native work.
  // Segment reads and large base decodes reuse a few buffers (lib/odb/scratch.ts): no new
  // ArrayBuffer per segment for V8 to account (a full GC every few segments otherwise).
  const scratch = new ScratchBuffers();
  const take = (n: number) => scratch.take(n);
  const release = (x: Tensor | null | undefined) => writer.reader.release(x, scratch);
  const readAt = (i: number, from: number) => source.read(from, planned[i].offset, planned[i].length, take);
  let pos = 0;
  let next = planned.length ? readAt(0, 0) : null;
  // The stages of segment i overlap those of its neighbours: segment i+1 is
  // read; segment i is hashed (the file's sha256, on the pool in order) while
  // its content id, dedup check and base lookup run; segment i-1 is encoded,
  // or written once encoded (the writer runs pack writes in call order). A put
  // starts once the one before it is encoded and the one before that is
  // written, so at most two puts are in flight and memory stays at a few times
  // the largest segment. Small segments (SMALL_TASK_BYTES) instead run lookup and
  // put as one task, up to `smallTasks` at once.
  const window = new PutWindow();
  // Stored tensors are kept as delta bases for a later ingest in this process only when the whole
  // file fits the base cache comfortably (PutOptions.remember).
  const remember = writer.reader.cacheFits(layout.fileSize, 2);
  try {
    for (let i = 0; i < planned.length; i++) {
      const p = planned[i];
      const { gap, buf } = await next!;
      const readNext = () => {
        next = i + 1 < planned.length ? readAt(i + 1, p.offset + p.length) : null;
        // Keep a rejected prefetch from surfacing as an unhandled rejection if we fail first.
        next?.catch(() => undefined);
      };
      const large = p.length > TWO_PUTS_MAX_BYTES;
      if (!large) readNext();
      if (gap) {
        void hash(gap);
        skeletonParts.push(gap);
        lossy?.piece(gap);
      }
      const t = tensor(p.dtype, p.shape, buf);
      // Large segments: the base of this one is decoded once the previous one is
      // encoded (the codecs use every core anyway), and the next one is read once
      // the previous one is written (below), while this one encodes. At most four
      // segment-sized buffers are live at once: this segment, its base (encoded, then
      // decoded) and either the pending write or the read ahead. With both at once
      // it was six, over the memory bound with 64 MiB tensors.
      if (large) await window.encoded();
      // The content id, dedup check and base lookup (decode) run on the pool beside the
      // file's sha256 of this segment.
      const hashed = hash(buf);
      // The segment goes back to the pool only once the file's sha256 has read it.
      const releaseOnceHashed = () =>
        void hashed.then(
          () => release(t),
          () => undefined,
        );
      const slot = segments.length;
      segments.push({ offset: p.offset, length: p.length, object: '', dtype: p.dtype, shape: p.shape });
      const lookup = async () => {
        // Exact duplicates need no base search: the writer reuses the stored copy.
        const { id, casts } = hooks.castIds ? await contentIdWithCasts(t) : { id: await contentId(t), casts: [] };
        segments[slot].object = id;
        const q: BaseQuery = { path: relPath, name: p.name, dtype: p.dtype, shape: p.shape, tensor: t, id, scratch };
        if (casts.length) q.casts = casts;
        const fresh = !(await writer.has(id));
        const base = findBase && fresh ? await findBase(q) : null;
        return { id, q, fresh, base };
      };
      const store = ({ id, q, fresh, base }: Awaited<ReturnType<typeof lookup>>) => {
        let onEncoded!: () => void;
        const encoded = new Promise<void>((r) => (onEncoded = r));
        // `buf` is a fresh buffer nobody else writes: the writer may cache it without a copy,
        // unless the scratch lent it (it hands it out again once released).
        const put = writer.put(t, base, id, fresh ? hooks.attrs?.(q) : undefined, {
          owned: !scratch.lends(buf),
          lossy: opts.lossy,
          remember,
          onEncoded: (tensorDone) => {
            // Neither the decoded base (nor, unless the writer caches it, the
            // segment) is needed for the write: back to the buffer pool. With
            // --lossy the tally still hashes the segment's bytes (below).
            release(base?.tensor);
            if (tensorDone && !lossy) releaseOnceHashed();
            onEncoded();
          },
        });
        const done = put.then(async (r) => {
          count(r);
          if (r.stored) await hooks.stored?.(q, r);
          segments[slot].object = r.id;
          // Done with this segment's bytes: back to the pool for the next read
          // (unless the base cache holds them, or the lossy tally has yet to hash them).
          if (!r.stored) release(base?.tensor);
          await hashed;
          if (!lossy) release(t);
        });
        return { put, done, encoded };
      };
      let put: Promise<PutResult>;
      if (p.length <= SMALL_TASK_BYTES) {
        // A small segment's lookup and put run as one task, several at once: their costs are
        // per call (thread hand-offs, a pack lookup, a base decode), and one at a time they
        // left both cores mostly idle.
        await window.ready(smallTasks(p.length));
        const task = lookup().then(store);
        put = task.then((x) => x.put);
        put.catch(() => undefined); // the window reports a failure
        // Its buffers are bounded by the task count, not by the encodes' order: it counts as
        // encoded at once.
        window.add(
          task.then((x) => x.done),
          Promise.resolve(),
        );
      } else {
        const l = lookup();
        l.catch(() => undefined);
        const found = await l;
        await window.ready(large ? 1 : 2);
        if (large) readNext();
        const x = store(found);
        put = x.put;
        window.add(x.done, x.encoded);
      }
      // --lossy: the decoded file's sha256 takes this segment (its decoded form when stored
      // lossy) once the put settles; only then may the segment go back to the pool. Pieces
      // are handed over here, in file order, whenever their puts settle.
      lossy?.piece(
        put.then((r) => r.decoded?.data ?? buf),
        releaseOnceHashed,
      );
      pos = p.offset + p.length;
    }
    await window.settle();
  } finally {
    // Never leave a put running behind an error.
    await window.drain();
    scratch.close();
  }
  if (pos < layout.fileSize) {
    const tail = await source.tail(pos, layout.fileSize - pos);
    void hash(tail);
    skeletonParts.push(tail);
    lossy?.piece(tail);
  }
  await source.done?.();
  const skeleton = Buffer.concat(skeletonParts);
  const skq: BaseQuery = { path: relPath, name: SKELETON_NAME, dtype: 'U8', shape: [skeleton.length] };
  const sk = await writer.put(
    tensor('U8', [skeleton.length], skeleton),
    findBase && skeleton.length ? await findBase(skq) : null,
    undefined,
    undefined,
    { owned: true },
  );
  count(sk);

  const remap = new Map<number, number>();
  planned.forEach((p, i) => {
    if (p.origIndex >= 0) remap.set(p.origIndex, i);
  });
  const tensors: TensorEntry[] = layout.tensors.map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape.slice(),
    segment: remap.get(t.segment)!,
    elementOffset: t.elementOffset,
    strides: t.strides ? t.strides.slice() : null,
  }));
  const sha256 = opts.sha256 ?? (await sha!.digest());
  const entry: FileEntry = {
    format: layout.format,
    size: layout.fileSize,
    sha256,
    skeleton: sk.id,
    segments,
    tensors,
    ...(layout.metadata && Object.keys(layout.metadata).length ? { metadata: layout.metadata } : {}),
    ...(lossy ? await lossy.entryFields(sha256) : {}),
  };
  if (entry.lossy) report.lossy = entry.lossy;
  return { entry, report };
}

/** The segment name index of a committed file entry, for base lookup. */
export function segmentNames(entry: FileEntry): Map<string, SegmentEntry> {
  const names = new Map<string, SegmentEntry>();
  const first = new Map<number, string>();
  for (const t of entry.tensors) if (!first.has(t.segment)) first.set(t.segment, t.name);
  entry.segments.forEach((s, i) => names.set(first.get(i) ?? `#${i}`, s));
  return names;
}

export const _internal = { plan, DTYPES };
