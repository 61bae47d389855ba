/**
 * TensorFlow.js integration: a `model.fit` callback that commits weights
 * through a CheckpointManager, `loadIntoModel` to restore them by name, and
 * `saveModel` to write a safetensors file with tfjs weight names.
 *
 * coral never loads `@tensorflow/tfjs` itself: models, variables and tensors
 * are used structurally (the few members below), and creating tensors, which
 * needs the tf module, uses the one the caller passes (`{ tf }`). Works with
 * the pure-JS `@tensorflow/tfjs` (CPU backend) and with `tfjs-node`.
 *
 * Weight names are the variables' `originalName` (e.g. `hidden/kernel`), not
 * `name`, which tfjs suffixes (`hidden/kernel_1`) when a second model with the
 * same layer names is built in the process: name your layers, and a fresh
 * model finds its weights. Optimizer state (`model.optimizer.getWeights()`:
 * Adam's `iter`, `…/m` and `…/v`) is saved with the checkpoint as tensors.
 *
 * @example
 * const cb = new CoralCallback(model, new CheckpointManager(repo, { branch: 'tfjs-run', keepLast: 3 }), { every: { epochs: 1 } });
 * await model.fit(x, y, { epochs: 5, callbacks: [cb] });   // onTrainEnd waits for the last write
 * await loadIntoModel(fresh, repo, 'tfjs-run~2', { tf });  // the weights of epoch 3
 */
import { InvalidArgumentError, UnsupportedError, WeightMismatchError, invalidParameter } from '../errors';
import { readFileTensor } from '../worktree/materialize';
import { writeSafetensors } from '../formats/safetensors';
import type { DType } from '../tensor/dtype';
import type { Tensor } from '../tensor/tensor';
import { treeOf, type RepoContext } from '../context';
import { MODEL_FILE, OPTIMIZER_FILE, type CheckpointManager, type TrainingState } from './checkpoint';

/** The part of a tf.Tensor coral uses. */
export interface TfTensorLike {
  shape: number[];
  dtype: string;
  data(): Promise<ArrayLike<number> | Uint8Array>;
  dispose?(): void;
}
/** The part of a tfjs LayerVariable coral uses. */
export interface TfVariableLike {
  name: string;
  originalName?: string;
  /** tfjs types it `Shape` ((number | null)[]); a variable's is always concrete. */
  shape: ReadonlyArray<number | null>;
  dtype: string;
  read(): TfTensorLike;
  write(t: TfTensorLike): unknown;
}
/** The part of a tfjs LayersModel coral uses. */
export interface TfModelLike {
  weights: TfVariableLike[];
  optimizer?: { getWeights?(): Promise<Array<{ name: string; tensor: TfTensorLike }>> } | null;
}
/** The part of the tf module coral uses (to create tensors). */
export interface TfModuleLike {
  tensor(values: ArrayLike<number> | Uint8Array, shape?: number[], dtype?: string): TfTensorLike;
}

const TF_TO_DTYPE: Record<string, DType> = { float32: 'F32', int32: 'I32', bool: 'BOOL' };

/** The name a weight is saved and restored by. */
export function weightName(v: TfVariableLike): string {
  return v.originalName ?? v.name;
}

async function toTensor(name: string, t: TfTensorLike): Promise<Tensor> {
  const dtype = TF_TO_DTYPE[t.dtype];
  if (!dtype) throw new UnsupportedError(`weight ${name}: tfjs dtype ${t.dtype} cannot be stored`, { weight: name });
  const v = await t.data();
  const data =
    dtype === 'BOOL'
      ? Uint8Array.from(v as ArrayLike<number>)
      : new Uint8Array(
          (v as Float32Array | Int32Array).buffer.slice(
            (v as Float32Array).byteOffset,
            (v as Float32Array).byteOffset + (v as Float32Array).byteLength,
          ),
        );
  return { dtype, shape: t.shape.slice(), data };
}

function checkModel(model: unknown): asserts model is TfModelLike {
  const m = model as TfModelLike;
  if (!m || typeof m !== 'object' || !Array.isArray(m.weights))
    throw invalidParameter('model', 'a tfjs LayersModel (with .weights)', model);
}

/** The model's weights as coral tensors, by weight name (a copy: tfjs' `data()` returns fresh arrays). */
export async function modelWeights(model: TfModelLike): Promise<Map<string, Tensor>> {
  checkModel(model);
  const out = new Map<string, Tensor>();
  for (const v of model.weights) {
    const name = weightName(v);
    if (out.has(name))
      throw new InvalidArgumentError(`two weights of the model are named ${name}: name the layers uniquely`);
    out.set(name, await toTensor(name, v.read()));
  }
  return out;
}

/** The optimizer's state as tensors (Adam: `iter`, `<weight>/m`, `<weight>/v`), or null without one. */
export async function optimizerWeights(model: TfModelLike): Promise<Map<string, Tensor> | null> {
  const ws = await model.optimizer?.getWeights?.();
  if (!ws?.length) return null;
  const out = new Map<string, Tensor>();
  for (const w of ws) out.set(w.name, await toTensor(w.name, w.tensor));
  return out;
}

/**
 * Writes the model's weights as a safetensors file with tfjs weight names
 * (and `metadata`, strings, in its header).
 *
 * @example
 * await saveModel(model, 'model.safetensors', { metadata: { framework: 'tfjs' } });
 */
export async function saveModel(
  model: TfModelLike,
  file: string,
  opts: { metadata?: Record<string, string> } = {},
): Promise<void> {
  await writeSafetensors(file, await modelWeights(model), opts.metadata);
}

function tfValues(t: Tensor): ArrayLike<number> {
  const b = t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength);
  if (t.dtype === 'F32') return new Float32Array(b);
  if (t.dtype === 'I32') return new Int32Array(b);
  if (t.dtype === 'BOOL') return new Uint8Array(b);
  throw new UnsupportedError(`dtype ${t.dtype} has no tfjs equivalent`);
}

function loadTf(tf: TfModuleLike | undefined): TfModuleLike {
  if (tf) {
    if (typeof tf.tensor !== 'function') throw invalidParameter('tf', 'the @tensorflow/tfjs module', tf);
    return tf;
  }
  try {
    // Only when the caller did not pass the module: tfjs is never loaded with coral itself.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@tensorflow/tfjs') as TfModuleLike;
  } catch {
    throw new UnsupportedError('loadIntoModel needs the tf module: pass { tf } (e.g. require("@tensorflow/tfjs"))');
  }
}

/**
 * Restores a model's weights by name from a committed file (default: the
 * checkpoint's weights file, `model.safetensors`) at `rev`, or from tensors
 * already loaded (`CheckpointManager.load(...).tensors`). Every weight of the
 * model must be present with its shape and dtype (WeightMismatchError naming
 * it otherwise, and no weight is changed); extra stored tensors are ignored
 * unless `strict`.
 *
 * @example
 * await loadIntoModel(model, repo, 'run~1', { tf });
 * await loadIntoModel(model, (await ckpt.load('best')).tensors, undefined, { tf });
 */
export async function loadIntoModel(
  model: TfModelLike,
  source: RepoContext | Map<string, Tensor>,
  rev?: string,
  opts: { tf?: TfModuleLike; file?: string; strict?: boolean } = {},
): Promise<{ loaded: string[]; ignored: string[] }> {
  checkModel(model);
  let stored: Map<string, Tensor>;
  if (source instanceof Map) stored = source;
  else {
    if (typeof rev !== 'string') throw invalidParameter('rev', 'revision', rev);
    const tree = await treeOf(source, rev);
    const file =
      opts.file ??
      (tree.files[MODEL_FILE]
        ? MODEL_FILE
        : Object.keys(tree.files).find((f) => f.endsWith('.safetensors') && f !== OPTIMIZER_FILE));
    const e = file ? tree.files[file] : undefined;
    if (!e) throw new WeightMismatchError(`no weights file ${opts.file ?? MODEL_FILE} in ${rev}`, { rev });
    stored = new Map();
    for (const te of e.tensors) stored.set(te.name, await readFileTensor(source.reader, e, te));
  }
  const tf = loadTf(opts.tf);
  // Check everything before writing anything: a mismatch leaves the model untouched.
  const plan: Array<[TfVariableLike, Tensor]> = [];
  for (const v of model.weights) {
    const name = weightName(v);
    const t = stored.get(name);
    if (!t)
      throw new WeightMismatchError(`weight ${name} of the model is missing from the checkpoint`, {
        weight: name,
        available: [...stored.keys()].slice(0, 50),
      });
    const want = TF_TO_DTYPE[v.dtype];
    if (t.dtype !== want || t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i]))
      throw new WeightMismatchError(
        `weight ${name}: the model has ${v.dtype}[${v.shape.join(', ')}], the checkpoint ${t.dtype}[${t.shape.join(', ')}]`,
        { weight: name, expected: { dtype: v.dtype, shape: v.shape }, actual: { dtype: t.dtype, shape: t.shape } },
      );
    plan.push([v, t]);
  }
  const names = new Set(model.weights.map(weightName));
  const ignored = [...stored.keys()].filter((k) => !names.has(k));
  if (opts.strict && ignored.length)
    throw new WeightMismatchError(`the checkpoint has weights the model lacks: ${ignored.slice(0, 10).join(', ')}`, {
      extra: ignored,
    });
  for (const [v, t] of plan) {
    const x = tf.tensor(tfValues(t), t.shape.slice(), v.dtype);
    v.write(x);
    x.dispose?.();
  }
  return { loaded: plan.map(([v]) => weightName(v)), ignored };
}

export interface CoralCallbackOptions {
  /** Commit every N epochs (default 1) or every N batches. */
  every?: { epochs?: number; batches?: number };
  /** Save the optimizer's state too (default true). */
  optimizer?: boolean;
  /** Extra TrainingState fields (lrSchedule, rngSeed, extra) merged into each checkpoint. */
  state?: Partial<Omit<TrainingState, 'step' | 'epoch' | 'metrics' | 'optimizer'>>;
}

/**
 * A `model.fit` callback (pass it in `callbacks`): commits the model's weights
 * every N epochs or batches through a CheckpointManager, with tfjs' logs as
 * metrics, the global batch count as step and completed epochs as epoch.
 * Saving returns once the weights are read; the write runs in the background,
 * and `onTrainEnd` waits until every checkpoint is committed.
 */
export class CoralCallback {
  private batches = 0;
  private epochsDone = 0;
  private readonly everyEpochs: number | null;
  private readonly everyBatches: number | null;
  /** Commit ids, by step, of the checkpoints this callback saved (filled as they are committed). */
  readonly saved: Array<{ step: number; epoch: number; id: string }> = [];

  constructor(
    private readonly model: TfModelLike,
    readonly manager: CheckpointManager,
    private readonly opts: CoralCallbackOptions = {},
  ) {
    checkModel(model);
    const e = opts.every ?? { epochs: 1 };
    if ((e.epochs === undefined) === (e.batches === undefined))
      throw invalidParameter('every', '{ epochs } or { batches }', e);
    for (const [k, v] of Object.entries(e))
      if (!Number.isSafeInteger(v) || v < 1) throw invalidParameter(`every.${k}`, 'positive integer', v);
    this.everyEpochs = e.epochs ?? null;
    this.everyBatches = e.batches ?? null;
  }

  private async save(logs: Record<string, unknown> | undefined): Promise<void> {
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(logs ?? {})) if (typeof v === 'number' && Number.isFinite(v)) metrics[k] = v;
    const optimizer = this.opts.optimizer === false ? null : await optimizerWeights(this.model);
    const epoch = this.epochsDone;
    const h = await this.manager.save(
      await modelWeights(this.model),
      { ...this.opts.state, step: this.batches, epoch, metrics, ...(optimizer ? { optimizer } : {}) },
      { force: true, owned: true },
    );
    void h?.done.then((i) => this.saved.push({ step: i.step, epoch, id: i.id })).catch(() => undefined);
  }

  // tfjs copies these functions off the object (CustomCallbackArgs) and awaits what they
  // return: bound arrow properties, so `this` survives.
  readonly onBatchEnd = async (_batch: number, logs?: Record<string, unknown>): Promise<void> => {
    this.batches++;
    if (this.everyBatches && this.batches % this.everyBatches === 0) await this.save(logs);
  };

  readonly onEpochEnd = async (_epoch: number, logs?: Record<string, unknown>): Promise<void> => {
    this.epochsDone++;
    if (this.everyEpochs && this.epochsDone % this.everyEpochs === 0) await this.save(logs);
  };

  readonly onTrainEnd = async (): Promise<void> => {
    await this.manager.flush();
  };
}
