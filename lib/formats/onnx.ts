/**
 * ONNX models (`.onnx`, a protobuf `ModelProto`), split at the wire level.
 *
 * The scanner walks the protobuf fields in place (lib/formats/protobuf.ts) and
 * never decodes and re-encodes the message: protobuf serialization is not
 * canonical, so only the original bytes give the original file back. Tensor
 * payloads become segments; every other byte (the graph, names, dims, the
 * field tags and lengths in front of each payload) stays in the skeleton.
 *
 * Where tensors hide, all found:
 * - graph initializers (`GraphProto.initializer`) and sparse initializers
 *   (`GraphProto.sparse_initializer`: the `values` and `indices` tensors);
 * - node attributes (`AttributeProto.t` / `.tensors` / `.sparse_tensor(s)`),
 *   which is where `Constant` nodes keep their value;
 * - subgraphs in attributes (`.g` / `.graphs`: If branches, Loop and Scan
 *   bodies), recursively; functions (`ModelProto.functions`: their nodes and
 *   default attributes); training info (`initialization` and `algorithm` graphs).
 *
 * Which payloads are segments: `raw_data` (little-endian element bytes), and
 * the packed `float_data` (FLOAT, COMPLEX64) and `double_data` (DOUBLE,
 * COMPLEX128) fields, whose bytes are fixed-width little-endian elements. The
 * other typed fields (`int32_data`, `int64_data`, `uint64_data`) are varint
 * encoded, and `int32_data` carries FLOAT16/BFLOAT16/INT8/... as widened
 * values, so their bytes do not map 1:1 to elements: they stay in the skeleton
 * (as do unpacked repeated fields and `string_data`). A raw_data payload of a
 * type coral has no dtype for (INT4, COMPLEX, FNUZ floats, ...) is a U8 segment.
 *
 * External data (`data_location = EXTERNAL`, `external_data` entries
 * `location`/`offset`/`length`): the payload is in another file; the .onnx
 * keeps only the reference (skeleton), and the data file, when it is stored
 * too, gets a layout of its own from the references (lib/formats/onnx-external.ts).
 *
 * Names: a tensor's own `name` when it has one; otherwise `<node>.<attribute>`
 * (node = its name, or its first output). Tensors of a subgraph are prefixed
 * `<node>.<attribute>/`, of a function `function:<name>/`, of training info
 * `training_info[i].<initialization|algorithm>/`; sparse tensors get
 * `:values` / `:indices`; a repeated name gets `#2`, `#3`, ...
 * @see https://github.com/onnx/onnx/blob/main/onnx/onnx.proto
 *
 * @example
 * const info = await readOnnxTensors(await FileSource.open('model.onnx'));
 * for (const t of info.tensors) console.log(t.name, t.dtype, t.shape, t.storage);
 */
import { FormatError, LimitExceededError } from '../errors';
import { DTYPES, type DType } from '../tensor/dtype';
import { MAX_ELEMENTS } from '../tensor/tensor';
import type { ByteSource } from './io';
import type { CheckpointLayout, Segment, TensorInfo } from './layout-types';
import {
  type Field,
  WIRE_I32,
  WIRE_I64,
  WIRE_LEN,
  WIRE_VARINT,
  fieldBatches,
  readPackedVarints,
  readString,
} from './protobuf';
import { WindowReader } from './window';

/** Deepest message nesting accepted (a graph in an attribute in a node in a graph ... ): deeper is a nesting bomb. */
export const MAX_ONNX_DEPTH = 64;
/** Most tensors accepted in one model. */
export const MAX_ONNX_TENSORS = 1_000_000;
/** Most dimensions accepted for one tensor. */
export const MAX_ONNX_RANK = 64;

/** TensorProto.DataType -> coral dtype, where the little-endian element bytes match 1:1. */
const ONNX_DTYPES: ReadonlyMap<number, DType> = new Map([
  [1, 'F32'],
  [2, 'U8'],
  [3, 'I8'],
  [4, 'U16'],
  [5, 'I16'],
  [6, 'I32'],
  [7, 'I64'],
  [9, 'BOOL'],
  [10, 'F16'],
  [11, 'F64'],
  [12, 'U32'],
  [13, 'U64'],
  [16, 'BF16'],
  [17, 'F8_E4M3'],
  [19, 'F8_E5M2'],
] as [number, DType][]);

/** Complex types: pairs of floats (COMPLEX64) or doubles (COMPLEX128), described with a trailing dim of 2. */
const COMPLEX: ReadonlyMap<number, DType> = new Map([
  [14, 'F32'],
  [15, 'F64'],
] as [number, DType][]);

export type OnnxTensorKind = 'initializer' | 'attribute' | 'sparse-values' | 'sparse-indices';

export interface OnnxTensor {
  /** Qualified name (see the module comment). */
  name: string;
  kind: OnnxTensorKind;
  /** TensorProto.data_type. */
  dataType: number;
  /** The coral dtype of the payload's elements; 'U8' for a payload kept as bytes. */
  dtype: DType;
  /** The payload's shape in `dtype` elements (the declared dims, or [bytes] for a U8 fallback). */
  shape: number[];
  /** Where the payload is: a segment of this file, the external data file, or inside the skeleton. */
  storage: 'raw_data' | 'float_data' | 'double_data' | 'external' | 'skeleton';
  /** Byte range of the payload: in this file, or (storage 'external') in the data file. */
  offset: number;
  length: number;
  /** External data file, relative to the model's directory (storage 'external'). */
  location?: string;
}

export interface OnnxModelInfo {
  irVersion: number;
  tensors: OnnxTensor[];
}

interface TensorFields {
  dims: number[];
  dataType: number;
  name: string;
  raw: Field[];
  floatPacked: Field[];
  doublePacked: Field[];
  other: number;
  hasSegment: boolean;
  external: boolean;
  externalData: Map<string, string>;
}

class Walker {
  readonly tensors: OnnxTensor[] = [];
  private readonly names = new Map<string, number>();
  irVersion = 0;

  constructor(private readonly w: WindowReader) {}

  private deeper(depth: number, at: number): number {
    if (depth + 1 > MAX_ONNX_DEPTH) {
      throw new LimitExceededError(
        `${this.w.label}: messages nest more than ${MAX_ONNX_DEPTH} deep at byte ${at} (nesting bomb?)`,
        { offset: at, limit: MAX_ONNX_DEPTH },
      );
    }
    return depth + 1;
  }

  private uniqueName(name: string): string {
    const n = this.names.get(name);
    if (n === undefined) {
      this.names.set(name, 1);
      return name;
    }
    let k = n + 1;
    while (this.names.has(`${name}#${k}`)) k++;
    this.names.set(name, k);
    this.names.set(`${name}#${k}`, 1);
    return `${name}#${k}`;
  }

  private lenField(f: Field, what: string): void {
    if (f.wire !== WIRE_LEN)
      throw new FormatError(`${this.w.label}: ${what} at byte ${f.tagAt} has wire type ${f.wire}, expected a message`, {
        offset: f.tagAt,
      });
  }

  async model(start: number, end: number): Promise<void> {
    let training = 0;
    for await (const b_f of fieldBatches(this.w, start, end, 'ModelProto'))
      for (const f of b_f) {
        if (f.field === 1 && f.wire === WIRE_VARINT) this.irVersion = f.value;
        else if (f.field === 7) {
          this.lenField(f, 'ModelProto.graph');
          await this.graph(f.start, f.end, '', 1);
        } else if (f.field === 20) {
          this.lenField(f, 'ModelProto.training_info');
          await this.trainingInfo(f.start, f.end, `training_info[${training++}].`, 1);
        } else if (f.field === 25) {
          this.lenField(f, 'ModelProto.functions');
          await this.func(f.start, f.end, 1);
        }
      }
  }

  private async graph(start: number, end: number, prefix: string, depth: number): Promise<void> {
    const d = this.deeper(depth, start);
    let node = 0;
    let init = 0;
    let sparse = 0;
    for await (const b_f of fieldBatches(this.w, start, end, 'GraphProto'))
      for (const f of b_f) {
        if (f.field === 1) {
          this.lenField(f, 'GraphProto.node');
          await this.node(f.start, f.end, prefix, node++, d);
        } else if (f.field === 5) {
          this.lenField(f, 'GraphProto.initializer');
          await this.tensor(f.start, f.end, 'initializer', `${prefix}initializer[${init++}]`, prefix, d);
        } else if (f.field === 15) {
          this.lenField(f, 'GraphProto.sparse_initializer');
          await this.sparse(f.start, f.end, `${prefix}sparse_initializer[${sparse++}]`, prefix, d);
        }
      }
  }

  private async trainingInfo(start: number, end: number, prefix: string, depth: number): Promise<void> {
    const d = this.deeper(depth, start);
    for await (const b_f of fieldBatches(this.w, start, end, 'TrainingInfoProto'))
      for (const f of b_f) {
        if (f.field === 1 || f.field === 2) {
          this.lenField(f, 'TrainingInfoProto graph');
          await this.graph(f.start, f.end, `${prefix}${f.field === 1 ? 'initialization' : 'algorithm'}/`, d);
        }
      }
  }

  private async func(start: number, end: number, depth: number): Promise<void> {
    const d = this.deeper(depth, start);
    let name = '';
    let domain = '';
    const nodes: Field[] = [];
    const attrs: Field[] = [];
    for await (const b_f of fieldBatches(this.w, start, end, 'FunctionProto'))
      for (const f of b_f) {
        if (f.field === 1 && f.wire === WIRE_LEN) name = await readString(this.w, f);
        else if (f.field === 10 && f.wire === WIRE_LEN) domain = await readString(this.w, f);
        else if (f.field === 7) nodes.push(f);
        else if (f.field === 11) attrs.push(f);
      }
    const prefix = `function:${domain ? `${domain}.` : ''}${name}/`;
    let i = 0;
    for (const f of nodes) {
      this.lenField(f, 'FunctionProto.node');
      await this.node(f.start, f.end, prefix, i++, d);
    }
    for (const f of attrs) {
      this.lenField(f, 'FunctionProto.attribute_proto');
      await this.attribute(f.start, f.end, prefix, 'default', d);
    }
  }

  private async node(start: number, end: number, prefix: string, index: number, depth: number): Promise<void> {
    const d = this.deeper(depth, start);
    let name = '';
    let output = '';
    const attrs: Field[] = [];
    for await (const b_f of fieldBatches(this.w, start, end, 'NodeProto'))
      for (const f of b_f) {
        if (f.field === 3 && f.wire === WIRE_LEN) name = await readString(this.w, f);
        else if (f.field === 2 && f.wire === WIRE_LEN && !output) output = await readString(this.w, f);
        else if (f.field === 5) attrs.push(f);
      }
    const label = name || output || `node[${index}]`;
    for (const f of attrs) {
      this.lenField(f, 'NodeProto.attribute');
      await this.attribute(f.start, f.end, prefix, label, d);
    }
  }

  private async attribute(start: number, end: number, prefix: string, node: string, depth: number): Promise<void> {
    const d = this.deeper(depth, start);
    let name = '';
    const parts: Field[] = [];
    for await (const b_f of fieldBatches(this.w, start, end, 'AttributeProto'))
      for (const f of b_f) {
        if (f.field === 1 && f.wire === WIRE_LEN) name = await readString(this.w, f);
        else if ([5, 6, 10, 11, 22, 23].includes(f.field)) parts.push(f);
      }
    const base = `${prefix}${node}.${name || 'attribute'}`;
    const count = new Map<number, number>();
    for (const f of parts) {
      this.lenField(f, `AttributeProto field ${f.field}`);
      const i = count.get(f.field) ?? 0;
      count.set(f.field, i + 1);
      switch (f.field) {
        case 5:
          await this.tensor(f.start, f.end, 'attribute', base, prefix, d);
          break;
        case 10:
          await this.tensor(f.start, f.end, 'attribute', `${base}[${i}]`, prefix, d);
          break;
        case 6:
          await this.graph(f.start, f.end, `${base}/`, d);
          break;
        case 11:
          await this.graph(f.start, f.end, `${base}[${i}]/`, d);
          break;
        case 22:
          await this.sparse(f.start, f.end, base, prefix, d);
          break;
        case 23:
          await this.sparse(f.start, f.end, `${base}[${i}]`, prefix, d);
          break;
      }
    }
  }

  private async sparse(start: number, end: number, fallback: string, prefix: string, depth: number): Promise<void> {
    const d = this.deeper(depth, start);
    let values: Field | null = null;
    let indices: Field | null = null;
    for await (const b_f of fieldBatches(this.w, start, end, 'SparseTensorProto'))
      for (const f of b_f) {
        if (f.field === 1) values = f;
        else if (f.field === 2) indices = f;
      }
    let name = fallback;
    if (values) {
      this.lenField(values, 'SparseTensorProto.values');
      const tf = await this.tensorFields(values.start, values.end, d);
      if (tf.name) name = `${prefix}${tf.name}`;
      this.addTensor(tf, 'sparse-values', `${name}:values`);
    }
    if (indices) {
      this.lenField(indices, 'SparseTensorProto.indices');
      const tf = await this.tensorFields(indices.start, indices.end, d);
      this.addTensor(tf, 'sparse-indices', `${name}:indices`);
    }
  }

  private async tensor(
    start: number,
    end: number,
    kind: OnnxTensorKind,
    fallback: string,
    prefix: string,
    depth: number,
  ): Promise<void> {
    const tf = await this.tensorFields(start, end, depth);
    // Initializers are referred to by name in their graph; attribute tensors by their node and attribute.
    const name = tf.name && kind === 'initializer' ? `${prefix}${tf.name}` : fallback;
    this.addTensor(tf, kind, name);
  }

  private async tensorFields(start: number, end: number, depth: number): Promise<TensorFields> {
    this.deeper(depth, start);
    const tf: TensorFields = {
      dims: [],
      dataType: 0,
      name: '',
      raw: [],
      floatPacked: [],
      doublePacked: [],
      other: 0,
      hasSegment: false,
      external: false,
      externalData: new Map(),
    };
    for await (const b_f of fieldBatches(this.w, start, end, 'TensorProto'))
      for (const f of b_f) {
        switch (f.field) {
          case 1: // dims: repeated int64, packed or not
            if (f.wire === WIRE_LEN) {
              tf.dims.push(
                ...(await readPackedVarints(
                  this.w,
                  f.start,
                  f.end,
                  MAX_ONNX_RANK + 1 - tf.dims.length,
                  'TensorProto.dims',
                )),
              );
            } else if (f.wire === WIRE_VARINT) tf.dims.push(f.value);
            if (tf.dims.length > MAX_ONNX_RANK)
              throw new LimitExceededError(
                `${this.w.label}: tensor at byte ${start} has more than ${MAX_ONNX_RANK} dimensions`,
                { offset: start, limit: MAX_ONNX_RANK },
              );
            break;
          case 2:
            if (f.wire === WIRE_VARINT) tf.dataType = f.value;
            break;
          case 3:
            tf.hasSegment = true;
            break;
          case 4:
            if (f.wire === WIRE_LEN) tf.floatPacked.push(f);
            else if (f.wire === WIRE_I32) tf.other++;
            break;
          case 10:
            if (f.wire === WIRE_LEN) tf.doublePacked.push(f);
            else if (f.wire === WIRE_I64) tf.other++;
            break;
          case 5:
          case 6:
          case 7:
          case 11:
            tf.other++;
            break;
          case 8:
            if (f.wire === WIRE_LEN) tf.name = await readString(this.w, f);
            break;
          case 9:
            if (f.wire === WIRE_LEN) tf.raw.push(f);
            break;
          case 13:
            if (f.wire === WIRE_LEN) {
              const [k, v] = await this.stringEntry(f);
              tf.externalData.set(k, v);
            }
            break;
          case 14:
            if (f.wire === WIRE_VARINT) tf.external = f.value === 1;
            break;
        }
      }
    return tf;
  }

  private async stringEntry(f: Field): Promise<[string, string]> {
    let k = '';
    let v = '';
    for await (const b_e of fieldBatches(this.w, f.start, f.end, 'StringStringEntryProto'))
      for (const e of b_e) {
        if (e.field === 1 && e.wire === WIRE_LEN) k = await readString(this.w, e);
        else if (e.field === 2 && e.wire === WIRE_LEN) v = await readString(this.w, e);
      }
    return [k, v];
  }

  private numel(tf: TensorFields, name: string): number {
    let n = 1;
    for (const d of tf.dims) {
      if (!Number.isSafeInteger(d) || d < 0)
        throw new FormatError(`${this.w.label}: tensor ${JSON.stringify(name)} has an invalid dimension`, { name });
      n *= d;
    }
    if (n > MAX_ELEMENTS || !tf.dims.every((d) => d <= MAX_ELEMENTS))
      throw new LimitExceededError(
        `${this.w.label}: tensor ${JSON.stringify(name)} dims [${tf.dims.join(', ')}] have more than 2^53 elements`,
        { name },
      );
    return n;
  }

  private addTensor(tf: TensorFields, kind: OnnxTensorKind, rawName: string): void {
    if (this.tensors.length >= MAX_ONNX_TENSORS)
      throw new LimitExceededError(`${this.w.label}: more than ${MAX_ONNX_TENSORS} tensors`, {
        limit: MAX_ONNX_TENSORS,
      });
    const name = this.uniqueName(rawName);
    const n = this.numel(tf, name);
    const dtype = ONNX_DTYPES.get(tf.dataType);
    const complex = COMPLEX.get(tf.dataType);
    const base = { name, kind, dataType: tf.dataType };
    if (tf.external) {
      const location = tf.externalData.get('location') ?? '';
      const offset = Number(tf.externalData.get('offset') ?? '0');
      const elem = dtype ?? complex;
      const want = elem ? n * DTYPES[elem].size * (complex ? 2 : 1) : Number.NaN;
      const length = tf.externalData.has('length') ? Number(tf.externalData.get('length')) : want;
      if (!location || !Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
        throw new FormatError(
          `${this.w.label}: tensor ${JSON.stringify(name)} has invalid external_data (location ${JSON.stringify(location)}, offset ${offset}, length ${length})`,
          { name },
        );
      const typed = elem !== undefined && length === want;
      this.tensors.push({
        ...base,
        dtype: typed ? elem : 'U8',
        shape: typed ? (complex ? [...tf.dims, 2] : tf.dims.slice()) : [length],
        storage: 'external',
        offset,
        length,
        location,
      });
      return;
    }
    const skeleton = (): void => {
      this.tensors.push({
        ...base,
        dtype: dtype ?? complex ?? 'U8',
        shape: tf.dims.slice(),
        storage: 'skeleton',
        offset: 0,
        length: 0,
      });
    };
    const payloads = tf.raw.length + tf.floatPacked.length + tf.doublePacked.length;
    // Exactly one payload field, not a chunk of a larger tensor (TensorProto.segment): otherwise the
    // consumer's view of the elements is not one byte range, and the bytes stay in the skeleton.
    if (payloads !== 1 || tf.other > 0 || tf.hasSegment) return skeleton();
    if (tf.raw.length === 1) {
      const f = tf.raw[0];
      const length = f.end - f.start;
      if (length === 0) return skeleton();
      const elem = dtype ?? complex;
      const typed = elem !== undefined && length === n * DTYPES[elem].size * (complex ? 2 : 1);
      this.tensors.push({
        ...base,
        dtype: typed ? elem : 'U8',
        shape: typed ? (complex ? [...tf.dims, 2] : tf.dims.slice()) : [length],
        storage: 'raw_data',
        offset: f.start,
        length,
      });
      return;
    }
    const isFloat = tf.floatPacked.length === 1;
    const f = isFloat ? tf.floatPacked[0] : tf.doublePacked[0];
    const elem: DType = isFloat ? 'F32' : 'F64';
    const ok = isFloat ? tf.dataType === 1 || tf.dataType === 14 : tf.dataType === 11 || tf.dataType === 15;
    const cplx = tf.dataType === 14 || tf.dataType === 15;
    const length = f.end - f.start;
    if (!ok || length === 0 || length !== n * DTYPES[elem].size * (cplx ? 2 : 1)) return skeleton();
    this.tensors.push({
      ...base,
      dtype: elem,
      shape: cplx ? [...tf.dims, 2] : tf.dims.slice(),
      storage: isFloat ? 'float_data' : 'double_data',
      offset: f.start,
      length,
    });
  }
}

/** Walks an ONNX model and lists every tensor it holds, with where each payload is. */
export async function readOnnxTensors(src: ByteSource): Promise<OnnxModelInfo> {
  const w = new WindowReader(src);
  const walker = new Walker(w);
  await walker.model(0, src.size);
  if (walker.irVersion <= 0 && walker.tensors.length === 0)
    throw new FormatError(`${src.label}: not an ONNX model (no ir_version and no tensors)`);
  return { irVersion: walker.irVersion, tensors: walker.tensors };
}

/** The checkpoint layout of an .onnx file: one segment per in-file tensor payload. */
export async function scanOnnx(src: ByteSource): Promise<CheckpointLayout> {
  const info = await readOnnxTensors(src);
  const inFile = info.tensors.filter((t) => t.storage !== 'external' && t.storage !== 'skeleton');
  inFile.sort((a, b) => a.offset - b.offset);
  const segments: Segment[] = [];
  const tensors: TensorInfo[] = [];
  for (const t of inFile) {
    tensors.push({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape.slice(),
      segment: segments.length,
      elementOffset: 0,
      strides: null,
    });
    segments.push({ offset: t.offset, length: t.length, dtype: t.dtype, shape: t.shape.slice(), key: t.name });
  }
  const locations = [...new Set(info.tensors.filter((t) => t.storage === 'external').map((t) => t.location!))];
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  metadata['onnx.ir_version'] = String(info.irVersion);
  if (locations.length) metadata['onnx.external_data'] = JSON.stringify(locations);
  return { format: 'onnx', fileSize: src.size, segments, tensors, metadata };
}

/**
 * The layout of an external data file from the references of the model that
 * names it (`location` equal to `location`): one segment per distinct byte
 * range; the bytes between them (alignment padding) are skeleton.
 */
export function onnxExternalLayout(
  info: OnnxModelInfo,
  location: string,
  fileSize: number,
  label: string,
  model: string,
): CheckpointLayout {
  const refs = info.tensors
    .filter((t) => t.storage === 'external' && normalizeLocation(t.location!) === normalizeLocation(location))
    .sort((a, b) => a.offset - b.offset || a.length - b.length);
  const segments: Segment[] = [];
  const tensors: TensorInfo[] = [];
  for (const t of refs) {
    if (t.offset + t.length > fileSize)
      throw new FormatError(
        `${label}: ${model} places tensor ${JSON.stringify(t.name)} at [${t.offset}, ${t.offset + t.length}), past the end of the ${fileSize}-byte data file`,
        { name: t.name },
      );
    if (t.length === 0) continue;
    const last = segments[segments.length - 1];
    let seg = segments.length;
    if (last && last.offset === t.offset && last.length === t.length && last.dtype === t.dtype)
      seg = segments.length - 1;
    else if (last && t.offset < last.offset + last.length)
      throw new FormatError(
        `${label}: ${model} places tensor ${JSON.stringify(t.name)} over the bytes of ${JSON.stringify(last.key)}`,
        { name: t.name },
      );
    else segments.push({ offset: t.offset, length: t.length, dtype: t.dtype, shape: t.shape.slice(), key: t.name });
    const s = segments[seg];
    tensors.push({
      name: t.name,
      dtype: s.dtype,
      shape: s.shape.slice(),
      segment: seg,
      elementOffset: 0,
      strides: null,
    });
  }
  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  metadata['onnx.model'] = model;
  return { format: 'onnx-external', fileSize, segments, tensors, metadata };
}

/** `./a//b` and `a/b` name the same file; backslashes (Windows exporters) are separators. */
export function normalizeLocation(loc: string): string {
  const parts: string[] = [];
  for (const p of loc.replace(/\\/g, '/').split('/')) {
    if (p === '' || p === '.') continue;
    parts.push(p);
  }
  return parts.join('/');
}
