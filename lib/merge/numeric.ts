/**
 * Typed wrapper over the native merge kernels (native/kernels/merge.h) and the
 * dtype conversion kernel (native/kernels/convert.h). Inputs are passed
 * zero-copy; tensors at or above ASYNC_THRESHOLD_BYTES are merged on the libuv
 * pool, smaller ones inline. Exact formulas and rounding: docs/merge-strategies.md.
 *
 * @example
 * const avg = await mergeLinear([ours, theirs], [0.5, 0.5]);
 * const ties = await mergeTaskVectors('ties', base, [ours, theirs], { density: 0.2 });
 */
import type * as Binding from '../../binding';
import { invalidParameter } from '../errors';
import { ASYNC_THRESHOLD_BYTES, callAsync, callSync, native } from '../native';
import { DTYPES, isDType, type DType } from '../tensor/dtype';
import { asBytes, type Tensor } from '../tensor/tensor';

/** Accumulator precision: f64 (default, exact for weighted) or f32 (float dtypes of <= 32 bits). */
export type MergePrecision = 'f64' | 'f32';

/** Options shared by every numeric merge. */
export interface NumericOptions {
  /** Accumulator precision; default 'f64'. */
  precision?: MergePrecision;
  /** Caller-allocated result bytes, exactly the inputs' byte length (may alias an input). */
  out?: Uint8Array;
  /** Force the sync (inline) or async (libuv pool) path; default: by size. */
  async?: boolean;
  /** Thread budget for this call; default the runtime budget. */
  threads?: number;
}

/** Options of the base-relative merges. */
export interface TaskVectorOptions extends NumericOptions {
  /** Scale of the combined task vector; finite, default 1. */
  lambda?: number;
  /** TIES: fraction of entries kept per task vector, 0 < density <= 1; default 1. */
  density?: number;
  /** DARE: drop probability, 0 <= drop < 1; default 0. */
  drop?: number;
  /** DARE: PRNG seed, a non-negative safe integer or a bigint below 2^64; default 0. */
  seed?: number | bigint;
  /** DARE: elect signs and take the disjoint mean (TIES) instead of summing. */
  ties?: boolean;
}

function arg(t: Tensor): Binding.MergeTensorArg {
  return { data: t.data, dtype: DTYPES[t.dtype].code, shape: t.shape };
}

async function run(spec: Binding.MergeSpec, like: Tensor, o: NumericOptions): Promise<Tensor> {
  const big = like.data.byteLength >= ASYNC_THRESHOLD_BYTES;
  const useAsync = o.async ?? big;
  const out = useAsync
    ? await callAsync(() => native.mergeTensorsAsync(spec))
    : callSync(() => native.mergeTensors(spec));
  return { dtype: like.dtype, shape: like.shape.slice(), data: asBytes(out) };
}

function common(o: NumericOptions): Partial<Binding.MergeSpec> {
  const s: Partial<Binding.MergeSpec> = {};
  if (o.precision !== undefined) {
    if (o.precision !== 'f64' && o.precision !== 'f32')
      throw invalidParameter('precision', '"f64" or "f32"', o.precision);
    s.precision = o.precision;
  }
  if (o.out !== undefined) s.out = o.out;
  if (o.threads !== undefined) {
    if (!Number.isInteger(o.threads) || o.threads < 0)
      throw invalidParameter('threads', 'non-negative integer', o.threads);
    s.threads = o.threads;
  }
  return s;
}

/**
 * r = sum_i weights[i] * models[i], evaluated in f64 (or f32) in index order,
 * terms with weight 0 skipped, rounded once into the dtype.
 */
export function mergeLinear(
  models: readonly Tensor[],
  weights: readonly number[],
  o: NumericOptions = {},
): Promise<Tensor> {
  try {
    if (models.length === 0) throw invalidParameter('models', 'at least one tensor', models);
    for (const w of weights)
      if (typeof w !== 'number' || !Number.isFinite(w)) throw invalidParameter('weight', 'finite number', w);
    const spec: Binding.MergeSpec = { op: 'linear', models: models.map(arg), weights, ...common(o) };
    return run(spec, models[0], o);
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * base + lambda * combine(models[i] - base) with combine = sum (task
 * arithmetic), TIES (trim, elect, disjoint mean) or DARE (drop, rescale, sum).
 */
export function mergeTaskVectors(
  op: 'task-arithmetic' | 'ties' | 'dare',
  base: Tensor,
  models: readonly Tensor[],
  o: TaskVectorOptions = {},
): Promise<Tensor> {
  try {
    if (models.length === 0) throw invalidParameter('models', 'at least one tensor', models);
    const spec: Binding.MergeSpec = { op, base: arg(base), models: models.map(arg), ...common(o) };
    if (o.lambda !== undefined) spec.lambda = checkLambda(o.lambda);
    if (o.density !== undefined) spec.density = checkDensity(o.density);
    if (o.drop !== undefined) spec.drop = checkDrop(o.drop);
    if (o.seed !== undefined) spec.seed = checkSeed(o.seed);
    if (o.ties !== undefined) spec.ties = !!o.ties;
    return run(spec, models[0], o);
  } catch (e) {
    return Promise.reject(e);
  }
}

export function checkAlpha(a: unknown): number {
  if (typeof a !== 'number' || !(a >= 0 && a <= 1)) throw invalidParameter('alpha', 'number in [0, 1]', a);
  return a;
}
export function checkLambda(l: unknown): number {
  if (typeof l !== 'number' || !Number.isFinite(l)) throw invalidParameter('lambda', 'finite number', l);
  return l;
}
export function checkDensity(k: unknown): number {
  if (typeof k !== 'number' || !(k > 0 && k <= 1)) throw invalidParameter('density', 'number in (0, 1]', k);
  return k;
}
export function checkDrop(p: unknown): number {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw invalidParameter('drop', 'number in [0, 1)', p);
  return p;
}
export function checkSeed(s: unknown): number | bigint {
  if (typeof s === 'bigint' && s >= 0n && s < 1n << 64n) return s;
  if (typeof s === 'number' && Number.isSafeInteger(s) && s >= 0) return s;
  throw invalidParameter('seed', 'non-negative safe integer or bigint below 2^64', s);
}

/**
 * Converts a tensor to another dtype through f64 with one round-to-nearest-even
 * (kernels ConvertDType; F8_E4M3 follows torch's float8_e4m3fn: overflow -> NaN).
 *
 * @example
 * const bf = convertTensor(tensor('F32', [2], new Float32Array([1, 1/3])), 'BF16');
 */
export function convertTensor(t: Tensor, to: DType): Tensor {
  if (!isDType(to)) throw invalidParameter('dtype', `one of ${Object.keys(DTYPES).join(' ')}`, to);
  const out = callSync(() => native.convertDType(t.data, DTYPES[t.dtype].code, DTYPES[to].code));
  return { dtype: to, shape: t.shape.slice(), data: asBytes(out) };
}
