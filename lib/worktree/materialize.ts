/**
 * Re-assembling files from skeleton + objects, byte for byte.
 *
 * A file is written to a temp file beside its destination, its sha256 checked
 * against the committed value, fsynced, then renamed into place: a reader
 * never sees a half-written checkpoint and a bad object never overwrites a
 * good file.
 */
import * as crypto from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ChecksumMismatchError, CorruptObjectError, InternalError } from '../errors';
import type { FileEntry, TensorEntry } from '../models/tree';
import { DTYPES, type DType } from '../tensor/dtype';
import { tensor, type Tensor } from '../tensor/tensor';
import type { FileWriter } from '../../binding';
import type { ObjectReader } from '../odb/objects';
import { ScratchBuffers } from '../odb/scratch';
import { callAsync, callSync, native } from '../native';
import { fsyncDirSync } from '../util/fsutil';
import { isSymlinkEntry, writeSymlink } from './symlink';

async function writeAll(fh: fsp.FileHandle, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.byteLength) {
    const { bytesWritten } = await fh.write(b, off, b.byteLength - off);
    off += bytesWritten;
  }
}

/** Decoded tensors the caller already holds, by object id (e.g. a merge's just-written results). */
export type KnownTensors = ReadonlyMap<string, Tensor>;

/**
 * The one skeleton/segment interleave: yields a file's bytes in order, the
 * skeleton's pieces between the segments, checking that the segments fit the
 * skeleton and the entry's size. `segment(i)` returns segment i's bytes (and
 * checks their length); it is called once per segment, in order, when that
 * segment is due. Checkout (`fileChunks`) and merge's file splice both use it.
 */
export async function* interleave(
  skeleton: Uint8Array,
  entry: Pick<FileEntry, 'skeleton' | 'segments' | 'size'>,
  segment: (i: number) => Promise<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  let pos = 0;
  let sk = 0;
  for (let i = 0; i < entry.segments.length; i++) {
    const seg = entry.segments[i];
    const gap = seg.offset - pos;
    if (gap < 0 || sk + gap > skeleton.byteLength)
      throw new CorruptObjectError(`file entry segments do not fit its skeleton`);
    if (gap > 0) yield skeleton.subarray(sk, sk + gap);
    sk += gap;
    yield await segment(i);
    pos = seg.offset + seg.length;
  }
  if (skeleton.byteLength - sk !== entry.size - pos)
    throw new CorruptObjectError(`skeleton ${entry.skeleton} length does not match the file entry`);
  if (sk < skeleton.byteLength) yield skeleton.subarray(sk);
}

/** fileChunks decodes two segments ahead when none is larger than this (else one). */
const AHEAD_MAX_BYTES = 16 << 20;
/** With `release`, small segments are decoded further ahead: at most this many, of this many bytes. */
const AHEAD_MAX_COUNT = 16;
const AHEAD_BUDGET_BYTES = 8 << 20;

/**
 * Yields the file's bytes in order: skeleton pieces and decoded segments. The
 * next segment is decoded while the consumer handles the current one (two
 * decoded segments at most, besides the base cache; with `release` and
 * segments of at most 16 MiB, the next two: three). With `release`, the
 * consumer promises to be done with a chunk when it asks for the next one
 * (it copies or writes it, as writeHashedFile does): each decoded segment's
 * memory then goes back to the buffer pool for the next decode
 * (ObjectReader.release).
 */
export async function* fileChunks(
  reader: ObjectReader,
  entry: FileEntry,
  known?: KnownTensors,
  opts: { release?: boolean; checkedBySha256?: boolean } = {},
): AsyncGenerator<Uint8Array> {
  const skeleton = (await reader.tensor(entry.skeleton)).data;
  // The consumer checks the whole file against entry.sha256 before anything relies on it: the
  // segments' content ids need not be checked as well (the skeleton's still is, above).
  const verify = !(opts.release && opts.checkedBySha256);
  // With `release`, reads and decodes reuse a few buffers (lib/odb/scratch.ts) instead of new ones.
  const scratch = opts.release ? new ScratchBuffers() : undefined;
  const load = (i: number): Promise<Tensor> | null => {
    if (i >= entry.segments.length) return null;
    const id = entry.segments[i].object;
    const k = known?.get(id);
    // Placed so that its address agrees with its file offset modulo a page: the FileWriter then
    // writes it from this buffer instead of copying it (kernels/direct_io.h).
    const shift = entry.segments[i].offset % 4096;
    const p = k ? Promise.resolve(k) : reader.tensor(id, { cacheBases: !opts.release, scratch, verify, shift });
    p.catch(() => undefined); // surfaced when awaited; never unhandled if we stop first
    return p;
  };
  // Segments decoded ahead of the one being written: one, or two for a file of deltas whose segments
  // are all small. A delta's segment waits on two reads from the device (pack reads bypass the page
  // cache) and their decode, longer than the hash of the segment before it: a second segment under
  // way keeps the device and the cores busy meanwhile (a 512 MiB fine-tune: ~15% faster in a loaded
  // run, for ~10% more CPU and ~65 MiB more peak memory; no gain for a file stored whole, so not
  // there). Two more decoded segments of at most 16 MiB, and their reads, stay inside the memory bound.
  const small = entry.segments.length > 0 && entry.segments.every((s) => s.length <= AHEAD_MAX_BYTES);
  const ahead =
    opts.release && small && !known?.has(entry.segments[0].object) && (await reader.isDelta(entry.segments[0].object))
      ? 2
      : 1;
  // Small segments are decoded further ahead, up to AHEAD_MAX_COUNT of them within AHEAD_BUDGET_BYTES:
  // their cost is mostly per segment (pack lookups, thread hand-offs), and one or two at a time left
  // the cores idle between them.
  const pending: Array<Promise<Tensor> | null> = [];
  let next = 0;
  let pendingBytes = 0;
  const topUp = () => {
    const segs = entry.segments;
    while (
      next < segs.length &&
      (pending.length < ahead ||
        (opts.release && pending.length < AHEAD_MAX_COUNT && pendingBytes + segs[next].length <= AHEAD_BUDGET_BYTES))
    ) {
      pendingBytes += segs[next].length;
      pending.push(load(next++));
    }
  };
  topUp();
  let prev: Tensor | null = null;
  // The segment yielded last; the consumer is done with it once it asks for more.
  const done = () => {
    if (opts.release && prev) reader.release(prev, scratch);
    prev = null;
  };
  try {
    yield* interleave(skeleton, entry, async (i) => {
      const seg = entry.segments[i];
      const t = await pending.shift()!;
      pendingBytes -= seg.length;
      topUp();
      if (t.data.byteLength !== seg.length)
        throw new CorruptObjectError(
          `object ${seg.object} has ${t.data.byteLength} bytes, file entry expects ${seg.length}`,
        );
      done();
      prev = known?.get(seg.object) === t ? null : t;
      return t.data;
    });
    done();
  } finally {
    prev = null;
    if (scratch) {
      // Decodes still under way (the consumer stopped early) give their buffers back once they settle.
      for (const p of pending)
        p?.then(
          (t) => scratch.give(t.data),
          () => undefined,
        );
      scratch.close();
    }
  }
}

/**
 * After a re-assembled file failed its sha256 check (fileChunks with `checkedBySha256` skips the
 * segments' content id checks): decodes each segment again, verified, so that a bad object is
 * named by its own error (ChecksumMismatchError, BaseMismatchError). Returns when all verify.
 */
export async function verifySegments(reader: ObjectReader, entry: FileEntry, known?: KnownTensors): Promise<void> {
  for (const seg of entry.segments)
    if (!known?.has(seg.object)) reader.release(await reader.tensor(seg.object, { cacheBases: false }));
}

/** fsyncs a directory (after a rename into it): one definition, lib/util/fsutil.ts. */
export { fsyncDirSync };

/**
 * Writes chunks to a new file while hashing them (the write of a chunk runs
 * on the libuv pool while the main thread hashes it), then fsyncs it.
 * Returns the byte count and the sha256 (hex). The caller owns `fh`.
 */
export async function writeHashed(
  fh: fsp.FileHandle,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<{ size: number; sha256: string }> {
  const sha = crypto.createHash('sha256');
  let n = 0;
  for await (const chunk of chunks) {
    const w = writeAll(fh, chunk);
    sha.update(chunk);
    await w;
    n += chunk.byteLength;
  }
  await fh.sync();
  return { size: n, sha256: sha.digest('hex') };
}

/** FileWriter flag: hash the appended bytes with SHA-256 on the pool (binding.d.ts FileWriter). */
const FILE_WRITER_SHA256 = 1;

/**
 * A new file written front to back through the native FileWriter while its
 * SHA-256 is taken: each append is copied into aligned blocks (and hashed) on
 * the libuv pool, and the blocks are written with O_DIRECT by the writer's own
 * thread (no page-cache copy, no writeback to wait for at fsync). Where the
 * host offers no SHA-256 to native code, the main thread hashes each append
 * instead. Used by checkout (writeHashedFile) and the git clean's spool
 * (lib/git/spool.ts).
 *
 * Thread: the event loop; `append`'s bytes must not change until its promise
 * settles, and one append at a time.
 */
export class HashedFileWriter {
  private readonly sha: crypto.Hash | null;

  private constructor(
    private readonly w: FileWriter,
    readonly file: string,
  ) {
    this.sha = w.hashing() ? null : crypto.createHash('sha256');
  }

  /** Creates `file` exclusively, with `mode`. */
  static create(file: string, mode: number): HashedFileWriter {
    return new HashedFileWriter(
      callSync(() => new native.FileWriter(file, mode, FILE_WRITER_SHA256)),
      file,
    );
  }

  /** Appends `b` (which must not change until this settles). */
  async append(b: Uint8Array): Promise<void> {
    const written = callAsync(() => this.w.appendAsync(b));
    this.sha?.update(b);
    await written;
  }

  /** Writes the rest, fsyncs and closes the file: the SHA-256 (hex) of everything appended. */
  async finish(): Promise<string> {
    await callAsync(() => this.w.finish());
    const digest = this.sha ? this.sha.digest('hex') : this.w.sha256();
    if (digest === null) throw new InternalError(`no SHA-256 of ${this.file} after a hashing write`);
    return digest;
  }

  /** Closes without finishing (the caller removes the file); idempotent. */
  abort(): void {
    this.w.abort();
  }
}

/**
 * Creates `file` (exclusively, with `mode`) and writes `chunks` to it while
 * hashing them (HashedFileWriter), while the producer decodes the next chunk:
 * the event loop stays free to start that decode as soon as its read lands.
 * fsyncs before it returns; on failure the file is closed and left for the
 * caller to remove.
 */
export async function writeHashedFile(
  file: string,
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  mode = 0o644,
): Promise<{ size: number; sha256: string }> {
  const w = HashedFileWriter.create(file, mode);
  let n = 0;
  try {
    for await (const chunk of chunks) {
      await w.append(chunk);
      n += chunk.byteLength;
    }
    return { size: n, sha256: await w.finish() };
  } catch (e) {
    w.abort();
    throw e;
  }
}

/**
 * Re-assembles a file entry at `dest`, a path outside the working tree (e.g.
 * `merge --try` candidates, `show -o`). Worktree paths go through
 * `materializeWorktreeFile` (files.ts), which adds the symlink and `.coral`
 * checks. The temp file has a short name (`.coral-tmp-<pid>-<hex>`), so a
 * 255-byte destination name still fits, and is removed on any failure.
 */
export async function materializeFile(
  reader: ObjectReader,
  entry: FileEntry,
  dest: string,
  opts: { known?: KnownTensors } = {},
): Promise<void> {
  if (isSymlinkEntry(entry)) return writeSymlink(reader, entry, dest);
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const tmp = path.join(path.dirname(dest), `.coral-tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
  let ok = false;
  try {
    const { size, sha256: got } = await writeHashedFile(
      tmp,
      fileChunks(reader, entry, opts.known, { release: true, checkedBySha256: true }),
    );
    if (size !== entry.size || got !== entry.sha256) {
      await verifySegments(reader, entry, opts.known);
      throw new ChecksumMismatchError(`re-assembled ${dest} does not match its committed sha256 (${entry.sha256})`, {
        path: dest,
        expected: entry.sha256,
        actual: got,
      });
    }
    await fsp.rename(tmp, dest);
    ok = true;
  } finally {
    if (!ok) await fsp.rm(tmp, { force: true });
  }
  fsyncDirSync(path.dirname(dest));
}

/** Materialises one logical tensor of a file entry (views are copied out of their segment). */
export async function readFileTensor(reader: ObjectReader, entry: FileEntry, te: TensorEntry): Promise<Tensor> {
  const seg = entry.segments[te.segment];
  if (!seg) throw new CorruptObjectError(`tensor ${te.name} names a missing segment`);
  const segT = await reader.tensor(seg.object);
  const dtype = te.dtype as DType;
  const es = DTYPES[dtype].size;
  const n = te.shape.reduce((a, b) => a * b, 1);
  if (!te.strides) {
    const start = te.elementOffset * es;
    if (start + n * es > segT.data.byteLength) throw new CorruptObjectError(`tensor ${te.name} runs past its segment`);
    return tensor(dtype, te.shape, segT.data.subarray(start, start + n * es));
  }
  // Strided view: gather element by element (rare: transposed views saved as-is).
  const out = Buffer.allocUnsafe(n * es);
  const idx = new Array(te.shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    let e = te.elementOffset;
    for (let d = 0; d < idx.length; d++) e += idx[d] * te.strides[d];
    const from = e * es;
    if (from + es > segT.data.byteLength) throw new CorruptObjectError(`tensor ${te.name} runs past its segment`);
    out.set(segT.data.subarray(from, from + es), k * es);
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < te.shape[d]) break;
      idx[d] = 0;
    }
  }
  return tensor(dtype, te.shape, out);
}
