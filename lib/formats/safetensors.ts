/**
 * safetensors read/write in pure TypeScript.
 *
 * File = u64 little-endian header length N, N bytes of UTF-8 JSON, then the
 * byte buffer. The header maps tensor names to `{dtype, shape, data_offsets}`
 * (offsets relative to the buffer) plus an optional `__metadata__` string map.
 *
 * Reading is streaming: {@link SafetensorsFile.open} reads and validates only
 * the header; `file.tensor(name)` reads just that tensor's byte range, so a
 * file larger than RAM can be walked tensor by tensor.
 *
 * Writing follows the reference Rust crate (safetensors/src/tensor.rs
 * `prepare`): tensors sorted by descending dtype alignment (the crate's `Dtype`
 * enum order), then by name (byte order), `__metadata__` first in the JSON,
 * header padded with spaces to a multiple of 8 bytes so every tensor starts
 * aligned.
 * @see https://github.com/huggingface/safetensors
 *
 * @example
 * const f = await SafetensorsFile.open('model.safetensors');
 * try { for (const e of f.entries) console.log(e.name, (await f.tensor(e.name)).shape); }
 * finally { await f.close(); }
 */
import {
  FormatError,
  InvalidArgumentError,
  LimitExceededError,
  UnsupportedFormatError,
  invalidParameter,
} from '../errors';
import { DTYPES, isDType, type DType } from '../tensor/dtype';
import { type Tensor, byteLength, numel, MAX_ELEMENTS } from '../tensor/tensor';
import { BufferSource, FileSource, type ByteSource, MemorySink, type Sink, u64le, writeFileAtomic } from './io';

/** Largest JSON header accepted, as in the reference implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Most dimensions accepted for one tensor. */
export const MAX_RANK = 64;

/** Alignment order of the reference crate's `Dtype` enum (ascending). */
const ALIGN_ORDER: readonly DType[] = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];
const ALIGN_RANK: Record<string, number> = Object.fromEntries(ALIGN_ORDER.map((d, i) => [d, i]));

export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Offsets relative to the start of the byte buffer, as in the header. */
  dataOffsets: [number, number];
  /** Absolute file offset of the tensor bytes. */
  offset: number;
  /** Byte length. */
  length: number;
}

export interface SafetensorsHeader {
  /** N, the JSON header length (includes the space padding). */
  headerLength: number;
  /** Absolute offset of the byte buffer (8 + N). */
  dataStart: number;
  /** Entries sorted by offset. */
  entries: SafetensorsEntry[];
  metadata?: Record<string, string>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function fail(label: string, msg: string, data?: Record<string, unknown>): never {
  throw new FormatError(`${label}: ${msg}`, data);
}

/** Validates a declared shape from a file header; throws FormatError / LimitExceededError. */
export function checkDeclaredShape(shape: unknown, label: string, name: string): number[] {
  if (!Array.isArray(shape)) fail(label, `tensor ${JSON.stringify(name)} has a shape that is not an array`);
  if (shape.length > MAX_RANK) {
    throw new LimitExceededError(
      `${label}: tensor ${JSON.stringify(name)} has ${shape.length} dimensions (limit ${MAX_RANK})`,
    );
  }
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      fail(label, `tensor ${JSON.stringify(name)} has an invalid dimension ${JSON.stringify(d)}`);
    }
    if (!Number.isSafeInteger(d)) {
      throw new LimitExceededError(`${label}: tensor ${JSON.stringify(name)} dimension ${d} exceeds 2^53`);
    }
    n *= d;
  }
  // A zero dimension makes the product 0 whatever the others are, but the
  // other dimensions must still be sane on their own.
  if (n > MAX_ELEMENTS || !shape.every((d) => d <= MAX_ELEMENTS)) {
    throw new LimitExceededError(
      `${label}: tensor ${JSON.stringify(name)} shape [${shape.join(', ')}] has more than 2^53 elements`,
      { shape },
    );
  }
  return shape.slice() as number[];
}

/**
 * Parses and validates the JSON header (`json` = the N header bytes) against
 * a file of `fileSize` bytes, or, when `fileSize` is null (a stream of unknown
 * length), against the size the header implies (the file ends where its last
 * tensor ends: `dataStart` + the end of the last entry). Throws FormatError,
 * UnsupportedFormatError or LimitExceededError.
 */
export function parseSafetensorsHeader(
  json: Uint8Array,
  fileSize: number | null,
  label = '<safetensors>',
): SafetensorsHeader {
  const headerLength = json.byteLength;
  const dataStart = 8 + headerLength;
  let text: string;
  try {
    text = utf8.decode(json);
  } catch {
    fail(label, 'header is not valid UTF-8');
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    fail(label, `header is not valid JSON (${(e as Error).message})`);
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) fail(label, 'header JSON is not an object');
  let metadata: Record<string, string> | undefined;
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(obj as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(label, '__metadata__ is not an object');
      metadata = Object.create(null) as Record<string, string>; // a "__proto__" key stays a key
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') fail(label, `__metadata__[${JSON.stringify(k)}] is not a string`);
        metadata[k] = s;
      }
      continue;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      fail(label, `tensor ${JSON.stringify(name)} is not an object`);
    const info = v as Record<string, unknown>;
    const dt = info.dtype;
    if (typeof dt !== 'string') fail(label, `tensor ${JSON.stringify(name)} has no dtype string`);
    if (!isDType(dt)) {
      throw new UnsupportedFormatError(
        `${label}: tensor ${JSON.stringify(name)} has unsupported dtype ${JSON.stringify(dt)}`,
        { dtype: dt },
      );
    }
    const shape = checkDeclaredShape(info.shape, label, name);
    const offs = info.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)
    ) {
      fail(label, `tensor ${JSON.stringify(name)} has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [s, e] = offs as [number, number];
    if (
      !Number.isSafeInteger(s) ||
      !Number.isSafeInteger(e) ||
      e < s ||
      (fileSize !== null && dataStart + e > fileSize) ||
      !Number.isSafeInteger(dataStart + e)
    ) {
      fail(
        label,
        `tensor ${JSON.stringify(name)} data_offsets [${s}, ${e}] are out of range${fileSize === null ? '' : ` for a ${fileSize - dataStart}-byte buffer`}`,
        { name, dataOffsets: [s, e] },
      );
    }
    const want = numel(shape) * DTYPES[dt].size;
    if (e - s !== want) {
      fail(
        label,
        `tensor ${JSON.stringify(name)} is ${dt}[${shape.join(', ')}] = ${want} bytes but data_offsets span ${e - s}`,
        { name, expected: want, actual: e - s },
      );
    }
    entries.push({ name, dtype: dt, shape, dataOffsets: [s, e], offset: dataStart + s, length: e - s });
  }
  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  // The buffer must be covered exactly: no gaps, no overlaps, ends at EOF.
  let cursor = 0;
  for (const en of entries) {
    if (en.dataOffsets[0] !== cursor) {
      fail(
        label,
        en.dataOffsets[0] < cursor
          ? `tensor ${JSON.stringify(en.name)} overlaps the previous tensor (starts at ${en.dataOffsets[0]}, previous ends at ${cursor})`
          : `gap in the byte buffer before tensor ${JSON.stringify(en.name)} (bytes [${cursor}, ${en.dataOffsets[0]}) unused)`,
        { name: en.name },
      );
    }
    cursor = en.dataOffsets[1];
  }
  if (fileSize !== null && dataStart + cursor !== fileSize) {
    fail(
      label,
      `tensors cover ${cursor} bytes of a ${fileSize - dataStart}-byte buffer (trailing bytes or truncation)`,
    );
  }
  return { headerLength, dataStart, entries, metadata };
}

/** Reads and validates the 8-byte length and the JSON header of a source. */
export async function readSafetensorsHeader(src: ByteSource): Promise<SafetensorsHeader> {
  if (src.size < 8) fail(src.label, `file is ${src.size} bytes, too short for a safetensors header`);
  const n = u64le(await src.read(0, 8), 0);
  if (n > MAX_HEADER_BYTES) {
    throw new LimitExceededError(`${src.label}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, {
      headerLength: n,
    });
  }
  if (8 + n > src.size)
    fail(src.label, `header length ${n} runs past the end of the ${src.size}-byte file`, { headerLength: n });
  const json = await src.read(8, n);
  return parseSafetensorsHeader(json, src.size, src.label);
}

/** An open safetensors file: header parsed, tensors read on demand. */
export class SafetensorsFile {
  private readonly byName: Map<string, SafetensorsEntry>;

  private constructor(
    readonly source: ByteSource,
    readonly header: SafetensorsHeader,
    private readonly owned: boolean,
  ) {
    this.byName = new Map(header.entries.map((e) => [e.name, e]));
  }

  static async open(input: string | Uint8Array | ByteSource): Promise<SafetensorsFile> {
    if (typeof input === 'string') {
      const src = await FileSource.open(input);
      try {
        return new SafetensorsFile(src, await readSafetensorsHeader(src), true);
      } catch (e) {
        await src.close();
        throw e;
      }
    }
    const src = input instanceof Uint8Array ? new BufferSource(input) : input;
    return new SafetensorsFile(src, await readSafetensorsHeader(src), false);
  }

  /** Entries in file (offset) order. */
  get entries(): readonly SafetensorsEntry[] {
    return this.header.entries;
  }
  get metadata(): Record<string, string> | undefined {
    return this.header.metadata;
  }
  names(): string[] {
    return this.header.entries.map((e) => e.name);
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  entry(name: string): SafetensorsEntry {
    const e = this.byName.get(name);
    if (!e) throw new InvalidArgumentError(`${this.source.label}: no tensor named ${JSON.stringify(name)}`, { name });
    return e;
  }
  /** Reads just this tensor's bytes. */
  async tensor(name: string): Promise<Tensor> {
    const e = this.entry(name);
    const data = await this.source.read(e.offset, e.length, `tensor ${JSON.stringify(name)}`);
    return { dtype: e.dtype, shape: e.shape.slice(), data };
  }
  /** Yields tensors one at a time in file order (one tensor in memory at a time). */
  async *[Symbol.asyncIterator](): AsyncGenerator<[string, Tensor]> {
    for (const e of this.header.entries) yield [e.name, await this.tensor(e.name)];
  }
  async close(): Promise<void> {
    if (this.owned) await (this.source as FileSource).close();
  }
}

/** Reads a whole safetensors file (or bytes) into memory. */
export async function readSafetensors(
  input: string | Uint8Array,
): Promise<{ tensors: Map<string, Tensor>; metadata?: Record<string, string> }> {
  const f = await SafetensorsFile.open(input);
  try {
    const tensors = new Map<string, Tensor>();
    for await (const [k, t] of f) tensors.set(k, t);
    return { tensors, metadata: f.metadata };
  } finally {
    await f.close();
  }
}

export type TensorMap = Record<string, Tensor> | Map<string, Tensor>;

function entriesOf(tensors: TensorMap): [string, Tensor][] {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of list) {
    if (typeof name !== 'string') throw invalidParameter('tensor name', 'string', name);
    if (name === '__metadata__') throw new InvalidArgumentError('a tensor cannot be named "__metadata__"');
    if (!t || !isDType(t.dtype) || !Array.isArray(t.shape) || !(t.data instanceof Uint8Array)) {
      throw invalidParameter(`tensors[${JSON.stringify(name)}]`, 'Tensor {dtype, shape, data}', t);
    }
    if (t.data.byteLength !== byteLength(t.dtype, t.shape)) {
      throw new InvalidArgumentError(
        `tensor ${JSON.stringify(name)}: ${t.data.byteLength} bytes but ${t.dtype}[${t.shape.join(', ')}] needs ${byteLength(t.dtype, t.shape)}`,
      );
    }
  }
  return list;
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Header bytes (length prefix + padded JSON) and tensors in file order. */
function prepare(tensors: TensorMap, metadata?: Record<string, string>): { head: Buffer; order: [string, Tensor][] } {
  const order = entriesOf(tensors);
  order.sort((x, y) => ALIGN_RANK[y[1].dtype] - ALIGN_RANK[x[1].dtype] || compareUtf8(x[0], y[0]));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object')
      throw invalidParameter('metadata', 'object of strings', metadata);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw invalidParameter(`metadata[${JSON.stringify(k)}]`, 'string', v);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  // Build the JSON by hand so a tensor named "__proto__" or "constructor" is just a key.
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  for (const [name, t] of order) {
    const n = t.data.byteLength;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + n}]}`,
    );
    offset += n;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded > MAX_HEADER_BYTES)
    throw new LimitExceededError(`safetensors header would be ${padded} bytes (limit ${MAX_HEADER_BYTES})`);
  const head = Buffer.alloc(8 + padded, 0x20);
  head.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(head, 8);
  return { head, order };
}

async function writeTo(sink: Sink, tensors: TensorMap, metadata?: Record<string, string>): Promise<void> {
  const { head, order } = prepare(tensors, metadata);
  await sink.write(head);
  for (const [, t] of order) if (t.data.byteLength) await sink.write(t.data);
}

/** Serializes tensors to safetensors bytes in memory. */
export function serializeSafetensors(tensors: TensorMap, metadata?: Record<string, string>): Buffer {
  const { head, order } = prepare(tensors, metadata);
  const sink = new MemorySink();
  sink.writeSync(head);
  for (const [, t] of order) sink.writeSync(t.data);
  return sink.toBuffer();
}

/** Writes a safetensors file, one tensor at a time (temp file + rename). */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, (sink) => writeTo(sink, tensors, metadata));
}
