/**
 * GGUF (llama.cpp) files, read in place.
 *
 * File = magic "GGUF", u32 version (2 or 3), u64 tensor count, u64 key/value
 * count, the key/value metadata (key string, u32 value type, value; arrays
 * are u32 element type + u64 count + elements and may nest), the tensor infos
 * (name string, u32 n_dims, u64 dims (innermost first), u32 ggml type, u64
 * offset relative to the data section), padding up to `general.alignment`
 * (default 32), the tensor data (each tensor at an aligned offset) and
 * possibly trailing bytes. Strings are u64 length + UTF-8 bytes. Everything
 * is little-endian; big-endian files (which llama.cpp can write for s390x)
 * are refused.
 *
 * The layout keeps every byte outside the tensor data in the skeleton: the
 * header, the metadata in its order and with its value types, the tensor
 * infos, the padding bytes as they are (not assumed zero) and trailing bytes.
 * F32/F16/BF16/F64 and the integer types are segments of that dtype with the
 * shape reversed to row-major; quantized types (Q4_0, Q8_0, the K-quants, the
 * IQ types, ...) are U8 segments shaped [rows, bytes per row], their blocks
 * kept opaque (deduplicated and delta-encoded as bytes).
 * @see https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
 *
 * @example
 * const h = await readGgufHeader(await FileSource.open('model.gguf'));
 * console.log(h.version, h.alignment, h.tensors.map((t) => `${t.name} ${t.typeName}`));
 */
import { FormatError, LimitExceededError, UnsupportedFormatError } from '../errors';
import type { DType } from '../tensor/dtype';
import { MAX_ELEMENTS } from '../tensor/tensor';
import type { ByteSource } from './io';
import type { CheckpointLayout, Segment, TensorInfo } from './layout-types';
import { WindowReader } from './window';

/** "GGUF" */
export const GGUF_MAGIC = Uint8Array.from([0x47, 0x47, 0x55, 0x46]);
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS. */
export const GGUF_MAX_DIMS = 4;
/** Deepest array nesting accepted (llama.cpp itself reads no nested arrays). */
export const GGUF_MAX_ARRAY_DEPTH = 8;
/** Most key/value pairs and tensors accepted (each costs at least 12 bytes of file, so this is generous). */
export const GGUF_MAX_COUNT = 10_000_000;
/** Longest key or string value accepted. */
export const GGUF_MAX_STRING = 1 << 30;

/** GGUF metadata value types. */
export const GGUF_VALUE_TYPES = [
  'UINT8',
  'INT8',
  'UINT16',
  'INT16',
  'UINT32',
  'INT32',
  'FLOAT32',
  'BOOL',
  'STRING',
  'ARRAY',
  'UINT64',
  'INT64',
  'FLOAT64',
] as const;
const SCALAR_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
const T_STRING = 8;
const T_ARRAY = 9;

interface GgmlType {
  name: string;
  /** Elements per block. */
  block: number;
  /** Bytes per block. */
  bytes: number;
  /** The element dtype for unquantized types. */
  dtype?: DType;
}

/** ggml_type -> block geometry (ggml/src/ggml.c type_traits); retired numbers (4, 5, 31-33, 36-38) are absent. */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map<number, GgmlType>([
  [0, { name: 'F32', block: 1, bytes: 4, dtype: 'F32' }],
  [1, { name: 'F16', block: 1, bytes: 2, dtype: 'F16' }],
  [2, { name: 'Q4_0', block: 32, bytes: 18 }],
  [3, { name: 'Q4_1', block: 32, bytes: 20 }],
  [6, { name: 'Q5_0', block: 32, bytes: 22 }],
  [7, { name: 'Q5_1', block: 32, bytes: 24 }],
  [8, { name: 'Q8_0', block: 32, bytes: 34 }],
  [9, { name: 'Q8_1', block: 32, bytes: 36 }],
  [10, { name: 'Q2_K', block: 256, bytes: 84 }],
  [11, { name: 'Q3_K', block: 256, bytes: 110 }],
  [12, { name: 'Q4_K', block: 256, bytes: 144 }],
  [13, { name: 'Q5_K', block: 256, bytes: 176 }],
  [14, { name: 'Q6_K', block: 256, bytes: 210 }],
  [15, { name: 'Q8_K', block: 256, bytes: 292 }],
  [16, { name: 'IQ2_XXS', block: 256, bytes: 66 }],
  [17, { name: 'IQ2_XS', block: 256, bytes: 74 }],
  [18, { name: 'IQ3_XXS', block: 256, bytes: 98 }],
  [19, { name: 'IQ1_S', block: 256, bytes: 50 }],
  [20, { name: 'IQ4_NL', block: 32, bytes: 18 }],
  [21, { name: 'IQ3_S', block: 256, bytes: 110 }],
  [22, { name: 'IQ2_S', block: 256, bytes: 82 }],
  [23, { name: 'IQ4_XS', block: 256, bytes: 136 }],
  [24, { name: 'I8', block: 1, bytes: 1, dtype: 'I8' }],
  [25, { name: 'I16', block: 1, bytes: 2, dtype: 'I16' }],
  [26, { name: 'I32', block: 1, bytes: 4, dtype: 'I32' }],
  [27, { name: 'I64', block: 1, bytes: 8, dtype: 'I64' }],
  [28, { name: 'F64', block: 1, bytes: 8, dtype: 'F64' }],
  [29, { name: 'IQ1_M', block: 256, bytes: 56 }],
  [30, { name: 'BF16', block: 1, bytes: 2, dtype: 'BF16' }],
  [34, { name: 'TQ1_0', block: 256, bytes: 54 }],
  [35, { name: 'TQ2_0', block: 256, bytes: 66 }],
  [39, { name: 'MXFP4', block: 32, bytes: 17 }],
]);

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufKeyValue {
  key: string;
  /** GGUF value type number (see GGUF_VALUE_TYPES). */
  type: number;
  /** Scalars and strings up to 256 characters; arrays are summarised as `{ type, count }`. */
  value: GgufValue | { arrayType: number; count: number };
}

export interface GgufTensorInfo {
  name: string;
  /** ne[0..n) as in the file, innermost first. */
  dims: number[];
  type: number;
  typeName: string;
  /** Offset relative to the data section. */
  relOffset: number;
  /** Absolute file offset and byte length of the data. */
  offset: number;
  length: number;
}

export interface GgufHeader {
  version: number;
  alignment: number;
  kv: GgufKeyValue[];
  tensors: GgufTensorInfo[];
  /** Absolute offset of the data section (aligned end of the tensor infos). */
  dataStart: number;
}

function fail(label: string, msg: string, data?: Record<string, unknown>): never {
  throw new FormatError(`${label}: ${msg}`, data);
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

class Cursor {
  pos: number;
  constructor(
    readonly w: WindowReader,
    pos: number,
  ) {
    this.pos = pos;
  }
  async u32(what: string): Promise<number> {
    await this.w.need(this.pos, 4, what);
    const v = this.w.u32(this.pos);
    this.pos += 4;
    return v;
  }
  async u64(what: string): Promise<number> {
    await this.w.need(this.pos, 8, what);
    const v = this.w.u64(this.pos);
    this.pos += 8;
    return v;
  }
  /** A GGUF string; the bytes are decoded only up to `keep` (the rest is skipped). */
  async str(what: string, keep = 4096): Promise<string> {
    const n = await this.u64(`${what} length`);
    if (n > GGUF_MAX_STRING)
      throw new LimitExceededError(`${this.w.label}: ${what} at byte ${this.pos - 8} is ${n} bytes long`, {
        offset: this.pos - 8,
      });
    await this.w.need(this.pos, n <= keep ? n : 0, what);
    if (this.pos + n > this.w.size) fail(this.w.label, `${what} at byte ${this.pos} runs past the end of the file`);
    const s = n <= keep ? utf8.decode(this.w.bytes(this.pos, n)) : '';
    this.pos += n;
    return s;
  }
}

async function readValue(c: Cursor, type: number, depth: number, what: string): Promise<GgufKeyValue['value']> {
  if (type === T_STRING) return c.str(what, 256);
  if (type === T_ARRAY) {
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
      throw new LimitExceededError(
        `${c.w.label}: ${what}: arrays nest more than ${GGUF_MAX_ARRAY_DEPTH} deep (nesting bomb?)`,
        { limit: GGUF_MAX_ARRAY_DEPTH },
      );
    const at = await c.u32(`${what} element type`);
    const count = await c.u64(`${what} element count`);
    if (at >= GGUF_VALUE_TYPES.length) fail(c.w.label, `${what}: unknown array element type ${at}`);
    const size = SCALAR_SIZE[at];
    if (size > 0) {
      // Fixed-size elements: skip them without reading (count * size must fit in the file).
      const bytes = count * size;
      if (!(c.pos + bytes <= c.w.size))
        fail(c.w.label, `${what}: array of ${count} ${GGUF_VALUE_TYPES[at]} runs past the end of the file`, {
          count,
        });
      c.pos += bytes;
    } else {
      // Strings or arrays: each element is at least 8 bytes (a u64 length / an element type + count).
      if (!(count * (at === T_STRING ? 8 : 12) <= c.w.size - c.pos))
        fail(c.w.label, `${what}: array of ${count} ${GGUF_VALUE_TYPES[at]} runs past the end of the file`, {
          count,
        });
      if (at === T_STRING) {
        // Token lists hold 10^5 strings: skip them in a tight loop, refilling the window only when needed.
        for (let i = 0; i < count; i++) {
          if (!c.w.has(c.pos, 8)) await c.w.need(c.pos, 8, `${what}[${i}] length`);
          const n = c.w.u64(c.pos);
          if (n > GGUF_MAX_STRING)
            throw new LimitExceededError(`${c.w.label}: ${what}[${i}] at byte ${c.pos} is ${n} bytes long`, {
              offset: c.pos,
            });
          c.pos += 8;
          if (!(c.pos + n <= c.w.size)) fail(c.w.label, `${what}[${i}] at byte ${c.pos} runs past the end of the file`);
          c.pos += n;
        }
      } else for (let i = 0; i < count; i++) await readValue(c, at, depth + 1, `${what}[${i}]`);
    }
    return { arrayType: at, count };
  }
  if (type >= GGUF_VALUE_TYPES.length) fail(c.w.label, `${what}: unknown value type ${type}`);
  const size = SCALAR_SIZE[type];
  await c.w.need(c.pos, size, what);
  const at = c.pos;
  c.pos += size;
  const b = c.w.bytes(at, size);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (type) {
    case 0:
      return dv.getUint8(0);
    case 1:
      return dv.getInt8(0);
    case 2:
      return dv.getUint16(0, true);
    case 3:
      return dv.getInt16(0, true);
    case 4:
      return dv.getUint32(0, true);
    case 5:
      return dv.getInt32(0, true);
    case 6:
      return dv.getFloat32(0, true);
    case 7:
      return dv.getUint8(0) !== 0;
    case 10:
      return dv.getBigUint64(0, true);
    case 11:
      return dv.getBigInt64(0, true);
    default:
      return dv.getFloat64(0, true);
  }
}

/** Reads and validates the header, metadata and tensor infos (never the tensor data). */
export async function readGgufHeader(src: ByteSource): Promise<GgufHeader> {
  const w = new WindowReader(src);
  const label = src.label;
  if (src.size < 24) fail(label, `file is ${src.size} bytes, too short for a GGUF header`);
  await w.need(0, 24, 'GGUF header');
  if (!GGUF_MAGIC.every((b, i) => w.u8(i) === b)) fail(label, 'not a GGUF file (bad magic)');
  const version = w.u32(4);
  if (version === 0x02000000 || version === 0x03000000)
    throw new UnsupportedFormatError(
      `${label}: big-endian GGUF (version ${version >>> 24} byte-swapped) is not supported; convert it to little-endian with llama.cpp's gguf tools`,
      { version },
    );
  if (version === 1)
    throw new UnsupportedFormatError(`${label}: GGUF version 1 (32-bit counts) is not supported`, { version });
  if (version !== 2 && version !== 3)
    throw new UnsupportedFormatError(`${label}: unknown GGUF version ${version}`, { version });
  const tensorCount = w.u64(8);
  const kvCount = w.u64(16);
  for (const [n, what] of [
    [tensorCount, 'tensors'],
    [kvCount, 'key/value pairs'],
  ] as const) {
    if (n > GGUF_MAX_COUNT)
      throw new LimitExceededError(`${label}: header declares ${n} ${what} (limit ${GGUF_MAX_COUNT})`, {
        count: n,
      });
  }
  if (tensorCount * 28 + kvCount * 12 > src.size - 24)
    fail(label, `header declares ${tensorCount} tensors and ${kvCount} key/value pairs, more than the file can hold`);
  const c = new Cursor(w, 24);
  const kv: GgufKeyValue[] = [];
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  for (let i = 0; i < kvCount; i++) {
    const key = await c.str(`key ${i}`);
    const type = await c.u32(`value type of ${JSON.stringify(key)}`);
    const value = await readValue(c, type, 0, `value of ${JSON.stringify(key)}`);
    if (key === 'general.alignment') {
      if (type !== 4 || typeof value !== 'number' || value === 0 || (value & (value - 1)) !== 0)
        fail(
          label,
          `general.alignment must be a UINT32 power of two, got ${GGUF_VALUE_TYPES[type] ?? type} ${typeof value === 'object' ? 'array' : String(value)}`,
        );
      alignment = value;
    }
    kv.push({ key, type, value });
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = await c.str(`tensor ${i} name`);
    const nDims = await c.u32(`tensor ${JSON.stringify(name)} n_dims`);
    if (nDims > GGUF_MAX_DIMS)
      fail(label, `tensor ${JSON.stringify(name)} has ${nDims} dimensions (ggml allows ${GGUF_MAX_DIMS})`, {
        name,
      });
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(await c.u64(`tensor ${JSON.stringify(name)} dims`));
    const type = await c.u32(`tensor ${JSON.stringify(name)} type`);
    const relOffset = await c.u64(`tensor ${JSON.stringify(name)} offset`);
    const t = GGML_TYPES.get(type);
    if (!t)
      throw new UnsupportedFormatError(`${label}: tensor ${JSON.stringify(name)} has unknown ggml type ${type}`, {
        name,
        type,
      });
    let n = 1;
    for (const d of dims) n *= d;
    if (!dims.every((d) => Number.isSafeInteger(d)) || n > MAX_ELEMENTS)
      throw new LimitExceededError(
        `${label}: tensor ${JSON.stringify(name)} dims [${dims.join(', ')}] have more than 2^53 elements`,
        { name },
      );
    if ((nDims > 0 ? dims[0] : 1) % t.block !== 0)
      fail(
        label,
        `tensor ${JSON.stringify(name)}: row length ${dims[0]} is not a multiple of the ${t.name} block size ${t.block}`,
        { name },
      );
    const length = (n / t.block) * t.bytes;
    tensors.push({ name, dims, type, typeName: t.name, relOffset, offset: 0, length });
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const order = tensors.slice().sort((a, b) => a.relOffset - b.relOffset);
  let end = dataStart;
  for (const t of order) {
    if (t.relOffset % alignment !== 0)
      fail(
        label,
        `tensor ${JSON.stringify(t.name)} offset ${t.relOffset} is not a multiple of the alignment ${alignment}`,
        {
          name: t.name,
        },
      );
    t.offset = dataStart + t.relOffset;
    if (!(t.offset + t.length <= src.size))
      fail(
        label,
        `tensor ${JSON.stringify(t.name)} data [${t.offset}, ${t.offset + t.length}) lies past the end of the ${src.size}-byte file`,
        { name: t.name },
      );
    if (t.offset < end && t.length > 0)
      fail(label, `tensor ${JSON.stringify(t.name)} overlaps the data of another tensor`, { name: t.name });
    end = Math.max(end, t.offset + t.length);
  }
  return { version, alignment, kv, tensors, dataStart };
}

/** Small scalar metadata worth keeping in the tree entry (architecture, name, file type ...). */
const METADATA_KEYS = /^general\.(architecture|name|file_type|quantization_version|basename|size_label)$/;

/** The checkpoint layout of a GGUF file: one segment per tensor's data. */
export async function scanGguf(src: ByteSource): Promise<CheckpointLayout> {
  const h = await readGgufHeader(src);
  const order = h.tensors.filter((t) => t.length > 0).sort((a, b) => a.offset - b.offset);
  const segments: Segment[] = [];
  const tensors: TensorInfo[] = [];
  for (const t of order) {
    const g = GGML_TYPES.get(t.type)!;
    const rowMajor = t.dims.slice().reverse();
    let dtype: DType;
    let shape: number[];
    if (g.dtype) {
      dtype = g.dtype;
      shape = rowMajor;
    } else {
      // Quantized rows: [outer dims..., bytes per row].
      dtype = 'U8';
      const rowBytes = ((t.dims[0] ?? 1) / g.block) * g.bytes;
      shape = [...rowMajor.slice(0, -1), rowBytes];
    }
    tensors.push({
      name: t.name,
      dtype,
      shape: shape.slice(),
      segment: segments.length,
      elementOffset: 0,
      strides: null,
    });
    segments.push({ offset: t.offset, length: t.length, dtype, shape, key: t.name });
  }
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  metadata['gguf.version'] = String(h.version);
  metadata['gguf.alignment'] = String(h.alignment);
  for (const e of h.kv) {
    if (METADATA_KEYS.test(e.key) && typeof e.value !== 'object') metadata[e.key] = String(e.value);
  }
  const types = [...new Set(h.tensors.map((t) => t.typeName))].sort();
  metadata['gguf.tensor_types'] = types.join(',');
  return { format: 'gguf', fileSize: src.size, segments, tensors, metadata };
}
