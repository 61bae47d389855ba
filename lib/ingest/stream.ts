/**
 * Ingestion of a checkpoint that arrives as a byte stream (an upload to `coral serve`), with memory
 * bounded by the largest tensor plus a fixed budget whatever the upload's size.
 *
 * - safetensors is parsed as it streams: the 8-byte length and the JSON header are read and validated
 *   first (lib/formats/safetensors.ts, plus the caller's limits on header size, tensor count and tensor
 *   size, before any payload is read), then the tensors are read one by one, in file order, straight into
 *   the pipeline of `ingestFile` (`ingestLayout`: the file's sha256 and skeleton are built on the way, the
 *   next tensor is read while the previous one is encoded). A body that ends early, runs past the file
 *   its header describes, or differs from its declared length is a FormatError.
 * - Every other format (a PyTorch zip, .npz and .npy, which need random access or are small) is spooled to
 *   a private temp directory first and ingested from there by `ingestFile`; the directory is removed
 *   whatever happens.
 *
 * Parsing is strict: a body that is not what its format (magic bytes, or the path's extension) says is
 * refused with the parser's error instead of being stored as a plain file. A file that never looked like
 * a checkpoint (no checkpoint extension, no magic) is stored as a plain file, as `coral add` does.
 *
 * @example
 * const { entry, report, received } = await ingestStream(writer, req.raw, sel.findBase, {}, {
 *   path: 'ckpt/model.safetensors', size: Number(req.headers['content-length']), tmpDir: '/tmp/coral',
 * });
 */
import { createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CoralError, FormatError, LimitExceededError, RemoteUnavailableError } from '../errors';
import { scanSource, type ByteSource, type CheckpointLayout } from '../formats';
import { MAX_HEADER_BYTES, parseSafetensorsHeader } from '../formats/safetensors';
import type { FileEntry } from '../models/tree';
import { allocLarge } from '../native';
import type { ObjectWriter } from '../odb/objects';
import {
  ingestFile,
  ingestLayout,
  type FindBase,
  type IngestHooks,
  type IngestReport,
  type PieceSource,
} from './ingest';

/** Limits an upload is checked against before its payload is read (ServerLimits of lib/server/types.ts). */
export interface StreamLimits {
  /** Largest body, bytes. */
  maxUploadBytes: number;
  /** Largest header block (safetensors JSON header), bytes. */
  maxHeaderBytes: number;
  /** Most tensors in the file. */
  maxTensors: number;
  /** Largest tensor (segment), bytes. */
  maxTensorBytes: number;
}

export interface StreamIngestOptions {
  /** The file's path in the tree (its extension decides how a body without magic bytes is read). */
  path: string;
  /** The declared length (Content-Length), or null/undefined when unknown (chunked). */
  size?: number | null;
  limits?: Partial<StreamLimits>;
  /** Where formats that need random access are spooled (a private subdirectory, removed afterwards). */
  tmpDir: string;
  /** Aborts the ingestion (RemoteUnavailableError); nothing read so far is kept. */
  signal?: AbortSignal;
}

export interface StreamIngestResult {
  entry: FileEntry;
  report: IngestReport;
  /** Body bytes read. */
  received: number;
  /** 'stream' (safetensors parsed as it arrived) or 'spool' (a temp file first). */
  mode: 'stream' | 'spool';
}

/**
 * Exact reads from an async byte stream, with a limit on the total and a look-ahead for format sniffing.
 * Not a general-purpose reader: one consumer, reads in order.
 */
export class StreamBytes {
  private readonly it: AsyncIterator<unknown>;
  private cur: Buffer | null = null;
  private curOff = 0;
  private ended = false;
  /** Bytes taken from the underlying stream so far. */
  received = 0;
  /** Bytes handed to the consumer so far. */
  consumed = 0;

  constructor(
    body: AsyncIterable<unknown>,
    private readonly opts: { limit?: number; signal?: AbortSignal; label?: string } = {},
  ) {
    this.it = body[Symbol.asyncIterator]();
  }

  private get label(): string {
    return this.opts.label ?? 'upload';
  }

  /** The iterator's next step, or a rejection as soon as the signal aborts (a stalled client never holds a shutdown). */
  private next(): Promise<IteratorResult<unknown>> {
    const signal = this.opts.signal;
    if (!signal) return this.it.next();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new RemoteUnavailableError('the server is shutting down; upload aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.it.next().then(
        (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  /** The next chunk, or false at the end of the stream. */
  private async fill(): Promise<boolean> {
    while (!this.cur || this.curOff >= this.cur.byteLength) {
      if (this.ended) return false;
      if (this.opts.signal?.aborted) throw new RemoteUnavailableError('the server is shutting down; upload aborted');
      let r: IteratorResult<unknown>;
      try {
        r = await this.next();
      } catch (e) {
        if (e instanceof CoralError) throw e;
        if (this.opts.signal?.aborted) throw new RemoteUnavailableError('the server is shutting down; upload aborted');
        throw new FormatError(
          `${this.label}: the upload was cut off after ${this.received} bytes (${(e as Error).message})`,
          { received: this.received },
        );
      }
      if (r.done) {
        this.ended = true;
        this.cur = null;
        return false;
      }
      const v = r.value;
      const chunk = Buffer.isBuffer(v)
        ? v
        : v instanceof Uint8Array
          ? Buffer.from(v.buffer, v.byteOffset, v.byteLength)
          : Buffer.from(String(v));
      this.received += chunk.byteLength;
      if (this.opts.limit !== undefined && this.received > this.opts.limit)
        throw new LimitExceededError(`${this.label}: the body is larger than the ${this.opts.limit}-byte limit`, {
          limit: this.opts.limit,
        });
      this.cur = chunk;
      this.curOff = 0;
    }
    return true;
  }

  /** Fills `dst` completely; FormatError (truncated) when the stream ends first. */
  async readInto(dst: Uint8Array, what = 'data'): Promise<void> {
    let done = 0;
    while (done < dst.byteLength) {
      if (!(await this.fill()))
        throw new FormatError(
          `${this.label}: the upload ended after ${this.consumed} bytes, in the middle of ${what} (truncated)`,
          { received: this.consumed },
        );
      const cur = this.cur!;
      const n = Math.min(dst.byteLength - done, cur.byteLength - this.curOff);
      dst.set(cur.subarray(this.curOff, this.curOff + n), done);
      this.curOff += n;
      done += n;
      this.consumed += n;
    }
  }

  async readExact(n: number, what?: string): Promise<Buffer> {
    const b = Buffer.allocUnsafe(n);
    await this.readInto(b, what);
    return b;
  }

  /** Up to `n` bytes, consumed (fewer only at the end of the stream). */
  async readUpTo(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n && (await this.fill())) {
      const cur = this.cur!;
      const k = Math.min(n - got, cur.byteLength - this.curOff);
      parts.push(cur.subarray(this.curOff, this.curOff + k));
      this.curOff += k;
      got += k;
      this.consumed += k;
    }
    return Buffer.concat(parts, got);
  }

  /** True when no byte is left. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill());
  }

  /** The rest of the stream, chunk by chunk (for spooling). */
  async *rest(): AsyncGenerator<Buffer> {
    while (await this.fill()) {
      const c = this.cur!.subarray(this.curOff);
      this.curOff = this.cur!.byteLength;
      this.consumed += c.byteLength;
      yield c;
    }
  }
}

/** Does this start look like a safetensors file (a plausible header length, then '{')? */
function looksSafetensors(head: Uint8Array): boolean {
  if (head.byteLength < 9 || head[8] !== 0x7b) return false;
  const n = Buffer.from(head.buffer, head.byteOffset, 8).readBigUInt64LE(0);
  return n >= 2n && n <= BigInt(MAX_HEADER_BYTES);
}

function extOf(p: string): string {
  return /\.([A-Za-z0-9]+)$/.exec(p)?.[1].toLowerCase() ?? '';
}

/** Refuses a layout over the limits (tensor count, tensor size, file size). */
export function checkLimits(layout: CheckpointLayout, limits: Partial<StreamLimits>, label: string): void {
  if (limits.maxUploadBytes !== undefined && layout.fileSize > limits.maxUploadBytes)
    throw new LimitExceededError(
      `${label}: the file is ${layout.fileSize} bytes, over the ${limits.maxUploadBytes}-byte upload limit`,
      { size: layout.fileSize, limit: limits.maxUploadBytes },
    );
  if (limits.maxTensors !== undefined && layout.tensors.length > limits.maxTensors)
    throw new LimitExceededError(
      `${label}: ${layout.tensors.length} tensors, over the limit of ${limits.maxTensors} per file`,
      { tensors: layout.tensors.length, limit: limits.maxTensors },
    );
  if (limits.maxTensorBytes !== undefined)
    for (const s of layout.segments)
      if (s.length > limits.maxTensorBytes)
        throw new LimitExceededError(
          `${label}: tensor ${JSON.stringify(s.key)} is ${s.length} bytes, over the ${limits.maxTensorBytes}-byte limit`,
          { tensor: s.key, bytes: s.length, limit: limits.maxTensorBytes },
        );
}

/**
 * Ingests one file from a stream into `writer` (objects only: the caller flushes or aborts the writer and
 * records the entry). Errors: FormatError (truncated, malformed, trailing bytes, length mismatch),
 * LimitExceededError, UnsupportedFormatError, UnsafePickleError; RemoteUnavailableError when `signal`
 * aborts. Whatever happens, no temp file is left.
 */
export async function ingestStream(
  writer: ObjectWriter,
  body: Readable | AsyncIterable<unknown>,
  findBase: FindBase | null,
  hooks: IngestHooks,
  opts: StreamIngestOptions,
): Promise<StreamIngestResult> {
  const limits = opts.limits ?? {};
  const label = opts.path;
  const size = opts.size ?? null;
  if (size !== null && limits.maxUploadBytes !== undefined && size > limits.maxUploadBytes)
    throw new LimitExceededError(`${label}: the body is ${size} bytes, over the ${limits.maxUploadBytes}-byte limit`, {
      size,
      limit: limits.maxUploadBytes,
    });
  const bytes = new StreamBytes(body, { limit: limits.maxUploadBytes, signal: opts.signal, label });
  const head = await bytes.readUpTo(16);
  const ext = extOf(opts.path);
  if (looksSafetensors(head)) {
    const r = await streamSafetensors(writer, bytes, head, findBase, hooks, { ...opts, size, limits });
    return { ...r, received: bytes.received, mode: 'stream' };
  }
  if (ext === 'safetensors')
    throw new FormatError(`${label}: the body is not a safetensors file (no 8-byte header length followed by '{')`);
  const r = await spoolAndIngest(writer, bytes, head, findBase, hooks, { ...opts, size, limits });
  return { ...r, received: bytes.received, mode: 'spool' };
}

async function streamSafetensors(
  writer: ObjectWriter,
  bytes: StreamBytes,
  sniffed: Buffer,
  findBase: FindBase | null,
  hooks: IngestHooks,
  opts: StreamIngestOptions & { size: number | null; limits: Partial<StreamLimits> },
): Promise<{ entry: FileEntry; report: IngestReport }> {
  const label = opts.path;
  const n = Number(sniffed.readBigUInt64LE(0));
  const maxHeader = Math.min(MAX_HEADER_BYTES, opts.limits.maxHeaderBytes ?? MAX_HEADER_BYTES);
  if (n > maxHeader)
    throw new LimitExceededError(`${label}: the safetensors header is ${n} bytes, over the ${maxHeader}-byte limit`, {
      headerLength: n,
      limit: maxHeader,
    });
  if (opts.size !== null && 8 + n > opts.size)
    throw new FormatError(`${label}: header length ${n} runs past the end of the ${opts.size}-byte body`, {
      headerLength: n,
    });
  // The header bytes: what was sniffed, then the rest.
  const head = Buffer.allocUnsafe(8 + n);
  sniffed.copy(head, 0, 0, Math.min(sniffed.byteLength, head.byteLength));
  const surplus = sniffed.byteLength > head.byteLength ? sniffed.subarray(head.byteLength) : null;
  if (sniffed.byteLength < head.byteLength)
    await bytes.readInto(head.subarray(sniffed.byteLength), 'the safetensors header');
  const h = parseSafetensorsHeader(head.subarray(8), opts.size, label);
  const last = h.entries[h.entries.length - 1];
  const fileSize = h.dataStart + (last ? last.dataOffsets[1] : 0);
  // The layout exactly as `coral add` makes it (lib/formats/layout.ts), from the header bytes alone.
  const src: ByteSource = {
    label,
    size: fileSize,
    read: (offset, length, what = 'read') => {
      if (offset + length > head.byteLength)
        return Promise.reject(new FormatError(`${label}: ${what} at byte ${offset} lies outside the header`));
      return Promise.resolve(head.subarray(offset, offset + length));
    },
  };
  const layout = await scanSource(src, { format: 'safetensors' });
  checkLimits(layout, opts.limits, label);

  // Pieces in file order: the bytes already read (header, sniffed surplus) first, then the stream.
  let pos = 0;
  const pending: Buffer[] = surplus ? [head, surplus] : [head];
  const fillFrom = async (dst: Uint8Array, what: string) => {
    let done = 0;
    while (done < dst.byteLength && pending.length) {
      const p = pending[0];
      const k = Math.min(p.byteLength, dst.byteLength - done);
      dst.set(p.subarray(0, k), done);
      done += k;
      if (k === p.byteLength) pending.shift();
      else pending[0] = p.subarray(k);
    }
    if (done < dst.byteLength) await bytes.readInto(dst.subarray(done), what);
    pos += dst.byteLength;
  };
  const source: PieceSource = {
    read: async (from, offset, length, alloc = allocLarge) => {
      if (from !== pos) throw new FormatError(`${label}: internal: read at ${from}, stream at ${pos}`);
      const gap = offset > from ? Buffer.allocUnsafe(offset - from) : null;
      if (gap) await fillFrom(gap, 'the skeleton');
      const buf = alloc(length);
      await fillFrom(buf, `tensor data at byte ${offset}`);
      return { gap, buf };
    },
    tail: async (from, length) => {
      const b = Buffer.allocUnsafe(length);
      await fillFrom(b, 'the end of the file');
      return b;
    },
    done: async () => {
      if (pending.some((p) => p.byteLength > 0) || !(await bytes.atEnd()))
        throw new FormatError(
          `${label}: the body runs past the end of the ${fileSize}-byte safetensors file its header describes`,
          { fileSize },
        );
      if (opts.size !== null && bytes.consumed !== opts.size)
        throw new FormatError(`${label}: ${bytes.consumed} bytes received, ${opts.size} declared`);
    },
  };
  return ingestLayout(writer, layout, source, opts.path, findBase, hooks, { strict: true });
}

async function spoolAndIngest(
  writer: ObjectWriter,
  bytes: StreamBytes,
  sniffed: Buffer,
  findBase: FindBase | null,
  hooks: IngestHooks,
  opts: StreamIngestOptions & { size: number | null; limits: Partial<StreamLimits> },
): Promise<{ entry: FileEntry; report: IngestReport }> {
  await fsp.mkdir(opts.tmpDir, { recursive: true });
  const dir = await fsp.mkdtemp(path.join(opts.tmpDir, 'ingest-'));
  try {
    // The file keeps its name, so format detection sees the extension `coral add` would see.
    const file = path.join(dir, path.posix.basename(opts.path));
    await pipeline(
      (async function* () {
        if (sniffed.byteLength) yield sniffed;
        yield* bytes.rest();
      })(),
      createWriteStream(file, { flags: 'wx' }),
    );
    if (opts.size !== null && bytes.consumed !== opts.size)
      throw new FormatError(
        `${opts.path}: the upload ended after ${bytes.consumed} bytes, ${opts.size} declared (truncated)`,
        { received: bytes.consumed, declared: opts.size },
      );
    return await ingestFile(writer, file, opts.path, findBase, hooks, {
      strict: true,
      checkLayout: (l) => checkLimits(l, opts.limits, opts.path),
    });
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
