/**
 * The tensor model: a dtype, a shape and the little-endian bytes, viewed
 * zero-copy. Shapes may be 0-d (`[]`, one element) or contain zeros (no
 * elements).
 *
 * @example
 * const t = tensor('F32', [2, 2], new Float32Array([1, 2, 3, 4]));
 * t.data.byteLength // 16
 */
import { invalidParameter, InvalidArgumentError, LimitExceededError } from '../errors';
import { DTYPES, isDType, type DType } from './dtype';

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Little-endian element bytes, row-major, exactly byteLength(dtype, shape) long. */
  readonly data: Uint8Array;
}

/** Largest element count accepted anywhere (2^53 - 1 keeps byte math exact). */
export const MAX_ELEMENTS = Number.MAX_SAFE_INTEGER;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Validates a shape: an array of non-negative safe integers whose product is safe. */
export function checkShape(shape: unknown, name = 'shape'): number[] {
  if (!Array.isArray(shape)) throw invalidParameter(name, 'array of non-negative integers', shape);
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      throw invalidParameter(`${name} dimension`, 'non-negative safe integer', d);
    n *= d;
    if (n > MAX_ELEMENTS) throw new LimitExceededError(`${name} [${shape.join(', ')}] has more than 2^53 elements`);
  }
  return (shape as number[]).slice(); // every dimension was checked above
}

export function byteLength(dtype: DType, shape: readonly number[]): number {
  return numel(shape) * DTYPES[dtype].size;
}

/** Bytes of any view, zero-copy. */
export function asBytes(data: ArrayBufferView | ArrayBuffer): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Builds a validated tensor over existing bytes (no copy). */
export function tensor(dtype: DType, shape: readonly number[], data: ArrayBufferView | ArrayBuffer): Tensor {
  if (!isDType(dtype)) throw invalidParameter('dtype', `one of ${Object.keys(DTYPES).join(' ')}`, dtype);
  const s = checkShape(shape);
  const bytes = asBytes(data);
  const want = byteLength(dtype, s);
  if (bytes.byteLength !== want)
    throw new InvalidArgumentError(
      `tensor data has ${bytes.byteLength} bytes but ${dtype}[${s.join(', ')}] needs ${want}`,
      { dtype, shape: s, bytes: bytes.byteLength },
    );
  return { dtype, shape: s, data: bytes };
}

/**
 * A typed-array view of a float or integer tensor when alignment allows it,
 * otherwise an aligned copy. F16/BF16/F8 have no JS typed array: their raw
 * bits come back as Uint16Array/Uint8Array.
 */
export function typedView(t: Tensor): ArrayBufferView {
  const ctor = {
    F64: Float64Array,
    F32: Float32Array,
    F16: Uint16Array,
    BF16: Uint16Array,
    F8_E4M3: Uint8Array,
    F8_E5M2: Uint8Array,
    I64: BigInt64Array,
    I32: Int32Array,
    I16: Int16Array,
    I8: Int8Array,
    U64: BigUint64Array,
    U32: Uint32Array,
    U16: Uint16Array,
    U8: Uint8Array,
    BOOL: Uint8Array,
  }[t.dtype];
  const size = DTYPES[t.dtype].size;
  let d = t.data;
  if (d.byteOffset % size !== 0) d = d.slice();
  return new ctor(d.buffer as ArrayBuffer, d.byteOffset, d.byteLength / size);
}
