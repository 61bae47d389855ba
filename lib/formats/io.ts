/**
 * Positional byte sources for the format readers: a file read through a
 * `FileHandle` at explicit offsets (never slurped), or bytes already in memory.
 * Every read is bounds-checked against the source size first, so a hostile
 * header can never make a reader allocate more than the file holds.
 *
 * @example
 * const src = await FileSource.open('model.safetensors');
 * try { const head = await src.read(0, 8); } finally { await src.close(); }
 */
import { promises as fsp } from 'node:fs';
import { FormatError, IoError } from '../errors';
import { writeFileAtomicWith } from '../util/fsutil';

export interface ByteSource {
  /** Total bytes available. */
  readonly size: number;
  /** Exactly `length` bytes at `offset`; FormatError when the range passes the end. */
  read(offset: number, length: number, what?: string): Promise<Uint8Array>;
  /** Human label for error messages (a path, or "<buffer>"). */
  readonly label: string;
}

/** Largest single `FileHandle.read` call (the OS caps one read near 2 GiB). */
const READ_CHUNK = 1 << 30;

function checkRange(src: ByteSource, offset: number, length: number, what: string): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > src.size
  ) {
    throw new FormatError(
      `${src.label}: ${what} at bytes [${offset}, ${offset + length}) lies past the end of the ${src.size}-byte file (truncated?)`,
      { offset, length, size: src.size },
    );
  }
}

/** A file opened read-only; reads at explicit offsets. Close it when done. */
export class FileSource implements ByteSource {
  private constructor(
    readonly fh: fsp.FileHandle,
    readonly size: number,
    readonly label: string,
  ) {}

  static async open(path: string): Promise<FileSource> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(path, 'r');
    } catch (e) {
      throw new IoError(`cannot open ${path}: ${(e as Error).message}`, { path });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new IoError(`${path} is not a regular file`, { path });
      return new FileSource(fh, st.size, path);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Wraps an already-open handle (the caller keeps ownership). */
  static async fromHandle(fh: fsp.FileHandle, label = '<file>'): Promise<FileSource> {
    const st = await fh.stat();
    return new FileSource(fh, st.size, label);
  }

  async read(offset: number, length: number, what = 'read'): Promise<Uint8Array> {
    checkRange(this, offset, length, what);
    const out = Buffer.allocUnsafeSlow(length);
    await readInto(this.fh, out, offset, this.label);
    return out;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Fills `dst` from `fh` starting at file offset `offset`; FormatError on a short file. */
export async function readInto(fh: fsp.FileHandle, dst: Uint8Array, offset: number, label = '<file>'): Promise<void> {
  let done = 0;
  while (done < dst.byteLength) {
    const n = Math.min(READ_CHUNK, dst.byteLength - done);
    const { bytesRead } = await fh.read(dst, done, n, offset + done);
    if (bytesRead === 0) {
      throw new FormatError(`${label}: unexpected end of file at byte ${offset + done}`, { offset: offset + done });
    }
    done += bytesRead;
  }
}

/** Bytes in memory; reads are zero-copy subarrays. */
export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly label = '<buffer>',
  ) {
    this.size = bytes.byteLength;
  }
  async read(offset: number, length: number, what = 'read'): Promise<Uint8Array> {
    return this.readSync(offset, length, what);
  }
  readSync(offset: number, length: number, what = 'read'): Uint8Array {
    checkRange(this, offset, length, what);
    return this.bytes.subarray(offset, offset + length);
  }
}

/** Opens `path` (or wraps bytes), runs `fn`, and always closes what it opened. */
export async function withSource<T>(
  input: string | Uint8Array | ByteSource,
  fn: (src: ByteSource) => Promise<T>,
): Promise<T> {
  if (typeof input === 'string') {
    const src = await FileSource.open(input);
    try {
      return await fn(src);
    } finally {
      await src.close();
    }
  }
  if (input instanceof Uint8Array) return fn(new BufferSource(input));
  return fn(input);
}

export function u64le(b: Uint8Array, at: number): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const lo = dv.getUint32(at, true);
  const hi = dv.getUint32(at + 4, true);
  // Values >= 2^53 are reported as Infinity so callers' range checks reject them.
  if (hi >= 0x200000) return Number.POSITIVE_INFINITY;
  return hi * 0x100000000 + lo;
}

export function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** A sink that writes sequentially to a file handle, tracking the position. */
export class FileSink {
  position = 0;
  constructor(readonly fh: fsp.FileHandle) {}
  async write(chunk: Uint8Array): Promise<void> {
    let done = 0;
    while (done < chunk.byteLength) {
      const n = Math.min(READ_CHUNK, chunk.byteLength - done);
      const { bytesWritten } = await this.fh.write(chunk, done, n, this.position);
      done += bytesWritten;
      this.position += bytesWritten;
    }
  }
}

/** A sink collecting chunks in memory. */
export class MemorySink {
  position = 0;
  readonly chunks: Uint8Array[] = [];
  async write(chunk: Uint8Array): Promise<void> {
    this.writeSync(chunk);
  }
  writeSync(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.position += chunk.byteLength;
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.position);
  }
}

export interface Sink {
  position: number;
  write(chunk: Uint8Array): Promise<void>;
}

/** Writes to `path` via a temp file + fsync + rename + directory fsync (lib/util/fsutil.ts), so readers never see a half-written file. */
export async function writeFileAtomic(path: string, fn: (sink: FileSink) => Promise<void>): Promise<void> {
  await writeFileAtomicWith(path, (fh) => fn(new FileSink(fh)), { mode: 0o666 });
}
