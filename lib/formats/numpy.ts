/**
 * NumPy .npy and .npz in pure TypeScript.
 *
 * .npy = "\x93NUMPY", major, minor, header length (u16 for 1.0, u32 for
 * 2.0/3.0), a Python dict literal `{'descr': '<f4', 'fortran_order': False,
 * 'shape': (2, 3), }` padded with spaces and '\n' so the data starts on a
 * 64-byte boundary, then the raw array. The header is parsed by a tiny
 * literal parser (never eval). Writing reproduces numpy's own header bytes
 * (numpy/lib/format.py `_write_array_header`, incl. the growth-axis spare
 * space), so `writeNpy` output is byte-identical to `np.save`.
 * .npz = a zip of `<name>.npy` members (stored by np.savez, deflated by
 * np.savez_compressed); both are read, and written with `compress` option.
 * @see https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 *
 * @example
 * const t = await readNpy('w.npy');
 * await writeNpz('arrays.npz', { w: t });
 */
import { FormatError, LimitExceededError, UnsupportedFormatError, invalidParameter } from '../errors';
import { DTYPES, isDType, type DType } from '../tensor/dtype';
import { type Tensor, byteLength, numel } from '../tensor/tensor';
import { BufferSource, type ByteSource, MemorySink, type Sink, withSource, writeFileAtomic } from './io';
import { gatherStrided } from './pytorch';
import { checkDeclaredShape } from './safetensors';
import { ZipWriter, readZipDirectory, readZipEntry, type ZipEntry, METHOD_STORE } from './zip';

export const NPY_MAGIC = Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
/** Largest header accepted (numpy itself refuses > 10000 by default; our parser is safe, so allow more). */
export const MAX_NPY_HEADER = 1 << 20;
const ARRAY_ALIGN = 64;
const GROWTH_AXIS_MAX_DIGITS = 21;

const DESCR_TO_DTYPE: Record<string, DType> = {
  f8: 'F64',
  f4: 'F32',
  f2: 'F16',
  i8: 'I64',
  i4: 'I32',
  i2: 'I16',
  i1: 'I8',
  u8: 'U64',
  u4: 'U32',
  u2: 'U16',
  u1: 'U8',
  b1: 'BOOL',
};
const DTYPE_TO_DESCR: Partial<Record<DType, string>> = {
  F64: '<f8',
  F32: '<f4',
  F16: '<f2',
  I64: '<i8',
  I32: '<i4',
  I16: '<i2',
  I8: '|i1',
  U64: '<u8',
  U32: '<u4',
  U16: '<u2',
  U8: '|u1',
  BOOL: '|b1',
};

export interface NpyHeader {
  version: [number, number];
  /** Bytes before the array data (magic + length field + header). */
  dataOffset: number;
  descr: string;
  dtype: DType;
  fortranOrder: boolean;
  shape: number[];
  /** Array data length in bytes. */
  dataLength: number;
}

// ---- a Python-literal parser for the header dict (strings, ints, bools, None, tuples, lists, dicts)
type Lit = string | number | boolean | null | Lit[] | { [k: string]: Lit };

function parseLiteral(s: string, label: string): Lit {
  let i = 0;
  const fail = (msg: string): never => {
    throw new FormatError(`${label}: npy header ${msg} (at ${i}): ${JSON.stringify(s.slice(0, 200))}`);
  };
  const ws = (): void => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  let depth = 0;
  const value = (): Lit => {
    ws();
    const c = s[i];
    if (c === '{' || c === '(' || c === '[') {
      if (++depth > 16) fail('nests too deeply');
      const close = c === '{' ? '}' : c === '(' ? ')' : ']';
      i++;
      const items: Lit[] = [];
      const obj: Record<string, Lit> = {};
      while (true) {
        ws();
        if (s[i] === close) {
          i++;
          break;
        }
        const v = value();
        if (c === '{') {
          ws();
          if (s[i] !== ':') fail('expected ":"');
          i++;
          if (typeof v !== 'string') fail('has a non-string key');
          obj[v as string] = value();
        } else items.push(v);
        ws();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === close) {
          i++;
          break;
        }
        fail(`expected "," or "${close}"`);
      }
      depth--;
      return c === '{' ? obj : items;
    }
    if (c === "'" || c === '"') {
      const j = s.indexOf(c, i + 1);
      if (j < 0) fail('has an unterminated string');
      const str = s.slice(i + 1, j);
      if (str.includes('\\')) fail('has an escaped string (unsupported)');
      i = j + 1;
      return str;
    }
    const m = /^(True|False|None|[+-]?\d+L?)/.exec(s.slice(i, i + 40));
    if (!m) fail('has an unexpected token');
    i += m![0].length;
    if (m![0] === 'True') return true;
    if (m![0] === 'False') return false;
    if (m![0] === 'None') return null;
    const n = Number(m![0].replace(/L$/, ''));
    return n;
  };
  const v = value();
  ws();
  if (i !== s.length) fail('has trailing characters');
  return v;
}

export function dtypeFromDescr(descr: string, label = 'npy'): DType {
  const m = /^([<>|=])([a-zA-Z]\d+)$/.exec(descr);
  const code = m ? m[2] : descr.replace(/^[<>|=]/, '');
  const d = DESCR_TO_DTYPE[code];
  if (!m || !d)
    throw new UnsupportedFormatError(`${label}: numpy dtype ${JSON.stringify(descr)} is not supported`, { descr });
  if (m[1] === '>' && DTYPES[d].size > 1) {
    throw new UnsupportedFormatError(`${label}: big-endian numpy dtype ${JSON.stringify(descr)} is not supported`, {
      descr,
    });
  }
  return d;
}

/**
 * Parses the npy preamble from `head` (at least the first 12 bytes; more if the
 * header is longer: returns `needed` when `head` is too short).
 */
export function parseNpyHeader(head: Uint8Array, label = 'npy'): NpyHeader | { needed: number } {
  if (head.byteLength < 10) return { needed: 12 };
  for (let k = 0; k < 6; k++)
    if (head[k] !== NPY_MAGIC[k]) throw new FormatError(`${label}: not a .npy file (bad magic)`);
  const major = head[6];
  const minor = head[7];
  let hlen: number;
  let pre: number;
  if (major === 1) {
    hlen = head[8] | (head[9] << 8);
    pre = 10;
  } else if (major === 2 || major === 3) {
    if (head.byteLength < 12) return { needed: 12 };
    hlen = (head[8] | (head[9] << 8) | (head[10] << 16)) + head[11] * 2 ** 24;
    pre = 12;
  } else {
    throw new UnsupportedFormatError(`${label}: .npy format version ${major}.${minor} is not supported`);
  }
  if (hlen > MAX_NPY_HEADER)
    throw new LimitExceededError(`${label}: .npy header of ${hlen} bytes (limit ${MAX_NPY_HEADER})`);
  if (head.byteLength < pre + hlen) return { needed: pre + hlen };
  const hb = Buffer.from(head.buffer, head.byteOffset + pre, hlen);
  const text = major === 3 ? hb.toString('utf8') : hb.toString('latin1');
  const lit = parseLiteral(text.trim(), label);
  if (lit === null || typeof lit !== 'object' || Array.isArray(lit))
    throw new FormatError(`${label}: npy header is not a dict`);
  const d = lit as Record<string, Lit>;
  if (typeof d.descr !== 'string') {
    throw new UnsupportedFormatError(`${label}: structured numpy dtypes are not supported`);
  }
  if (typeof d.fortran_order !== 'boolean') throw new FormatError(`${label}: npy header has no boolean fortran_order`);
  if (!Array.isArray(d.shape)) throw new FormatError(`${label}: npy header has no shape tuple`);
  const dtype = dtypeFromDescr(d.descr, label);
  const shape = checkDeclaredShape(d.shape, label, 'array');
  return {
    version: [major, minor],
    dataOffset: pre + hlen,
    descr: d.descr,
    dtype,
    fortranOrder: d.fortran_order,
    shape,
    dataLength: numel(shape) * DTYPES[dtype].size,
  };
}

/** Reads and validates the npy header of the array starting at `base` in `src` (bounded by `end`). */
export async function readNpyHeader(src: ByteSource, base = 0, end = src.size): Promise<NpyHeader> {
  let want = Math.min(128, end - base);
  if (want < 10) throw new FormatError(`${src.label}: ${end - base} bytes is too short for a .npy header`);
  for (;;) {
    const r = parseNpyHeader(await src.read(base, want, '.npy header'), src.label);
    if (!('needed' in r)) {
      if (base + r.dataOffset + r.dataLength > end) {
        throw new FormatError(
          `${src.label}: .npy data needs ${r.dataLength} bytes but only ${end - base - r.dataOffset} remain (truncated?)`,
        );
      }
      return r;
    }
    if (r.needed > end - base)
      throw new FormatError(`${src.label}: .npy header runs past the end of the data (truncated?)`);
    want = r.needed;
  }
}

/** Converts raw npy array bytes to a row-major Tensor (transposing Fortran order). */
export function npyToTensor(h: NpyHeader, data: Uint8Array): Tensor {
  if (!h.fortranOrder || h.shape.length < 2) return { dtype: h.dtype, shape: h.shape.slice(), data };
  const strides: number[] = [];
  let acc = 1;
  for (const s of h.shape) {
    strides.push(acc);
    acc *= s;
  }
  return {
    dtype: h.dtype,
    shape: h.shape.slice(),
    data: gatherStrided(data, DTYPES[h.dtype].size, h.shape, strides, 0),
  };
}

/** Reads a .npy file (or bytes) as a row-major Tensor. */
export async function readNpy(input: string | Uint8Array | ByteSource): Promise<Tensor> {
  return withSource(input, async (src) => {
    const h = await readNpyHeader(src);
    return npyToTensor(h, await src.read(h.dataOffset, h.dataLength, '.npy data'));
  });
}

function pyShape(shape: readonly number[]): string {
  if (shape.length === 0) return '()';
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/** The exact header bytes np.save writes for a C-order array of this dtype and shape. */
export function npyHeaderBytes(dtype: DType, shape: readonly number[], fortranOrder = false): Buffer {
  const descr = DTYPE_TO_DESCR[dtype];
  if (!descr) {
    throw new UnsupportedFormatError(
      `dtype ${dtype} has no NumPy equivalent (bfloat16 and float8 cannot be written to .npy)`,
      { dtype },
    );
  }
  let header = `{'descr': '${descr}', 'fortran_order': ${fortranOrder ? 'True' : 'False'}, 'shape': ${pyShape(shape)}, }`;
  if (shape.length > 0)
    header += ' '.repeat(GROWTH_AXIS_MAX_DIGITS - String(shape[fortranOrder ? shape.length - 1 : 0]).length);
  const hlen = header.length + 1;
  let pre = 10;
  let pad = ARRAY_ALIGN - ((6 + 4 + hlen) % ARRAY_ALIGN);
  let version = 1;
  if (hlen + pad >= 65536) {
    version = 2;
    pre = 12;
    pad = ARRAY_ALIGN - ((6 + 6 + hlen) % ARRAY_ALIGN);
  }
  const out = Buffer.alloc(pre + hlen + pad, 0x20);
  out.set(NPY_MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  if (version === 1) out.writeUInt16LE(hlen + pad, 8);
  else out.writeUInt32LE(hlen + pad, 8);
  out.write(header, pre, 'latin1');
  out[out.byteLength - 1] = 0x0a;
  return out;
}

function checkTensor(t: Tensor, name = 'tensor'): void {
  if (!t || !isDType(t.dtype) || !Array.isArray(t.shape) || !(t.data instanceof Uint8Array)) {
    throw invalidParameter(name, 'Tensor {dtype, shape, data}', t);
  }
  if (t.data.byteLength !== byteLength(t.dtype, t.shape)) {
    throw invalidParameter(`${name}.data byteLength`, `${byteLength(t.dtype, t.shape)}`, t.data.byteLength);
  }
}

/** .npy bytes for a tensor (byte-identical to np.save of the same array). */
export function serializeNpy(t: Tensor): Buffer {
  checkTensor(t);
  return Buffer.concat([npyHeaderBytes(t.dtype, t.shape), t.data]);
}

export async function writeNpy(path: string, t: Tensor): Promise<void> {
  checkTensor(t);
  const head = npyHeaderBytes(t.dtype, t.shape);
  await writeFileAtomic(path, async (sink) => {
    await sink.write(head);
    if (t.data.byteLength) await sink.write(t.data);
  });
}

// ---------------------------------------------------------------- npz

export interface NpzMember {
  /** Array name (member name without ".npy"). */
  name: string;
  entry: ZipEntry;
  /** Header when the member is stored (read in place); undefined for deflated members. */
  header?: NpyHeader;
}

/** Lists the members of an .npz and parses the headers of stored ones (no array data read). */
export async function readNpzDirectory(src: ByteSource): Promise<NpzMember[]> {
  const dir = await readZipDirectory(src);
  const out: NpzMember[] = [];
  for (const e of dir.entries) {
    if (!e.name.endsWith('.npy'))
      throw new UnsupportedFormatError(`${src.label}: .npz member ${JSON.stringify(e.name)} is not a .npy array`);
    const name = e.name.slice(0, -4);
    if (e.method === METHOD_STORE) {
      if (e.compressedSize !== e.uncompressedSize)
        throw new FormatError(`${src.label}: stored member ${e.name} has inconsistent sizes`);
      const h = await readNpyHeader(src, e.dataOffset, e.dataOffset + e.compressedSize);
      if (h.dataOffset + h.dataLength !== e.compressedSize) {
        throw new FormatError(
          `${src.label}: member ${e.name} holds ${e.compressedSize - h.dataOffset} data bytes, header says ${h.dataLength}`,
        );
      }
      out.push({ name, entry: e, header: h });
    } else out.push({ name, entry: e });
  }
  return out;
}

/** Parses a whole .npy held in memory (e.g. an inflated npz member). */
export function parseNpy(bytes: Uint8Array, label = 'npy'): Tensor {
  const h = parseNpyHeader(bytes, label);
  if ('needed' in h) throw new FormatError(`${label}: .npy header is truncated`);
  if (h.dataOffset + h.dataLength > bytes.byteLength) throw new FormatError(`${label}: .npy data is truncated`);
  return npyToTensor(h, bytes.subarray(h.dataOffset, h.dataOffset + h.dataLength));
}

/** Reads every array of an .npz (stored or deflated members). */
export async function readNpz(input: string | Uint8Array | ByteSource): Promise<Map<string, Tensor>> {
  return withSource(input, async (src) => {
    const out = new Map<string, Tensor>();
    for (const m of await readNpzDirectory(src)) {
      if (m.header) {
        const h = m.header;
        out.set(
          m.name,
          npyToTensor(h, await src.read(m.entry.dataOffset + h.dataOffset, h.dataLength, `member ${m.entry.name}`)),
        );
      } else {
        out.set(m.name, parseNpy(await readZipEntry(src, m.entry), `${src.label}:${m.entry.name}`));
      }
    }
    return out;
  });
}

export interface NpzWriteOptions {
  /** Deflate members like np.savez_compressed (default false = stored like np.savez). */
  compress?: boolean;
}

async function writeNpzTo(
  sink: Sink,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  opts: NpzWriteOptions,
): Promise<void> {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of list) checkTensor(t, `tensors[${JSON.stringify(name)}]`);
  // Stored members are not padded (numpy's zipfile does not align); align = 1.
  const zw = new ZipWriter(sink, { align: 1 });
  for (const [name, t] of list) {
    await zw.add(`${name}.npy`, [npyHeaderBytes(t.dtype, t.shape), t.data], {
      method: opts.compress ? 'deflate' : 'store',
    });
  }
  await zw.finish();
}

export async function writeNpz(
  path: string,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  opts: NpzWriteOptions = {},
): Promise<void> {
  await writeFileAtomic(path, (sink) => writeNpzTo(sink, tensors, opts));
}

export async function serializeNpz(
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  opts: NpzWriteOptions = {},
): Promise<Buffer> {
  const sink = new MemorySink();
  await writeNpzTo(sink, tensors, opts);
  return sink.toBuffer();
}

export { BufferSource };
