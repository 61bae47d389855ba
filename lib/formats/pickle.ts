/**
 * A SAFE unpickler for what `torch.save` writes, and a pickle writer.
 *
 * Nothing is ever "called": GLOBAL/STACK_GLOBAL resolve only names on a fixed
 * allowlist (torch rebuild functions, storage classes, dtypes, torch.Size,
 * collections.OrderedDict, _codecs.encode, a few numpy scalar helpers) to inert
 * markers, and REDUCE/NEWOBJ/BUILD on those markers build plain data. Any
 * other global throws UnsafePickleError naming it; opcodes outside the
 * supported set throw UnsupportedFormatError naming the opcode.
 *
 * Memory is bounded by the input: every stack push, memo entry and container
 * element costs at least one input byte, lengths are checked against the
 * remaining input before any slice, and big integers are capped. Deeply
 * nested or heavily shared values are legal pickles; {@link walkPy} (used by
 * the PyTorch reader) enforces depth and visit budgets.
 * @see https://github.com/python/cpython/blob/main/Lib/pickletools.py (opcode reference)
 *
 * @example
 * const v = unpickle(bytes); // PyValue
 */
import {
  FormatError,
  InvalidArgumentError,
  LimitExceededError,
  UnsafePickleError,
  UnsupportedFormatError,
} from '../errors';
import { type DType, DTYPES } from '../tensor/dtype';

// ---------------------------------------------------------------- value model

/** A Python tuple (an Array, so it reads like a list). */
export class PyTuple extends Array<PyValue> {
  static make(...items: PyValue[]): PyTuple {
    const t = new PyTuple();
    for (const x of items) t.push(x);
    return t;
  }
  static fromList(items: readonly PyValue[]): PyTuple {
    const t = new PyTuple();
    for (let i = 0; i < items.length; i++) t.push(items[i]);
    return t;
  }
}

/** A Python dict (or collections.OrderedDict): keys keep Python identity (0 and "0" differ). */
export class PyDict extends Map<PyValue, PyValue> {
  /** 'OrderedDict' when built from collections.OrderedDict. */
  kind: 'dict' | 'OrderedDict' = 'dict';
  /** Instance attributes set by BUILD (e.g. a state_dict's `_metadata`). */
  attrs?: Map<string, PyValue>;
}

/** A Python set or frozenset. */
export class PySet extends Array<PyValue> {
  frozen = false;
}

/** A float the writer must emit as a Python float even if integral (e.g. `PyFloat(1)` -> 1.0). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A torch.dtype global such as torch.float32. */
export class TorchDType {
  constructor(
    readonly torchName: string,
    readonly dtype: DType | null,
  ) {}
}

/** A storage class global (torch.FloatStorage, torch.UntypedStorage ...). */
export class TorchStorageType {
  constructor(
    readonly torchName: string,
    readonly dtype: DType | null,
    readonly untyped: boolean,
  ) {}
}

/** A storage referenced by persistent id: bytes live in the archive at data/<key>. */
export class TorchStorage {
  constructor(
    readonly key: string,
    /** Element dtype of the storage (U8 for UntypedStorage). */
    readonly dtype: DType,
    /** Element count as declared in the pickle. */
    readonly numel: number,
    readonly location: string,
  ) {}
}

/** A tensor leaf: a (possibly strided) view into a storage. */
export class TorchTensor {
  requiresGrad = false;
  /** True when the pickle wrapped it in torch.nn.Parameter. */
  isParameter = false;
  constructor(
    readonly storage: TorchStorage,
    readonly dtype: DType,
    readonly shape: number[],
    readonly strides: number[],
    /** Offset into the storage in elements. */
    readonly storageOffset: number,
  ) {}
  get storageKey(): string {
    return this.storage.key;
  }
}

/** A numpy scalar (numpy.core.multiarray.scalar) such as a saved best accuracy. */
export class NumpyScalar {
  constructor(
    readonly descr: string,
    readonly value: number | bigint | boolean,
    readonly bytes: Uint8Array,
  ) {}
}

/** A numpy.dtype value (intermediate; also appears as a leaf). */
export class NumpyDType {
  byteorder = '=';
  constructor(readonly code: string) {}
  get descr(): string {
    const bo = this.byteorder === '=' ? '<' : this.byteorder;
    return `${bo}${this.code}`;
  }
}

/** A numpy ndarray rebuilt from numpy.core.multiarray._reconstruct + BUILD. */
export class NumpyArray {
  dtype: DType | null = null;
  shape: number[] = [];
  fortranOrder = false;
  data: Uint8Array = new Uint8Array(0);
  built = false;
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet
  | PyFloat
  | TorchTensor
  | TorchStorage
  | TorchDType
  | TorchStorageType
  | NumpyScalar
  | NumpyDType
  | NumpyArray
  | PyGlobal;

/** An allowlisted global still waiting to be called (never user-visible in a valid torch pickle). */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get path(): string {
    return `${this.module}.${this.name}`;
  }
}

// ---------------------------------------------------------------- dtype tables

/** torch storage class name -> element dtype. */
export const STORAGE_CLASSES: Readonly<Record<string, DType>> = {
  DoubleStorage: 'F64',
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  UInt16Storage: 'U16',
  UInt32Storage: 'U32',
  UInt64Storage: 'U64',
  Float8_e4m3fnStorage: 'F8_E4M3',
  Float8_e5m2Storage: 'F8_E5M2',
};
/** torch dtype attribute name -> dtype. */
export const TORCH_DTYPES: Readonly<Record<string, DType>> = {
  float64: 'F64',
  double: 'F64',
  float32: 'F32',
  float: 'F32',
  float16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  long: 'I64',
  int32: 'I32',
  int: 'I32',
  int16: 'I16',
  short: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
  uint16: 'U16',
  uint32: 'U32',
  uint64: 'U64',
  float8_e4m3fn: 'F8_E4M3',
  float8_e5m2: 'F8_E5M2',
};
/** Known torch dtypes this library does not represent (complex, quantized ...). */
const TORCH_DTYPES_UNSUPPORTED = new Set([
  'complex32',
  'complex64',
  'complex128',
  'cfloat',
  'cdouble',
  'chalf',
  'qint8',
  'quint8',
  'qint32',
  'quint4x2',
  'quint2x4',
  'float8_e4m3fnuz',
  'float8_e5m2fnuz',
  'float8_e8m0fnu',
  'bits8',
  'bits16',
  'bits1x8',
  'bits2x4',
  'bits4x2',
]);
const STORAGE_UNSUPPORTED = new Set([
  'ComplexFloatStorage',
  'ComplexDoubleStorage',
  'QInt8Storage',
  'QUInt8Storage',
  'QInt32Storage',
  'QUInt4x2Storage',
  'QUInt2x4Storage',
]);
/** torch globals that exist but build objects we do not model (sparse, quantized, subclasses). */
const TORCH_UNSUPPORTED = new Set([
  'torch._utils._rebuild_qtensor',
  'torch._utils._rebuild_sparse_tensor',
  'torch._utils._rebuild_sparse_csr_tensor',
  'torch._utils._rebuild_sparse_compressed_tensor',
  'torch._utils._rebuild_meta_tensor_no_storage',
  'torch._utils._rebuild_wrapper_subclass',
  'torch._utils._rebuild_device_tensor_from_numpy',
  'torch._utils._rebuild_xla_tensor',
  'torch._utils._rebuild_mlc_tensor',
  'torch._utils._rebuild_nested_tensor',
  'torch._tensor._rebuild_from_type',
  'torch._utils._rebuild_device_tensor_from_cpu_tensor',
]);
/** numpy dtype codes (kind+size, as in np.dtype('f4')) -> dtype. */
const NUMPY_CODES: Readonly<Record<string, DType>> = {
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

// ---------------------------------------------------------------- unpickler

export interface UnpickleOptions {
  /** Resolves a persistent id (BINPERSID/PERSID). Default: torch storage tuples -> TorchStorage. */
  persistentLoad?: (pid: PyValue) => PyValue;
  /** Label for error messages. */
  label?: string;
  /** Largest LONG1/LONG4 integer in bytes (default 1024). */
  maxLongBytes?: number;
}

const OPNAMES: Record<number, string> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

const MARK = Symbol('mark');
type Slot = PyValue | typeof MARK;

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Python 2 module names that protocol-2 pickles may use (pickle's fix_imports). */
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

function globalKind(module: string, name: string): 'allowed' | 'unsupported' | 'unsafe' {
  const path = `${module}.${name}`;
  if (module === 'torch') {
    if (
      name in STORAGE_CLASSES ||
      name === 'UntypedStorage' ||
      name in TORCH_DTYPES ||
      name === 'Size' ||
      name === 'Tensor'
    )
      return 'allowed';
    if (STORAGE_UNSUPPORTED.has(name) || TORCH_DTYPES_UNSUPPORTED.has(name)) return 'unsupported';
    return 'unsafe';
  }
  if (TORCH_UNSUPPORTED.has(path)) return 'unsupported';
  switch (path) {
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor_v3':
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
    case 'torch._tensor._rebuild_from_type_v2':
    case 'torch.nn.parameter.Parameter':
    case 'torch.storage.UntypedStorage':
    case 'torch.storage.TypedStorage':
    case 'torch.storage._load_from_bytes':
    case 'collections.OrderedDict':
    case 'builtins.set':
    case 'builtins.frozenset':
    case 'builtins.bytes':
    case 'builtins.bytearray':
    case '_codecs.encode':
    case 'numpy.core.multiarray.scalar':
    case 'numpy._core.multiarray.scalar':
    case 'numpy.core.multiarray._reconstruct':
    case 'numpy._core.multiarray._reconstruct':
    case 'numpy.ndarray':
    case 'numpy.dtype':
      return path === 'torch.storage._load_from_bytes' ? 'unsupported' : 'allowed';
    default:
      return 'unsafe';
  }
}

function isInt(v: unknown): v is number | bigint {
  return (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint';
}
function toSafeInt(v: PyValue, what: string): number {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (!isInt(v)) throw new FormatError(`${what} is not an integer`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new LimitExceededError(`${what} ${String(v)} exceeds 2^53`);
  return n;
}
function intList(v: PyValue, what: string): number[] {
  if (!Array.isArray(v)) throw new FormatError(`${what} is not a tuple`);
  return Array.from(v as PyValue[], (x, i) => {
    const n = toSafeInt(x, `${what}[${i}]`);
    if (n < 0) throw new FormatError(`${what}[${i}] is negative (${n})`);
    return n;
  });
}

/** Default persistent_load: torch's ('storage', storage_type, key, location, numel[, view_metadata]) tuples. */
export function torchPersistentLoad(pid: PyValue): PyValue {
  if (!Array.isArray(pid) || pid.length < 5) throw new FormatError('persistent id is not a storage tuple');
  const tag = pid[0] instanceof Uint8Array ? Buffer.from(pid[0]).toString('latin1') : pid[0];
  if (tag !== 'storage')
    throw new UnsupportedFormatError(
      `persistent id of type ${JSON.stringify(keyString(tag))} (only storages are supported)`,
    );
  const [, type, key, location, numel] = pid as PyValue[];
  if (pid.length > 5 && pid[5] !== null)
    throw new UnsupportedFormatError('storage views (legacy view_metadata) are not supported');
  let dtype: DType;
  if (type instanceof TorchStorageType) {
    if (!type.dtype) throw new UnsupportedFormatError(`storage type ${type.torchName}`);
    dtype = type.dtype;
  } else if (type instanceof TorchDType) {
    if (!type.dtype) throw new UnsupportedFormatError(`storage dtype torch.${type.torchName}`);
    dtype = type.dtype;
  } else {
    throw new FormatError('persistent id names no storage type');
  }
  const k = typeof key === 'string' ? key : key instanceof Uint8Array ? Buffer.from(key).toString('latin1') : null;
  if (k === null || !/^[\w.-]{1,256}$/.test(k))
    throw new FormatError(`storage key ${JSON.stringify(keyString(key))} is invalid`);
  const loc =
    typeof location === 'string'
      ? location
      : location instanceof Uint8Array
        ? Buffer.from(location).toString('latin1')
        : 'cpu';
  const n = toSafeInt(numel, 'storage size');
  if (n < 0) throw new FormatError('storage size is negative');
  return new TorchStorage(k, dtype, n, loc);
}

function makeTensor(storage: PyValue, offset: PyValue, size: PyValue, stride: PyValue, dtype?: DType): TorchTensor {
  if (!(storage instanceof TorchStorage)) throw new FormatError('tensor rebuild argument is not a storage');
  const shape = intList(size, 'tensor size');
  const strides = intList(stride, 'tensor stride');
  if (strides.length !== shape.length)
    throw new FormatError(`tensor has ${shape.length} dims but ${strides.length} strides`);
  if (shape.length > 64) throw new LimitExceededError(`tensor has ${shape.length} dimensions (limit 64)`);
  const off = toSafeInt(offset, 'storage offset');
  if (off < 0) throw new FormatError('storage offset is negative');
  const dt = dtype ?? storage.dtype;
  return new TorchTensor(storage, dt, shape, strides, off);
}

function callGlobal(g: PyGlobal, args: PyValue, label: string): PyValue {
  if (!Array.isArray(args)) throw new FormatError(`${label}: arguments to ${g.path} are not a tuple`);
  const a = args as PyValue[];
  const argc = (lo: number, hi = lo): void => {
    if (a.length < lo || a.length > hi) throw new FormatError(`${label}: ${g.path} called with ${a.length} arguments`);
  };
  switch (g.path) {
    case 'collections.OrderedDict': {
      argc(0, 1);
      const d = new PyDict();
      d.kind = 'OrderedDict';
      if (a.length === 1 && a[0] !== null) {
        const src = a[0];
        if (src instanceof PyDict) for (const [k, v] of src) d.set(k, v);
        else if (Array.isArray(src)) {
          for (const pair of src) {
            if (!Array.isArray(pair) || pair.length !== 2)
              throw new FormatError(`${label}: OrderedDict item is not a pair`);
            d.set(pair[0], pair[1]);
          }
        } else throw new FormatError(`${label}: OrderedDict argument is not iterable`);
      }
      return d;
    }
    case 'builtins.set':
    case 'builtins.frozenset': {
      argc(0, 1);
      const s = new PySet();
      s.frozen = g.name === 'frozenset';
      if (a.length === 1) {
        if (!Array.isArray(a[0])) throw new FormatError(`${label}: ${g.path} argument is not a list`);
        for (const x of a[0] as PyValue[]) s.push(x);
      }
      return s;
    }
    case 'builtins.bytes':
    case 'builtins.bytearray': {
      argc(0, 2);
      if (a.length === 0) return new Uint8Array(0);
      if (a[0] instanceof Uint8Array) return a[0];
      if (typeof a[0] === 'string' && (a.length === 1 || a[1] === 'latin1' || a[1] === 'latin-1'))
        return latin1(a[0], label);
      if (Array.isArray(a[0])) return Uint8Array.from(a[0] as number[], (x) => toSafeInt(x, 'byte') & 0xff);
      throw new FormatError(`${label}: unsupported ${g.path} arguments`);
    }
    case '_codecs.encode': {
      argc(1, 2);
      const enc = a.length === 2 ? a[1] : 'utf-8';
      if (typeof a[0] !== 'string') throw new FormatError(`${label}: _codecs.encode of a non-string`);
      if (enc === 'latin1' || enc === 'latin-1') return latin1(a[0], label);
      if (enc === 'utf-8' || enc === 'utf8') return new Uint8Array(Buffer.from(a[0], 'utf8'));
      throw new UnsupportedFormatError(`${label}: _codecs.encode with encoding ${JSON.stringify(keyString(enc))}`);
    }
    case 'torch.Size':
      argc(0, 1);
      return PyTuple.fromList(a.length ? intList(a[0], 'torch.Size') : []);
    case 'torch._utils._rebuild_tensor':
      argc(4);
      return makeTensor(a[0], a[1], a[2], a[3]);
    case 'torch._utils._rebuild_tensor_v2': {
      argc(6, 7);
      const t = makeTensor(a[0], a[1], a[2], a[3]);
      t.requiresGrad = a[4] === true;
      return t;
    }
    case 'torch._utils._rebuild_tensor_v3': {
      argc(7, 8);
      const dt = a[6];
      if (!(dt instanceof TorchDType))
        throw new FormatError(`${label}: _rebuild_tensor_v3 dtype argument is not a torch dtype`);
      if (!dt.dtype) throw new UnsupportedFormatError(`${label}: tensor dtype torch.${dt.torchName} is not supported`);
      const t = makeTensor(a[0], a[1], a[2], a[3], dt.dtype);
      t.requiresGrad = a[4] === true;
      return t;
    }
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
    case 'torch.nn.parameter.Parameter': {
      if (g.name === 'Parameter') argc(0, 2);
      else if (g.name === '_rebuild_parameter') argc(3);
      else argc(4);
      const t = a[0];
      if (!(t instanceof TorchTensor)) throw new FormatError(`${label}: ${g.path} of a non-tensor`);
      t.isParameter = true;
      t.requiresGrad = a.length > 1 ? a[1] === true : true;
      return t;
    }
    case 'torch._tensor._rebuild_from_type_v2': {
      argc(4);
      const [fn, type, fargs] = a;
      if (!(fn instanceof PyGlobal)) throw new FormatError(`${label}: _rebuild_from_type_v2 function is not a global`);
      if (
        !(type instanceof PyGlobal) ||
        (type.path !== 'torch.Tensor' && type.path !== 'torch.nn.parameter.Parameter')
      ) {
        throw new UnsupportedFormatError(
          `${label}: tensor subclass ${type instanceof PyGlobal ? type.path : '?'} is not supported`,
        );
      }
      const r = callGlobal(fn, fargs, label);
      if (r instanceof TorchTensor && type.path === 'torch.nn.parameter.Parameter') r.isParameter = true;
      return r;
    }
    case 'torch.storage.UntypedStorage':
    case 'torch.storage.TypedStorage':
      throw new UnsupportedFormatError(
        `${label}: ${g.path} constructed inline (not via persistent id) is not supported`,
      );
    case 'numpy.dtype': {
      argc(1, 3);
      if (typeof a[0] !== 'string') throw new FormatError(`${label}: numpy.dtype of a non-string`);
      return new NumpyDType(a[0]);
    }
    case 'numpy.core.multiarray.scalar':
    case 'numpy._core.multiarray.scalar': {
      argc(1, 2);
      const dt = a[0];
      if (!(dt instanceof NumpyDType)) throw new FormatError(`${label}: numpy scalar without a dtype`);
      const raw = a[1];
      if (!(raw instanceof Uint8Array)) throw new UnsupportedFormatError(`${label}: numpy object scalar`);
      return numpyScalar(dt, raw, label);
    }
    case 'numpy.core.multiarray._reconstruct':
    case 'numpy._core.multiarray._reconstruct':
      argc(3);
      if (!(a[0] instanceof PyGlobal) || a[0].path !== 'numpy.ndarray')
        throw new UnsupportedFormatError(`${label}: numpy array subclass`);
      return new NumpyArray();
    default:
      throw new UnsafePickleError(`${label}: refusing to call ${g.path}`, { global: g.path });
  }
}

function latin1(s: string, label: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new FormatError(`${label}: latin-1 bytes string holds a non-latin-1 character`);
    out[i] = c;
  }
  return out;
}

function numpyScalar(dt: NumpyDType, raw: Uint8Array, label: string): NumpyScalar {
  const d = NUMPY_CODES[dt.code];
  if (!d) throw new UnsupportedFormatError(`${label}: numpy scalar dtype ${JSON.stringify(dt.code)}`);
  if (raw.byteLength !== DTYPES[d].size)
    throw new FormatError(`${label}: numpy scalar has ${raw.byteLength} bytes for ${dt.code}`);
  if (dt.byteorder === '>' && DTYPES[d].size > 1) throw new UnsupportedFormatError(`${label}: big-endian numpy scalar`);
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  let value: number | bigint | boolean;
  switch (d) {
    case 'F64':
      value = v.getFloat64(0, true);
      break;
    case 'F32':
      value = v.getFloat32(0, true);
      break;
    case 'F16':
      value = halfToNumber(v.getUint16(0, true));
      break;
    case 'I64':
      value = v.getBigInt64(0, true);
      break;
    case 'U64':
      value = v.getBigUint64(0, true);
      break;
    case 'I32':
      value = v.getInt32(0, true);
      break;
    case 'U32':
      value = v.getUint32(0, true);
      break;
    case 'I16':
      value = v.getInt16(0, true);
      break;
    case 'U16':
      value = v.getUint16(0, true);
      break;
    case 'I8':
      value = v.getInt8(0);
      break;
    case 'BOOL':
      value = raw[0] !== 0;
      break;
    default:
      value = raw[0];
  }
  return new NumpyScalar(dt.descr, value, raw.slice());
}

export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function build(inst: PyValue, state: PyValue, label: string): void {
  if (inst instanceof PyDict) {
    // OrderedDict.__reduce__ passes the instance __dict__ (e.g. state_dict._metadata).
    let st = state;
    if (Array.isArray(st) && st.length === 2) st = st[0]; // (dict, slotstate)
    if (st === null) return;
    if (!(st instanceof PyDict)) throw new FormatError(`${label}: BUILD state for a dict is not a dict`);
    inst.attrs ??= new Map();
    for (const [k, v] of st) inst.attrs.set(keyString(k), v);
    return;
  }
  if (inst instanceof TorchTensor) {
    // Parameter/_rebuild_from_type_v2 state (python attributes): nothing to apply to the data.
    return;
  }
  if (inst instanceof NumpyDType) {
    if (!Array.isArray(state) || state.length < 2 || typeof state[1] !== 'string')
      throw new FormatError(`${label}: bad numpy dtype state`);
    inst.byteorder = state[1];
    if (state.length > 2 && state[2] !== null) throw new UnsupportedFormatError(`${label}: structured numpy dtype`);
    return;
  }
  if (inst instanceof NumpyArray) {
    if (!Array.isArray(state) || state.length !== 5) throw new FormatError(`${label}: bad numpy array state`);
    const [, shape, dt, fortran, raw] = state as PyValue[];
    if (!(dt instanceof NumpyDType)) throw new FormatError(`${label}: numpy array without a dtype`);
    const d = NUMPY_CODES[dt.code];
    if (!d) throw new UnsupportedFormatError(`${label}: numpy array dtype ${JSON.stringify(dt.code)}`);
    if (dt.byteorder === '>' && DTYPES[d].size > 1)
      throw new UnsupportedFormatError(`${label}: big-endian numpy array`);
    if (!(raw instanceof Uint8Array)) throw new UnsupportedFormatError(`${label}: numpy object array`);
    inst.shape = intList(shape, 'numpy shape');
    let n = DTYPES[d].size;
    for (const s of inst.shape) n *= s;
    if (n !== raw.byteLength)
      throw new FormatError(`${label}: numpy array data has ${raw.byteLength} bytes, expected ${n}`);
    inst.dtype = d;
    inst.fortranOrder = fortran === true;
    inst.data = raw;
    inst.built = true;
    return;
  }
  throw new UnsupportedFormatError(`${label}: BUILD on ${describe(inst)} is not supported`);
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PyGlobal) return v.path;
  if (typeof v === 'object') return v.constructor?.name ?? 'object';
  return typeof v;
}

/**
 * Unpickles `data` safely. Returns the top-level value.
 * @throws UnsafePickleError for a global outside the allowlist
 * @throws UnsupportedFormatError for an opcode or construct outside the supported subset
 * @throws FormatError for truncated or inconsistent input
 */
export function unpickle(data: Uint8Array, opts: UnpickleOptions = {}): PyValue {
  const label = opts.label ?? 'pickle';
  const maxLong = opts.maxLongBytes ?? 1024;
  const persistentLoad = opts.persistentLoad ?? torchPersistentLoad;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const end = data.byteLength;
  let pos = 0;
  let stack: Slot[] = [];
  const metastack: Slot[][] = [];
  const memo = new Map<number, PyValue>();

  const err = (msg: string): never => {
    throw new FormatError(`${label}: ${msg} (at byte ${pos})`);
  };
  const need = (n: number): void => {
    if (n < 0 || pos + n > end) err(`truncated: needs ${n} more bytes`);
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined) err('stack underflow');
    if (v === MARK) err('unexpected MARK');
    return v as PyValue;
  };
  const top = (): PyValue => {
    if (stack.length === 0) err('stack underflow');
    const v = stack[stack.length - 1];
    if (v === MARK) err('unexpected MARK');
    return v as PyValue;
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const prev = metastack.pop();
    if (prev === undefined) err('no MARK to pop to');
    stack = prev!;
    return items as PyValue[];
  };
  const readLine = (): string => {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) err('unterminated text line');
    const s = Buffer.from(data.buffer, data.byteOffset + pos, nl - pos).toString('latin1');
    pos = nl + 1;
    return s;
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const u32 = (): number => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const lo = dv.getUint32(pos, true);
    const hi = dv.getUint32(pos + 4, true);
    pos += 8;
    const v = hi * 0x100000000 + lo;
    if (v > end) err(`length ${v} exceeds the input`);
    return v;
  };
  const resolveGlobal = (module: string, name: string): PyValue => {
    const m = PY2_MODULES[module] ?? module;
    const kind = globalKind(m, name);
    if (kind === 'unsafe') {
      throw new UnsafePickleError(
        `${label}: pickle references global ${module}.${name}, which is not on the allowlist`,
        { global: `${module}.${name}` },
      );
    }
    if (kind === 'unsupported') {
      throw new UnsupportedFormatError(`${label}: pickle uses ${m}.${name}, which this reader does not support`, {
        global: `${m}.${name}`,
      });
    }
    if (m === 'torch') {
      if (name in STORAGE_CLASSES) return new TorchStorageType(name, STORAGE_CLASSES[name], false);
      if (name === 'UntypedStorage') return new TorchStorageType(name, 'U8', true);
      if (name in TORCH_DTYPES) return new TorchDType(name, TORCH_DTYPES[name]);
    }
    if (m === 'torch.storage' && name === 'UntypedStorage') return new TorchStorageType(name, 'U8', true);
    return new PyGlobal(m, name);
  };
  const decodeLong = (b: Uint8Array): number | bigint => {
    if (b.byteLength > maxLong)
      throw new LimitExceededError(`${label}: integer of ${b.byteLength} bytes (limit ${maxLong})`);
    if (b.byteLength === 0) return 0;
    let v = 0n;
    for (let i = b.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.byteLength - 1] & 0x80) v -= 1n << BigInt(8 * b.byteLength);
    return Number.isSafeInteger(Number(v)) && BigInt(Number(v)) === v ? Number(v) : v;
  };
  const setItems = (d: PyValue, items: PyValue[]): void => {
    if (!(d instanceof PyDict)) err(`SETITEM(S) on ${describe(d)}`);
    if (items.length % 2) err('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (d as PyDict).set(items[i], items[i + 1]);
  };
  const appendItems = (l: PyValue, items: PyValue[]): void => {
    if (!Array.isArray(l) || l instanceof PyTuple || l instanceof PySet) err(`APPEND(S) on ${describe(l)}`);
    const arr = l as PyValue[];
    for (let i = 0; i < items.length; i++) arr.push(items[i]);
  };
  const reduce = (fn: PyValue, args: PyValue): PyValue => {
    if (!(fn instanceof PyGlobal)) {
      if (fn instanceof TorchStorageType || fn instanceof TorchDType) {
        throw new UnsupportedFormatError(`${label}: calling torch.${fn.torchName} is not supported`);
      }
      throw new UnsafePickleError(`${label}: REDUCE on a non-callable ${describe(fn)}`);
    }
    return callGlobal(fn, args, label);
  };

  while (true) {
    if (pos >= end) err('pickle ends without STOP');
    const op = data[pos++];
    switch (op) {
      case 0x80: {
        // PROTO
        need(1);
        const v = data[pos++];
        if (v > 5) throw new UnsupportedFormatError(`${label}: pickle protocol ${v} (supported: 0-5)`);
        break;
      }
      case 0x95: // FRAME: framing is advisory; read through it.
        need(8);
        pos += 8;
        break;
      case 0x2e: {
        // STOP
        const v = pop();
        return v;
      }
      case 0x28:
        metastack.push(stack);
        stack = [];
        break; // MARK
      case 0x30:
        if (stack.length === 0) err('POP on empty stack');
        stack.pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(top());
        break; // DUP
      case 0x4e:
        stack.push(null);
        break;
      case 0x88:
        stack.push(true);
        break;
      case 0x89:
        stack.push(false);
        break;
      case 0x4a:
        need(4);
        stack.push(dv.getInt32(pos, true));
        pos += 4;
        break; // BININT
      case 0x4b:
        need(1);
        stack.push(data[pos++]);
        break; // BININT1
      case 0x4d:
        need(2);
        stack.push(dv.getUint16(pos, true));
        pos += 2;
        break; // BININT2
      case 0x8a: {
        need(1);
        const n = data[pos++];
        stack.push(decodeLong(bytes(n)));
        break;
      } // LONG1
      case 0x8b: {
        // LONG4
        need(4);
        const n = dv.getInt32(pos, true);
        pos += 4;
        if (n < 0) err('negative LONG4 length');
        if (n > maxLong) throw new LimitExceededError(`${label}: integer of ${n} bytes (limit ${maxLong})`);
        stack.push(decodeLong(bytes(n)));
        break;
      }
      case 0x49: {
        // INT (text; also I00/I01 booleans)
        const s = readLine();
        if (s === '00') stack.push(false);
        else if (s === '01') stack.push(true);
        else {
          if (!/^[+-]?\d{1,400}$/.test(s)) err(`bad INT ${JSON.stringify(s)}`);
          const b = BigInt(s);
          stack.push(Number.isSafeInteger(Number(b)) ? Number(b) : b);
        }
        break;
      }
      case 0x4c: {
        // LONG (text)
        const s = readLine().replace(/L$/, '');
        if (!/^[+-]?\d{1,2400}$/.test(s)) err(`bad LONG ${JSON.stringify(s)}`);
        const b = BigInt(s);
        stack.push(Number.isSafeInteger(Number(b)) ? Number(b) : b);
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const s = readLine().trim();
        const f = s === 'nan' ? NaN : s === 'inf' ? Infinity : s === '-inf' ? -Infinity : Number(s);
        if (Number.isNaN(f) && s !== 'nan') err(`bad FLOAT ${JSON.stringify(s)}`);
        stack.push(f);
        break;
      }
      case 0x47:
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break; // BINFLOAT (big-endian)
      case 0x58: {
        const n = u32();
        stack.push(utf8.decode(bytes(n)));
        break;
      } // BINUNICODE
      case 0x8c: {
        need(1);
        const n = data[pos++];
        stack.push(utf8.decode(bytes(n)));
        break;
      } // SHORT_BINUNICODE
      case 0x8d: {
        const n = u64();
        stack.push(utf8.decode(bytes(n)));
        break;
      } // BINUNICODE8
      case 0x56: {
        // UNICODE (raw-unicode-escape line)
        const s = readLine().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string, b: string) =>
          String.fromCodePoint(parseInt(a ?? b, 16)),
        );
        stack.push(s);
        break;
      }
      case 0x55: {
        need(1);
        const n = data[pos++];
        stack.push(bytes(n).slice());
        break;
      } // SHORT_BINSTRING (py2 str as bytes)
      case 0x54: {
        need(4);
        const n = dv.getInt32(pos, true);
        pos += 4;
        if (n < 0) err('negative length');
        stack.push(bytes(n).slice());
        break;
      }
      case 0x42: {
        const n = u32();
        stack.push(bytes(n).slice());
        break;
      } // BINBYTES
      case 0x43: {
        need(1);
        const n = data[pos++];
        stack.push(bytes(n).slice());
        break;
      } // SHORT_BINBYTES
      case 0x8e: {
        const n = u64();
        stack.push(bytes(n).slice());
        break;
      } // BINBYTES8
      case 0x96: {
        const n = u64();
        stack.push(bytes(n).slice());
        break;
      } // BYTEARRAY8
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x29:
        stack.push(new PyTuple());
        break; // EMPTY_TUPLE
      case 0x7d:
        stack.push(new PyDict());
        break; // EMPTY_DICT
      case 0x8f:
        stack.push(new PySet());
        break; // EMPTY_SET
      case 0x6c: {
        const items = popMark().slice();
        stack.push(items);
        break;
      } // LIST
      case 0x74: {
        const t = PyTuple.fromList(popMark());
        stack.push(t);
        break;
      } // TUPLE
      case 0x85: {
        const a = pop();
        stack.push(PyTuple.make(a));
        break;
      }
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push(PyTuple.make(a, b));
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(PyTuple.make(a, b, c));
        break;
      }
      case 0x64: {
        const items = popMark();
        const d = new PyDict();
        setItems(d, items);
        stack.push(d);
        break;
      } // DICT
      case 0x91: {
        const s = new PySet();
        s.frozen = true;
        const items = popMark();
        for (const x of items) s.push(x);
        stack.push(s);
        break;
      }
      case 0x61: {
        const v = pop();
        appendItems(top(), [v]);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        appendItems(top(), items);
        break;
      } // APPENDS
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const items = popMark();
        setItems(top(), items);
        break;
      } // SETITEMS
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet)) err(`ADDITEMS on ${describe(s)}`);
        for (const x of items) (s as PySet).push(x);
        break;
      }
      case 0x71: {
        need(1);
        memo.set(data[pos++], top());
        break;
      } // BINPUT
      case 0x72: {
        memo.set(u32(), top());
        break;
      } // LONG_BINPUT
      case 0x70: {
        const s = readLine();
        if (!/^\d{1,10}$/.test(s)) err('bad PUT');
        memo.set(Number(s), top());
        break;
      }
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x68:
      case 0x6a:
      case 0x67: {
        // BINGET, LONG_BINGET, GET
        let i: number;
        if (op === 0x68) {
          need(1);
          i = data[pos++];
        } else if (op === 0x6a) i = u32();
        else {
          const s = readLine();
          if (!/^\d{1,10}$/.test(s)) err('bad GET');
          i = Number(s);
        }
        if (!memo.has(i)) err(`memo key ${i} is not defined`);
        stack.push(memo.get(i)!);
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = readLine();
        const name = readLine();
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') err('STACK_GLOBAL needs two strings');
        stack.push(resolveGlobal(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        stack.push(reduce(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof PyDict) || kwargs.size)
          throw new UnsupportedFormatError(`${label}: NEWOBJ_EX with keyword arguments`);
        stack.push(reduce(cls, args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        build(top(), state, label);
        break;
      }
      case 0x51: {
        const pid = pop();
        stack.push(persistentLoad(pid));
        break;
      } // BINPERSID
      case 0x50: {
        const s = readLine();
        stack.push(persistentLoad(s));
        break;
      } // PERSID
      default: {
        const name = OPNAMES[op];
        throw new UnsupportedFormatError(
          `${label}: pickle opcode ${name ?? `0x${op.toString(16).padStart(2, '0')}`} is not supported (at byte ${pos - 1})`,
          { opcode: name ?? op },
        );
      }
    }
  }
}

// ---------------------------------------------------------------- walking

export interface WalkOptions {
  /** Deepest nesting accepted (default 256). */
  maxDepth?: number;
  /** Most container visits (default 4,000,000); shared sub-values count each time they are reached. */
  maxVisits?: number;
}

/**
 * Depth-first walk over a PyValue calling `visit(path, value)` on every
 * non-container leaf. Path parts are dict keys (stringified) and list indexes.
 * Throws LimitExceededError past the depth/visit budgets and FormatError on cycles.
 */
export function walkPy(root: PyValue, visit: (path: string[], v: PyValue) => void, opts: WalkOptions = {}): void {
  const maxDepth = opts.maxDepth ?? 256;
  const maxVisits = opts.maxVisits ?? 4_000_000;
  let visits = 0;
  const onPath = new Set<object>();
  const path: string[] = [];
  const rec = (v: PyValue, depth: number): void => {
    if (++visits > maxVisits)
      throw new LimitExceededError(`value has more than ${maxVisits} nodes (shared references are counted each time)`);
    const isContainer = v instanceof PyDict || Array.isArray(v);
    if (!isContainer) {
      visit(path, v);
      return;
    }
    if (depth >= maxDepth) throw new LimitExceededError(`value is nested deeper than ${maxDepth} levels`);
    if (onPath.has(v)) throw new FormatError(`value contains a reference cycle at ${path.join('.') || '<root>'}`);
    onPath.add(v);
    if (v instanceof PyDict) {
      for (const [k, x] of v) {
        path.push(keyString(k));
        rec(x, depth + 1);
        path.pop();
      }
    } else {
      const arr = v as PyValue[];
      for (let i = 0; i < arr.length; i++) {
        path.push(String(i));
        rec(arr[i], depth + 1);
        path.pop();
      }
    }
    onPath.delete(v);
  };
  rec(root, 0);
}

function keyString(k: PyValue): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return String(k);
  if (k === null) return 'None';
  if (k instanceof Uint8Array) return Buffer.from(k).toString('latin1');
  if (Array.isArray(k)) return `(${k.map((x) => keyString(x)).join(',')})`;
  return describe(k);
}

// ---------------------------------------------------------------- writer

/**
 * A protocol-2 pickle writer using only the opcodes torch.load(weights_only=True)
 * accepts (plus BINFLOAT for floats and _codecs.encode for bytes, as CPython's
 * protocol 2 does). Containers are memoized, so shared sub-values stay shared.
 */
export class PickleWriter {
  private buf: Buffer = Buffer.alloc(1024);
  private len = 0;
  private readonly memo = new Map<object, number>();
  private depth = 0;
  /** Deepest nesting the writer accepts. */
  maxDepth = 512;

  constructor(
    /** Called for each object before the generic rules; return true if it wrote the value. */
    readonly hook?: (v: unknown, w: PickleWriter) => boolean,
  ) {
    this.byte(0x80);
    this.byte(2);
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    let cap = this.buf.byteLength * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = Buffer.alloc(cap);
    this.buf.copy(nb, 0, 0, this.len);
    this.buf = nb;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }
  raw(b: Uint8Array): void {
    this.ensure(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }
  mark(): void {
    this.byte(0x28);
  }
  /** GLOBAL module\nname\n */
  global(module: string, name: string): void {
    this.byte(0x63);
    this.raw(Buffer.from(`${module}\n${name}\n`, 'utf8'));
  }
  reduce(): void {
    this.byte(0x52);
  }
  binpersid(): void {
    this.byte(0x51);
  }
  tuple(items: readonly unknown[]): void {
    if (items.length === 0) {
      this.byte(0x29);
      return;
    }
    if (items.length <= 3) {
      for (const x of items) this.value(x);
      this.byte(0x84 + items.length); // TUPLE1..3
      return;
    }
    this.mark();
    for (const x of items) this.value(x);
    this.byte(0x74);
  }
  int(v: number | bigint): void {
    if (typeof v === 'number' && !Number.isSafeInteger(v)) v = BigInt(v);
    if (typeof v === 'number' || (v >= -(2n ** 31n) && v < 2n ** 31n)) {
      const n = Number(v);
      if (n >= 0 && n < 256) {
        this.byte(0x4b);
        this.byte(n);
        return;
      }
      if (n >= 0 && n < 65536) {
        this.byte(0x4d);
        this.byte(n & 0xff);
        this.byte(n >> 8);
        return;
      }
      if (n >= -(2 ** 31) && n < 2 ** 31) {
        this.byte(0x4a);
        this.ensure(4);
        this.buf.writeInt32LE(n, this.len);
        this.len += 4;
        return;
      }
    }
    // LONG1: little-endian two's complement, minimal length.
    let b = BigInt(v);
    const bytes: number[] = [];
    while (true) {
      const byte = Number(b & 0xffn);
      bytes.push(byte);
      b >>= 8n;
      if ((b === 0n && !(byte & 0x80)) || (b === -1n && byte & 0x80)) break;
    }
    if (bytes.length > 255) throw new InvalidArgumentError('integer too large to pickle with LONG1');
    this.byte(0x8a);
    this.byte(bytes.length);
    for (const x of bytes) this.byte(x);
  }
  float(f: number): void {
    this.byte(0x47);
    this.ensure(8);
    this.buf.writeDoubleBE(f, this.len);
    this.len += 8;
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.byte(0x58);
    this.ensure(4);
    this.buf.writeUInt32LE(b.byteLength, this.len);
    this.len += 4;
    this.raw(b);
  }
  private put(o: object): void {
    const i = this.memo.size;
    this.memo.set(o, i);
    if (i < 256) {
      this.byte(0x71);
      this.byte(i);
    } else {
      this.byte(0x72);
      this.ensure(4);
      this.buf.writeUInt32LE(i, this.len);
      this.len += 4;
    }
  }
  private get(o: object): boolean {
    const i = this.memo.get(o);
    if (i === undefined) return false;
    if (i < 256) {
      this.byte(0x68);
      this.byte(i);
    } else {
      this.byte(0x6a);
      this.ensure(4);
      this.buf.writeUInt32LE(i, this.len);
      this.len += 4;
    }
    return true;
  }

  /** Writes any supported value. */
  value(v: unknown): void {
    if (++this.depth > this.maxDepth)
      throw new LimitExceededError(`value is nested deeper than ${this.maxDepth} levels`);
    try {
      this.valueInner(v);
    } finally {
      this.depth--;
    }
  }

  private valueInner(v: unknown): void {
    if (this.hook && this.hook(v, this)) return;
    if (v === null || v === undefined) {
      this.byte(0x4e);
      return;
    }
    if (v === true) {
      this.byte(0x88);
      return;
    }
    if (v === false) {
      this.byte(0x89);
      return;
    }
    if (typeof v === 'number') {
      // -0 must stay a float; integral doubles beyond 2^53 are ints (LONG1).
      if (Object.is(v, -0)) this.float(v);
      else if (Number.isSafeInteger(v)) this.int(v);
      else if (Number.isInteger(v)) this.int(BigInt(v));
      else this.float(v);
      return;
    }
    if (typeof v === 'bigint') {
      this.int(v);
      return;
    }
    if (v instanceof PyFloat) {
      this.float(v.value);
      return;
    }
    if (typeof v === 'string') {
      this.str(v);
      return;
    }
    if (v instanceof Uint8Array) {
      // CPython protocol 2: bytes -> _codecs.encode(latin1 str, 'latin1')
      this.global('_codecs', 'encode');
      this.str(Buffer.from(v).toString('latin1'));
      this.str('latin1');
      this.byte(0x86);
      this.reduce();
      return;
    }
    if (typeof v !== 'object') throw new InvalidArgumentError(`cannot pickle a value of type ${typeof v}`);
    if (this.get(v)) return;
    if (v instanceof PyTuple) {
      this.tuple(v);
      this.put(v);
      return;
    }
    if (v instanceof PySet)
      throw new InvalidArgumentError('cannot pickle a set (torch weights_only loading has no set support)');
    if (Array.isArray(v)) {
      this.byte(0x5d);
      this.put(v);
      this.batched(v.length, (i) => this.value(v[i]), 0x61, 0x65, 1);
      return;
    }
    let entries: [unknown, unknown][];
    let ordered = false;
    if (v instanceof Map) {
      entries = [...v.entries()];
      ordered = v instanceof PyDict && v.kind === 'OrderedDict';
    } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      entries = Object.entries(v);
    } else {
      throw new InvalidArgumentError(`cannot pickle an object of class ${describe(v)}`);
    }
    if (ordered) {
      this.global('collections', 'OrderedDict');
      this.byte(0x29);
      this.reduce();
    } else {
      this.byte(0x7d);
    }
    this.put(v);
    this.batched(
      entries.length,
      (i) => {
        this.value(entries[i][0]);
        this.value(entries[i][1]);
      },
      0x73,
      0x75,
      2,
    );
  }

  /** CPython batches APPENDS/SETITEMS in groups of 1000; a lone item uses APPEND/SETITEM. */
  private batched(n: number, emit: (i: number) => void, single: number, multi: number, _per: number): void {
    for (let start = 0; start < n; start += 1000) {
      const stop = Math.min(n, start + 1000);
      if (stop - start === 1) {
        emit(start);
        this.byte(single);
      } else {
        this.mark();
        for (let i = start; i < stop; i++) emit(i);
        this.byte(multi);
      }
    }
  }

  /** Appends STOP and returns the bytes. */
  finish(): Buffer {
    this.byte(0x2e);
    return this.buf.subarray(0, this.len);
  }
}

/** Pickles a plain value (no tensors) with protocol 2. */
export function pickle(v: unknown): Buffer {
  const w = new PickleWriter();
  w.value(v);
  return w.finish();
}
