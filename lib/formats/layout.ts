/**
 * Checkpoint layouts: where the bulk tensor bytes of a file are, without
 * reading them (docs/architecture.md "Checkpoint layouts").
 *
 * The repository stores a file as a skeleton (every byte outside the
 * segments) plus one object per segment; the invariant every scanner keeps:
 * segments are sorted, non-overlapping and inside the file, so
 * file bytes == skeleton pieces interleaved with segment bytes, in order.
 *
 * - safetensors: one segment per tensor (header -> skeleton).
 * - pytorch: one segment per storage record (`<archive>/data/<key>` payload);
 *   each tensor points at its storage with an element offset and strides
 *   (null when contiguous from the offset). Zip headers, data.pkl, etc. are skeleton.
 * - npy: one segment (the array data). Fortran-order arrays get strides.
 * - npz: one segment per stored member's array data; a deflated member is one
 *   U8 segment of its compressed bytes (`compression: 'deflate'`,
 *   `container: 'npy'`), which keeps the file byte-exact; tensorFromSegment
 *   inflates it.
 * - onnx: one segment per tensor payload found at the protobuf wire level
 *   (lib/formats/onnx.ts); onnx-external: an ONNX external data file, laid out
 *   from the references of the .onnx next to it (lib/formats/onnx-external.ts).
 * - gguf: one segment per tensor's data; quantized types as U8 rows
 *   (lib/formats/gguf.ts).
 * - raw: anything else; no segments.
 *
 * @example
 * const layout = await scanCheckpoint('model.safetensors');
 * const fh = await fs.promises.open('model.safetensors');
 * const t = tensorFromSegment(layout, layout.tensors[0], await readSegment(fh, layout.segments[0]));
 */
import { promises as fsp } from 'node:fs';
import * as zlib from 'node:zlib';
import { FormatError, InvalidArgumentError, UnsupportedFormatError } from '../errors';
import { DTYPES, type DType } from '../tensor/dtype';
import { type Tensor, numel } from '../tensor/tensor';
import { type ByteSource, FileSource, readInto, u64le } from './io';
import type { CheckpointFormat, CheckpointLayout, Segment, TensorInfo } from './layout-types';
import { GGUF_MAGIC, scanGguf } from './gguf';
import { parseNpy, parseNpyHeader, readNpyHeader, readNpzDirectory } from './numpy';
import { scanOnnx } from './onnx';
import { scanOnnxExternalData } from './onnx-external';
import { PyTorchFile, gatherStrided, isContiguous, spanElements } from './pytorch';
import { MAX_HEADER_BYTES, readSafetensorsHeader } from './safetensors';
import { readZipDirectory } from './zip';

export type { CheckpointFormat, CheckpointLayout, Segment, TensorInfo } from './layout-types';

const LEGACY_TORCH_MAGIC = Uint8Array.from([
  0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
]);

function ext(label: string): string {
  const m = /\.([A-Za-z0-9]+)$/.exec(label);
  return m ? m[1].toLowerCase() : '';
}

/** Detects the format from magic bytes (and the extension as a tie-breaker). Never reads payload. */
export async function detectFormat(input: string | ByteSource): Promise<CheckpointFormat> {
  if (typeof input === 'string') {
    const src = await FileSource.open(input);
    try {
      return await detectSource(src);
    } finally {
      await src.close();
    }
  }
  return detectSource(input);
}

async function detectSource(src: ByteSource): Promise<CheckpointFormat> {
  const e = ext(src.label);
  const head = await src.read(0, Math.min(16, src.size));
  if (head.byteLength >= 6 && head[0] === 0x93 && Buffer.from(head.subarray(1, 6)).toString('latin1') === 'NUMPY')
    return 'npy';
  if (
    head.byteLength >= 4 &&
    head[0] === 0x50 &&
    head[1] === 0x4b &&
    (head[2] === 3 || head[2] === 5) &&
    (head[3] === 4 || head[3] === 6)
  ) {
    try {
      const dir = await readZipDirectory(src);
      if (dir.entries.some((x) => /^[^/]+\/data\.pkl$/.test(x.name))) return 'pytorch';
      if (dir.entries.every((x) => x.name.endsWith('.npy')) && (dir.entries.length > 0 || e === 'npz')) return 'npz';
      return 'raw';
    } catch {
      return e === 'npz' ? 'npz' : ['pt', 'pth', 'bin', 'ckpt'].includes(e) ? 'pytorch' : 'raw';
    }
  }
  if (head.byteLength >= LEGACY_TORCH_MAGIC.byteLength && LEGACY_TORCH_MAGIC.every((b, i) => head[i] === b))
    return 'pytorch';
  if (head.byteLength >= 9 && head[8] === 0x7b /* { */) {
    const n = u64le(head, 0);
    if (n <= Math.min(MAX_HEADER_BYTES, src.size - 8)) return 'safetensors';
  }
  if (head.byteLength >= 4 && GGUF_MAGIC.every((b, i) => head[i] === b)) return 'gguf';
  if (e === 'safetensors') return 'safetensors';
  // ONNX is a bare protobuf with no magic: the extension decides.
  if (e === 'onnx') return 'onnx';
  return 'raw';
}

export interface ScanOptions {
  /** Skip detection and parse as this format. */
  format?: CheckpointFormat;
}

/** Describes a checkpoint's segments and tensors without reading the tensor payload. */
export async function scanCheckpoint(path: string, opts: ScanOptions = {}): Promise<CheckpointLayout> {
  const src = await FileSource.open(path);
  try {
    const layout = await scanSource(src, opts);
    if (layout.format === 'raw' && !opts.format) {
      // An ONNX external data file has no header: its layout comes from the .onnx next to it.
      const ext = await scanOnnxExternalData(path, src.size);
      if (ext) {
        checkLayout(ext, src.label);
        return ext;
      }
    }
    return layout;
  } finally {
    await src.close();
  }
}

/** {@link scanCheckpoint} over any byte source. */
export async function scanSource(src: ByteSource, opts: ScanOptions = {}): Promise<CheckpointLayout> {
  const format = opts.format ?? (await detectSource(src));
  let layout: CheckpointLayout;
  switch (format) {
    case 'safetensors':
      layout = await scanSafetensors(src);
      break;
    case 'pytorch':
      layout = await scanPyTorch(src);
      break;
    case 'npy':
      layout = await scanNpy(src);
      break;
    case 'npz':
      layout = await scanNpz(src);
      break;
    case 'onnx':
      layout = await scanOnnx(src);
      break;
    case 'gguf':
      layout = await scanGguf(src);
      break;
    case 'onnx-external':
      throw new InvalidArgumentError(
        `${src.label}: an ONNX external data file is laid out from its model; scan it by path (scanCheckpoint) next to the .onnx`,
      );
    case 'raw':
      layout = { format: 'raw', fileSize: src.size, segments: [], tensors: [] };
      break;
    default:
      throw new InvalidArgumentError(`unknown checkpoint format ${JSON.stringify(format)}`);
  }
  checkLayout(layout, src.label);
  return layout;
}

async function scanSafetensors(src: ByteSource): Promise<CheckpointLayout> {
  const h = await readSafetensorsHeader(src);
  const segments: Segment[] = h.entries.map((e) => ({
    offset: e.offset,
    length: e.length,
    dtype: e.dtype,
    shape: e.shape.slice(),
    key: e.name,
  }));
  const tensors: TensorInfo[] = h.entries.map((e, i) => ({
    name: e.name,
    dtype: e.dtype,
    shape: e.shape.slice(),
    segment: i,
    elementOffset: 0,
    strides: null,
  }));
  return {
    format: 'safetensors',
    fileSize: src.size,
    segments,
    tensors,
    ...(h.metadata ? { metadata: h.metadata } : {}),
  };
}

async function scanPyTorch(src: ByteSource): Promise<CheckpointLayout> {
  const f = await PyTorchFile.open(src);
  const storages = [...f.storages.values()].sort((a, b) => a.offset - b.offset);
  // An untyped (byte) storage viewed by tensors of one dtype is typed as that dtype.
  const viewDtypes = new Map<string, Set<DType>>();
  for (const { tensor } of f.tensors) {
    let s = viewDtypes.get(tensor.storage.key);
    if (!s) viewDtypes.set(tensor.storage.key, (s = new Set()));
    s.add(tensor.dtype);
  }
  const index = new Map<string, number>();
  const segments: Segment[] = storages.map((s, i) => {
    index.set(s.key, i);
    let dtype = s.dtype;
    const views = viewDtypes.get(s.key);
    if (views && views.size === 1) {
      const v = [...views][0];
      if (s.byteLength % DTYPES[v].size === 0) dtype = v;
    }
    const seg: Segment = {
      offset: s.offset,
      length: s.length,
      dtype,
      shape: [s.byteLength / DTYPES[dtype].size],
      key: s.entryName,
    };
    if (s.compressed) {
      seg.compression = 'deflate';
      seg.dtype = 'U8';
      seg.shape = [s.length];
    }
    return seg;
  });
  const tensors: TensorInfo[] = f.tensors.map(({ name, tensor: t }) => ({
    name,
    dtype: t.dtype,
    shape: t.shape.slice(),
    segment: index.get(t.storage.key)!,
    elementOffset: t.storageOffset,
    strides: isContiguous(t.shape, t.strides) ? null : t.strides.slice(),
  }));
  return { format: 'pytorch', fileSize: src.size, segments, tensors };
}

function fortranStrides(shape: readonly number[]): number[] {
  const st: number[] = [];
  let acc = 1;
  for (const s of shape) {
    st.push(acc);
    acc *= s;
  }
  return st;
}

async function scanNpy(src: ByteSource): Promise<CheckpointLayout> {
  const h = await readNpyHeader(src);
  const fortran = h.fortranOrder && h.shape.length >= 2;
  const segments: Segment[] = [
    {
      offset: h.dataOffset,
      length: h.dataLength,
      dtype: h.dtype,
      shape: fortran ? h.shape.slice().reverse() : h.shape.slice(),
      key: 'array',
    },
  ];
  return {
    format: 'npy',
    fileSize: src.size,
    segments,
    tensors: [
      {
        name: 'array',
        dtype: h.dtype,
        shape: h.shape.slice(),
        segment: 0,
        elementOffset: 0,
        strides: fortran ? fortranStrides(h.shape) : null,
      },
    ],
  };
}

async function scanNpz(src: ByteSource): Promise<CheckpointLayout> {
  const members = await readNpzDirectory(src);
  members.sort((a, b) => a.entry.dataOffset - b.entry.dataOffset);
  const segments: Segment[] = [];
  const tensors: TensorInfo[] = [];
  for (const m of members) {
    const i = segments.length;
    if (m.header) {
      const h = m.header;
      const fortran = h.fortranOrder && h.shape.length >= 2;
      segments.push({
        offset: m.entry.dataOffset + h.dataOffset,
        length: h.dataLength,
        dtype: h.dtype,
        shape: fortran ? h.shape.slice().reverse() : h.shape.slice(),
        key: m.entry.name,
      });
      tensors.push({
        name: m.name,
        dtype: h.dtype,
        shape: h.shape.slice(),
        segment: i,
        elementOffset: 0,
        strides: fortran ? fortranStrides(h.shape) : null,
      });
    } else {
      segments.push({
        offset: m.entry.dataOffset,
        length: m.entry.compressedSize,
        dtype: 'U8',
        shape: [m.entry.compressedSize],
        key: m.entry.name,
        compression: 'deflate',
        container: 'npy',
      });
      // The array's dtype/shape live inside the compressed bytes; describe them by inflating the header only.
      const head = await inflateHead(src, m.entry.dataOffset, m.entry.compressedSize);
      const h = parseNpyHeader(head, `${src.label}:${m.entry.name}`);
      if ('needed' in h) throw new FormatError(`${src.label}: member ${m.entry.name} has a truncated .npy header`);
      if (h.dataOffset + h.dataLength !== m.entry.uncompressedSize) {
        throw new FormatError(
          `${src.label}: member ${m.entry.name} inflates to ${m.entry.uncompressedSize} bytes, header implies ${h.dataOffset + h.dataLength}`,
        );
      }
      tensors.push({
        name: m.name,
        dtype: h.dtype,
        shape: h.shape.slice(),
        segment: i,
        elementOffset: 0,
        strides: null,
      });
    }
  }
  return { format: 'npz', fileSize: src.size, segments, tensors };
}

/** Inflates just enough of a deflated member to read its .npy header (bounded output). */
async function inflateHead(src: ByteSource, offset: number, length: number): Promise<Uint8Array> {
  const take = Math.min(length, 64 * 1024);
  const raw = await src.read(offset, take, 'deflated member');
  const out: Buffer[] = [];
  let total = 0;
  const inf = zlib.createInflateRaw();
  await new Promise<void>((resolve) => {
    inf.on('data', (c: Buffer) => {
      out.push(c);
      total += c.byteLength;
      if (total >= 1 << 20) inf.destroy();
    });
    inf.on('error', () => resolve());
    inf.on('close', () => resolve());
    inf.on('end', () => resolve());
    inf.end(raw);
  });
  if (total === 0) throw new FormatError(`${src.label}: deflated member at ${offset} has corrupt data`);
  return Buffer.concat(out, total);
}

function checkLayout(l: CheckpointLayout, label: string): void {
  let end = 0;
  for (const s of l.segments) {
    if (s.offset < end || s.offset + s.length > l.fileSize) {
      throw new FormatError(
        `${label}: segment ${JSON.stringify(s.key)} [${s.offset}, ${s.offset + s.length}) overlaps another or leaves the file`,
      );
    }
    end = s.offset + s.length;
  }
}

/** Byte ranges of the skeleton (everything outside the segments), in file order. */
export function skeletonRanges(l: CheckpointLayout): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  let pos = 0;
  for (const s of l.segments) {
    if (s.offset > pos) out.push({ offset: pos, length: s.offset - pos });
    pos = s.offset + s.length;
  }
  if (l.fileSize > pos) out.push({ offset: pos, length: l.fileSize - pos });
  return out;
}

/** Reads one segment's bytes from an open file handle (or byte source). */
export async function readSegment(fh: fsp.FileHandle | ByteSource, seg: Segment): Promise<Uint8Array> {
  if ('read' in fh && 'size' in fh && 'label' in fh) return fh.read(seg.offset, seg.length, `segment ${seg.key}`);
  const out = Buffer.allocUnsafeSlow(seg.length);
  await readInto(fh, out, seg.offset);
  return out;
}

/** Builds the logical tensor `info` from its segment's bytes (copying only for strided views). */
export function tensorFromSegment(layout: CheckpointLayout, info: TensorInfo, segmentBytes: Uint8Array): Tensor {
  const seg = layout.segments[info.segment];
  if (!seg)
    throw new InvalidArgumentError(
      `tensor ${JSON.stringify(info.name)} names segment ${info.segment}, which does not exist`,
    );
  if (segmentBytes.byteLength !== seg.length) {
    throw new InvalidArgumentError(
      `segment ${JSON.stringify(seg.key)} is ${seg.length} bytes but ${segmentBytes.byteLength} were given`,
    );
  }
  let bytes = segmentBytes;
  if (seg.compression === 'deflate') {
    try {
      bytes = zlib.inflateRawSync(segmentBytes);
    } catch (e) {
      throw new FormatError(`segment ${JSON.stringify(seg.key)} has corrupt deflate data (${(e as Error).message})`);
    }
    if (seg.container === 'npy') {
      const t = parseNpy(bytes, seg.key);
      if (
        t.dtype !== info.dtype ||
        t.shape.length !== info.shape.length ||
        t.shape.some((d, i) => d !== info.shape[i])
      ) {
        throw new FormatError(
          `segment ${JSON.stringify(seg.key)} holds ${t.dtype}[${t.shape.join(', ')}], expected ${info.dtype}[${info.shape.join(', ')}]`,
        );
      }
      return t;
    }
  } else if (seg.container) {
    throw new UnsupportedFormatError(`segment container ${seg.container} without compression`);
  }
  const size = DTYPES[info.dtype].size;
  const n = numel(info.shape);
  const shape = info.shape.slice();
  if (n === 0) return { dtype: info.dtype, shape, data: new Uint8Array(0) };
  const strides = info.strides;
  const span = strides ? spanElements({ shape, strides }) : n;
  if (strides && strides.length !== shape.length)
    throw new InvalidArgumentError(
      `tensor ${JSON.stringify(info.name)} has ${shape.length} dims but ${strides.length} strides`,
    );
  if ((info.elementOffset + span) * size > bytes.byteLength) {
    throw new FormatError(
      `tensor ${JSON.stringify(info.name)} reaches past the end of segment ${JSON.stringify(seg.key)}`,
    );
  }
  const start = info.elementOffset * size;
  if (!strides || isContiguous(shape, strides))
    return { dtype: info.dtype, shape, data: bytes.subarray(start, start + n * size) };
  return { dtype: info.dtype, shape, data: gatherStrided(bytes.subarray(start), size, shape, strides, 0) };
}
