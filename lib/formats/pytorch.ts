/**
 * PyTorch zip checkpoints (.pt/.pth/.bin as written by torch.save since 1.6).
 *
 * Archive layout (caffe2/serialize/inline_container.h + torch/serialization.py):
 * `<prefix>/data.pkl` (the pickled object graph), `<prefix>/data/<key>` (one
 * raw little-endian storage per key), `<prefix>/version`, and in newer torch
 * `<prefix>/byteorder` and `<prefix>/.data/*`. The pickle is read with the safe
 * unpickler in ./pickle; tensor leaves become {@link TorchTensor} views into
 * storages described by {@link StorageInfo} (zip entry offset/length), and no
 * storage bytes are read until asked.
 *
 * The legacy (pre-1.6, non-zip) torch.save format, TorchScript archives and
 * big-endian archives are refused with UnsupportedFormatError.
 *
 * @example
 * const sd = await loadStateDict('model.pt'); // Map<'fc.weight', Tensor>
 * await savePyTorch('copy.pt', Object.fromEntries(sd));
 */
import { FormatError, InvalidArgumentError, UnsupportedFormatError } from '../errors';
import { DTYPES, isDType, type DType } from '../tensor/dtype';
import { type Tensor, byteLength, numel } from '../tensor/tensor';
import { BufferSource, type ByteSource, FileSource, MemorySink, type Sink, writeFileAtomic } from './io';
import {
  type PyValue,
  PickleWriter,
  PyDict,
  STORAGE_CLASSES,
  TorchStorage,
  TorchTensor,
  unpickle,
  walkPy,
} from './pickle';
import { METHOD_DEFLATE, METHOD_STORE, type ZipEntry, ZipWriter, readZipDirectory, readZipEntry } from './zip';

/** Largest data.pkl accepted (the object graph, not tensor data). */
export const MAX_PICKLE_BYTES = 1 << 30;

export interface StorageInfo {
  key: string;
  /** Element dtype declared by the pickle (U8 for UntypedStorage). */
  dtype: DType;
  /** Elements of `dtype`. */
  numel: number;
  /** Zip member name. */
  entryName: string;
  /** Absolute file offset of the member payload. */
  offset: number;
  /** Payload length in the file (compressed length if deflated). */
  length: number;
  /** Storage size in bytes (numel * element size). */
  byteLength: number;
  /** True when the member is deflated (torch never does this; re-zipped archives may). */
  compressed: boolean;
  entry: ZipEntry;
}

export interface NamedTorchTensor {
  /** Dotted path from the root (dict keys, list indexes). */
  name: string;
  tensor: TorchTensor;
}

function looksLegacy(head: Uint8Array): boolean {
  // Legacy torch.save starts with a pickled magic number: PROTO 2, LONG1 0x1950a86a20f9469cfc6c.
  return head[0] === 0x80 && head[1] >= 2;
}

/** An open PyTorch archive: directory and pickle parsed, storages read on demand. */
export class PyTorchFile {
  private constructor(
    readonly source: ByteSource,
    private readonly owned: boolean,
    /** The archive's top folder ("archive" in torch >= 2, the file stem before). */
    readonly prefix: string,
    readonly entries: ZipEntry[],
    /** The unpickled object graph with TorchTensor leaves. */
    readonly value: PyValue,
    readonly storages: Map<string, StorageInfo>,
    /** Every tensor leaf in pickle order, with unique dotted names. */
    readonly tensors: NamedTorchTensor[],
  ) {}

  static async open(input: string | Uint8Array | ByteSource): Promise<PyTorchFile> {
    let src: ByteSource;
    let owned = false;
    if (typeof input === 'string') {
      src = await FileSource.open(input);
      owned = true;
    } else src = input instanceof Uint8Array ? new BufferSource(input) : input;
    try {
      return await PyTorchFile.parse(src, owned);
    } catch (e) {
      if (owned) await (src as FileSource).close();
      throw e;
    }
  }

  private static async parse(src: ByteSource, owned: boolean): Promise<PyTorchFile> {
    const head = await src.read(0, Math.min(16, src.size));
    const isZip = head.byteLength >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5);
    if (!isZip) {
      if (looksLegacy(head)) {
        throw new UnsupportedFormatError(
          `${src.label}: legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with torch >= 1.6 (the default zip format)`,
        );
      }
      throw new FormatError(`${src.label}: not a PyTorch zip checkpoint (no zip signature)`);
    }
    const dir = await readZipDirectory(src);
    const pkls = dir.entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
    if (pkls.length === 0) {
      throw new UnsupportedFormatError(
        `${src.label}: zip archive has no <archive>/data.pkl (not a torch.save checkpoint)`,
      );
    }
    if (pkls.length > 1) throw new FormatError(`${src.label}: archive has ${pkls.length} data.pkl records`);
    const prefix = pkls[0].name.slice(0, -'/data.pkl'.length);
    const byName = new Map(dir.entries.map((e) => [e.name, e]));
    if (byName.has(`${prefix}/constants.pkl`) || dir.entries.some((e) => e.name.startsWith(`${prefix}/code/`))) {
      throw new UnsupportedFormatError(
        `${src.label}: TorchScript archives (torch.jit.save) are not supported; save a state_dict with torch.save`,
      );
    }
    const bo = byName.get(`${prefix}/byteorder`);
    if (bo) {
      const order = Buffer.from(await readZipEntry(src, bo, { maxBytes: 64 }))
        .toString('latin1')
        .trim();
      if (order !== 'little') {
        throw new UnsupportedFormatError(
          `${src.label}: archive byteorder is ${JSON.stringify(order)}; only little-endian checkpoints are supported`,
        );
      }
    }
    const pklBytes = await readZipEntry(src, pkls[0], { maxBytes: MAX_PICKLE_BYTES });
    const value = unpickle(pklBytes, { label: `${src.label}: data.pkl` });

    const storages = new Map<string, StorageInfo>();
    const tensors: NamedTorchTensor[] = [];
    const used = new Set<string>();
    walkPy(
      value,
      (path, v) => {
        if (v instanceof TorchStorage) registerStorage(v);
        if (!(v instanceof TorchTensor)) return;
        registerStorage(v.storage);
        let name = path.join('.');
        if (used.has(name)) {
          let i = 2;
          while (used.has(`${name}#${i}`)) i++;
          name = `${name}#${i}`;
        }
        used.add(name);
        checkBounds(v, storages.get(v.storage.key)!, src.label, name);
        tensors.push({ name, tensor: v });
      },
      { maxVisits: Math.max(1_000_000, pklBytes.byteLength * 4) },
    );

    function registerStorage(s: TorchStorage): void {
      const prev = storages.get(s.key);
      if (prev) {
        if (prev.dtype !== s.dtype || prev.numel !== s.numel) {
          throw new FormatError(`${src.label}: storage ${s.key} is declared twice with different types or sizes`);
        }
        return;
      }
      const entryName = `${prefix}/data/${s.key}`;
      const e = byName.get(entryName);
      if (!e) throw new FormatError(`${src.label}: storage ${s.key} has no record ${entryName}`);
      const bytes = s.numel * DTYPES[s.dtype].size;
      if (e.uncompressedSize !== bytes) {
        throw new FormatError(
          `${src.label}: storage ${s.key} is ${s.dtype} x ${s.numel} = ${bytes} bytes but its record holds ${e.uncompressedSize}`,
        );
      }
      if (e.method !== METHOD_STORE && e.method !== METHOD_DEFLATE) {
        throw new UnsupportedFormatError(`${src.label}: storage ${s.key} uses zip method ${e.method}`);
      }
      storages.set(s.key, {
        key: s.key,
        dtype: s.dtype,
        numel: s.numel,
        entryName,
        offset: e.dataOffset,
        length: e.compressedSize,
        byteLength: bytes,
        compressed: e.method === METHOD_DEFLATE,
        entry: e,
      });
    }
    return new PyTorchFile(src, owned, prefix, dir.entries, value, storages, tensors);
  }

  /** Reads a whole storage (inflating it if needed). */
  async readStorage(key: string): Promise<Uint8Array> {
    const s = this.storages.get(key);
    if (!s) throw new InvalidArgumentError(`${this.source.label}: no storage ${JSON.stringify(key)}`);
    return readZipEntry(this.source, s.entry, { verifyCrc: false });
  }

  /** Materialises one tensor leaf as a contiguous Tensor (reads only the bytes it spans). */
  async tensor(t: TorchTensor): Promise<Tensor> {
    const s = this.storages.get(t.storage.key);
    if (!s)
      throw new InvalidArgumentError(`${this.source.label}: tensor storage ${t.storage.key} is not in this archive`);
    const size = DTYPES[t.dtype].size;
    const n = numel(t.shape);
    if (n === 0) return { dtype: t.dtype, shape: t.shape.slice(), data: new Uint8Array(0) };
    const span = spanElements(t);
    const first = t.storageOffset * size;
    let bytes: Uint8Array;
    if (s.compressed) {
      bytes = (await this.readStorage(s.key)).subarray(first, first + span * size);
    } else {
      bytes = await this.source.read(s.offset + first, span * size, `storage ${s.key}`);
    }
    if (isContiguous(t.shape, t.strides))
      return { dtype: t.dtype, shape: t.shape.slice(), data: bytes.subarray(0, n * size) };
    return { dtype: t.dtype, shape: t.shape.slice(), data: gatherStrided(bytes, size, t.shape, t.strides, 0) };
  }

  /** Every tensor leaf materialised, keyed by dotted name. */
  async stateDict(): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const { name, tensor } of this.tensors) out.set(name, await this.tensor(tensor));
    return out;
  }

  async close(): Promise<void> {
    if (this.owned) await (this.source as FileSource).close();
  }
}

/** Elements from the first to the last element a view touches, inclusive. */
export function spanElements(t: { shape: readonly number[]; strides: readonly number[] }): number {
  let last = 0;
  for (let i = 0; i < t.shape.length; i++) {
    if (t.shape[i] === 0) return 0;
    last += (t.shape[i] - 1) * t.strides[i];
  }
  return last + 1;
}

/** torch's is_contiguous: strides match row-major, ignoring dims of size 1. */
export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expect) return false;
    expect *= shape[i];
  }
  return true;
}

/** Row-major strides as torch computes them (zero dims count as 1). */
export function contiguousStrides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= Math.max(shape[i], 1);
  }
  return st;
}

function checkBounds(t: TorchTensor, s: StorageInfo, label: string, name: string): void {
  const size = DTYPES[t.dtype].size;
  const storageElems = s.byteLength / size;
  if (s.byteLength % size !== 0) {
    throw new FormatError(
      `${label}: tensor ${JSON.stringify(name)} (${t.dtype}) views storage ${s.key} of ${s.byteLength} bytes, not a whole number of elements`,
    );
  }
  const span = spanElements(t);
  if (span > 0 && t.storageOffset + span > storageElems) {
    throw new FormatError(
      `${label}: tensor ${JSON.stringify(name)} [${t.shape.join(', ')}] strides [${t.strides.join(', ')}] offset ${t.storageOffset} reaches element ${t.storageOffset + span - 1} of a ${storageElems}-element storage`,
      { name, storage: s.key },
    );
  }
}

/**
 * Copies a strided view out of `src` (element `base` = the view's first
 * element) into a new contiguous buffer. Innermost runs of stride 1 are copied
 * as blocks.
 */
export function gatherStrided(
  src: Uint8Array,
  size: number,
  shape: readonly number[],
  strides: readonly number[],
  base: number,
): Uint8Array {
  const n = numel(shape);
  const out = new Uint8Array(n * size);
  if (n === 0) return out;
  const rank = shape.length;
  if (rank === 0) {
    out.set(src.subarray(base * size, base * size + size));
    return out;
  }
  const inner = shape[rank - 1];
  const innerStride = strides[rank - 1];
  const idx = new Array<number>(rank).fill(0);
  let o = 0;
  let off = base;
  const outer = n / inner;
  for (let k = 0; k < outer; k++) {
    if (innerStride === 1) {
      out.set(src.subarray(off * size, (off + inner) * size), o);
      o += inner * size;
    } else if (size === 4 && src.byteOffset % 4 === 0) {
      for (let j = 0, p = off * size; j < inner; j++, p += innerStride * 4) {
        out[o++] = src[p];
        out[o++] = src[p + 1];
        out[o++] = src[p + 2];
        out[o++] = src[p + 3];
      }
    } else {
      for (let j = 0, p = off * size; j < inner; j++, p += innerStride * size) {
        for (let b = 0; b < size; b++) out[o++] = src[p + b];
      }
    }
    // advance the outer index (odometer over dims 0..rank-2)
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      off += strides[d];
      if (idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** Opens a checkpoint and returns the parsed pickle plus storage table (no tensor bytes read). */
export async function readPyTorch(
  input: string | Uint8Array,
): Promise<{ value: PyValue; storages: Map<string, StorageInfo>; tensors: NamedTorchTensor[] }> {
  const f = await PyTorchFile.open(input);
  try {
    return { value: f.value, storages: f.storages, tensors: f.tensors };
  } finally {
    await f.close();
  }
}

/**
 * Loads every tensor of a checkpoint as contiguous Tensors keyed by dotted
 * name (`fc.weight`, `optimizer.state.0.exp_avg` ...). Views with offsets and
 * non-contiguous strides are materialised; shared storages are fine.
 */
export async function loadStateDict(input: string | Uint8Array): Promise<Map<string, Tensor>> {
  const f = await PyTorchFile.open(input);
  try {
    return await f.stateDict();
  } finally {
    await f.close();
  }
}

// ---------------------------------------------------------------- writer

/** dtype -> legacy storage class (torch <= 2.x reads these with _rebuild_tensor_v2). */
const LEGACY_STORAGE: Partial<Record<DType, string>> = Object.fromEntries(
  Object.entries(STORAGE_CLASSES)
    .filter(([cls]) => !/^(UInt|Float8)/.test(cls))
    .map(([cls, d]) => [d, cls]),
);
/** dtype -> torch dtype attribute for dtypes saved as UntypedStorage + _rebuild_tensor_v3. */
const V3_DTYPE: Partial<Record<DType, string>> = {
  U16: 'uint16',
  U32: 'uint32',
  U64: 'uint64',
  F8_E4M3: 'float8_e4m3fn',
  F8_E5M2: 'float8_e5m2',
};

function isTensorLike(v: unknown): v is Tensor {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Map) return false;
  const t = v as Tensor;
  return isDType(t.dtype) && Array.isArray(t.shape) && t.data instanceof Uint8Array;
}

export interface SavePyTorchOptions {
  /** Top folder inside the zip (torch >= 2 uses "archive"). */
  archiveName?: string;
}

/** Pickles `value` (tensor leaves = Tensor) and returns data.pkl plus storages in key order. */
export function picklePyTorch(value: unknown): { pkl: Buffer; storages: Tensor[] } {
  const storages: Tensor[] = [];
  const keyOf = new Map<Tensor, string>();
  const w = new PickleWriter((v, w) => {
    if (!isTensorLike(v)) return false;
    if (v.data.byteLength !== byteLength(v.dtype, v.shape)) {
      throw new InvalidArgumentError(
        `tensor ${v.dtype}[${v.shape.join(', ')}] has ${v.data.byteLength} bytes, expected ${byteLength(v.dtype, v.shape)}`,
      );
    }
    let key = keyOf.get(v);
    if (key === undefined) {
      key = String(storages.length);
      keyOf.set(v, key);
      storages.push(v);
    }
    const legacy = LEGACY_STORAGE[v.dtype];
    w.global('torch._utils', legacy ? '_rebuild_tensor_v2' : '_rebuild_tensor_v3');
    w.mark();
    // persistent id ('storage', storage_type, key, location, numel)
    w.mark();
    w.str('storage');
    if (legacy) w.global('torch', legacy);
    else w.global('torch', 'UntypedStorage');
    w.str(key);
    w.str('cpu');
    w.int(legacy ? numel(v.shape) : v.data.byteLength);
    w.byte(0x74); // TUPLE
    w.binpersid();
    w.int(0);
    w.tuple(v.shape);
    w.tuple(contiguousStrides(v.shape));
    w.value(false);
    w.global('collections', 'OrderedDict');
    w.byte(0x29);
    w.reduce();
    if (!legacy) w.global('torch', V3_DTYPE[v.dtype]!);
    w.byte(0x74);
    w.reduce();
    return true;
  });
  w.value(value);
  return { pkl: w.finish(), storages };
}

async function writeArchive(sink: Sink, value: unknown, opts: SavePyTorchOptions): Promise<void> {
  const prefix = opts.archiveName ?? 'archive';
  if (!/^[\w.-]{1,128}$/.test(prefix))
    throw new InvalidArgumentError(`archive name ${JSON.stringify(prefix)} must be a simple folder name`);
  const { pkl, storages } = picklePyTorch(value);
  const zw = new ZipWriter(sink);
  await zw.add(`${prefix}/data.pkl`, pkl);
  await zw.add(`${prefix}/byteorder`, Buffer.from('little'));
  for (let i = 0; i < storages.length; i++) await zw.add(`${prefix}/data/${i}`, storages[i].data);
  await zw.add(`${prefix}/version`, Buffer.from('3\n'));
  await zw.finish();
}

/**
 * Writes `value` (nested dicts/Maps/lists/tuples/primitives with Tensor
 * leaves) as a torch.save zip checkpoint that torch.load opens; each tensor
 * gets its own storage (the same Tensor object twice shares one).
 */
export async function savePyTorch(path: string, value: unknown, opts: SavePyTorchOptions = {}): Promise<void> {
  await writeFileAtomic(path, (sink) => writeArchive(sink, value, opts));
}

/** In-memory variant of {@link savePyTorch}. */
export async function serializePyTorch(value: unknown, opts: SavePyTorchOptions = {}): Promise<Buffer> {
  const sink = new MemorySink();
  await writeArchive(sink, value, opts);
  return sink.toBuffer();
}

export { PyDict };
