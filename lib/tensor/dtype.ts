/**
 * The dtype table, with safetensors names. `code` is the on-disk number used by
 * the native core (native/kernels/dtype.h): append only, never renumber.
 *
 * @example
 * DTYPES.BF16.size // 2
 */
export const DTYPE_NAMES = [
  'F64',
  'F32',
  'F16',
  'BF16',
  'F8_E4M3',
  'F8_E5M2',
  'I64',
  'I32',
  'I16',
  'I8',
  'U64',
  'U32',
  'U16',
  'U8',
  'BOOL',
] as const;

export type DType = (typeof DTYPE_NAMES)[number];

export interface DTypeInfo {
  readonly name: DType;
  readonly code: number;
  /** Bytes per element. */
  readonly size: number;
  readonly kind: 'float' | 'int' | 'uint' | 'bool';
}

const SIZES: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

export const DTYPES: Readonly<Record<DType, DTypeInfo>> = Object.freeze(
  Object.fromEntries(
    DTYPE_NAMES.map((name, code) => [
      name,
      Object.freeze({
        name,
        code,
        size: SIZES[name],
        kind: name.startsWith('F') ? 'float' : name.startsWith('I') ? 'int' : name === 'BOOL' ? 'bool' : 'uint',
      } as DTypeInfo),
    ]),
  ) as Record<DType, DTypeInfo>,
);

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, x);
}

export function dtypeFromCode(code: number): DType {
  const n = DTYPE_NAMES[code];
  if (n === undefined) throw new RangeError(`unknown dtype code ${code}`);
  return n;
}
