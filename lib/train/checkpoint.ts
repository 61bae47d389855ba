/**
 * CheckpointManager: training checkpoints on a managed branch, with a
 * retention policy that really frees disk (docs/training.md).
 *
 * Ref layout. The manager owns one branch, `refs/heads/<branch>`, whose
 * first-parent history is exactly the checkpoints it keeps, oldest first. Each
 * checkpoint is a commit whose tree holds the weights file (`model.safetensors`,
 * or the name of the file given to `save`) and, when the state carries
 * optimizer tensors, `optimizer.safetensors`; its metadata holds the rest of
 * the TrainingState (`checkpoint`) and its metrics (`metrics`, which `coral log
 * --metric` and `coral experiment` read). When retention drops a checkpoint
 * (or turns one lossy), the branch is rewritten from that point: the kept
 * checkpoints get new commits with the same trees, the ref moves by
 * compare-and-swap, and the reflog lines naming the rewritten-away commits are
 * expired. Nothing then reaches the dropped checkpoints, and the next `gc`
 * deletes their objects.
 *
 * Deltas. A checkpoint is either an *anchor* (stored standalone) or a delta
 * against the latest anchor (`anchorEvery`, default 8 checkpoints per anchor),
 * which covers weights and optimizer moments alike. Retention keeps an anchor
 * as long as a kept full checkpoint is a delta against it ("pinned"), so a
 * dropped checkpoint never leaves a kept one undecodable, and everything
 * dropped that no kept checkpoint is built on is freed.
 *
 * Saving does not stall training: `save` returns once the tensors are captured
 * (copied, or handed over with `owned: true`); serialising, encoding (native,
 * on the libuv pool) and writing run in the background one checkpoint at a
 * time. At most `maxQueued` captured checkpoints wait behind the one being
 * written: a further `save` waits for room, so memory stays bounded.
 *
 * @example
 * const ckpt = new CheckpointManager(repo, { branch: 'run1', every: { steps: 100 }, keepLast: 3,
 *   keepBest: 1, metric: 'loss', mode: 'min', keepLossy: { every: 1000, codec: 'QUANT_INT8' } });
 * const h = await ckpt.save({ w: tensor('F32', [2, 2], bytes) }, { step: 100, metrics: { loss: 0.4 } });
 * await h?.done;                                    // written and committed
 * const { tensors, state } = await ckpt.load('best');
 */
import * as crypto from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { readCommit, readTree, resolve, signature, withWriter, type RepoContext } from '../context';
import { InvalidArgumentError, invalidParameter } from '../errors';
import { SKELETON_NAME, ingestFile, segmentNames, type FindBase } from '../ingest/ingest';
import { LossyTally, parseLossySpec } from '../ingest/lossy';
import {
  checkShortRefName,
  encodeCommit,
  encodeTree,
  fileTable,
  type Commit,
  type FileEntry,
  type LossyMark,
  type Tree,
} from '../models';
import type { LossySpec, ObjectWriter } from '../odb/objects';
import { writeSafetensors, type TensorMap } from '../formats/safetensors';
import type { Tensor } from '../tensor/tensor';
import { fileChunks, readFileTensor } from '../worktree/materialize';

/** The tree path of the optimizer tensors. */
export const OPTIMIZER_FILE = 'optimizer.safetensors';
/** The tree path of the weights when `save` is given tensors. */
export const MODEL_FILE = 'model.safetensors';

/** What a checkpoint records besides its weights. Stored in the commit; `load` returns it. */
export interface TrainingState {
  /** Global step (strictly increasing across the checkpoints of a branch). */
  step: number;
  epoch?: number;
  /** Numbers to rank and plot checkpoints by (`coral log --metric loss`). */
  metrics?: Record<string, number>;
  /** Learning-rate schedule position (e.g. `{ step: 1200, lr: 3e-4 }`), any JSON. */
  lrSchedule?: unknown;
  /** RNG seed or state to resume data order and dropout identically. */
  rngSeed?: number | string;
  /** Optimizer state as tensors (Adam moments...): stored as `optimizer.safetensors`, deduplicated and delta-encoded like the weights. */
  optimizer?: TensorMap;
  /** Any other JSON (optimizer hyper-parameters, data-loader position...). */
  extra?: Record<string, unknown>;
}

export interface CheckpointManagerOptions {
  /** The managed branch (refs/heads/<branch>); created by the first save. */
  branch: string;
  /** Save only when this many steps (or epochs) passed since the last checkpoint; absent: every save. */
  every?: { steps?: number; epochs?: number };
  /** Keep the newest N checkpoints whole (the newest one is always kept). Absent with keepBest absent: keep all. */
  keepLast?: number;
  /** Keep the N best checkpoints by `metric` whole. */
  keepBest?: number;
  /** The metric keepBest and load('best') rank by. */
  metric?: string;
  /** 'min' (default) or 'max'. */
  mode?: 'min' | 'max';
  /**
   * Tiered retention: a checkpoint leaving keepLast/keepBest whose step is a
   * multiple of `every` is kept with a lossy codec instead of dropped.
   */
  keepLossy?: { every: number; codec: string | LossySpec };
  /** One standalone (anchor) checkpoint every N; the others are deltas against the latest anchor. Default 8; 1 = no deltas. */
  anchorEvery?: number;
  /** Captured checkpoints allowed to wait behind the one being written (default 1). */
  maxQueued?: number;
}

/** Which checkpoint: 'latest', 'best' (by `metric`), a step number, or a revision naming a checkpoint commit. */
export type CheckpointRef = number | string;

export interface CheckpointInfo {
  id: string;
  step: number;
  epoch?: number;
  metrics: Record<string, number>;
  /** Standalone (true), or the step of the anchor it is a delta against. */
  anchor: true | number;
  /** Set when retention keeps it lossy. */
  lossy?: LossyMark;
}

export interface SaveHandle {
  step: number;
  /** Resolves once the checkpoint is committed (and retention applied). */
  done: Promise<CheckpointInfo>;
}

export interface RetentionReport {
  kept: number[];
  /** Anchors kept because a kept checkpoint is a delta against them. */
  pinned: number[];
  /** Turned lossy in this pass. */
  lossy: number[];
  dropped: number[];
}

export interface LoadedCheckpoint {
  id: string;
  step: number;
  /** The weights, by tensor name. */
  tensors: Map<string, Tensor>;
  /** The TrainingState as saved, `optimizer` holding the optimizer tensors. */
  state: TrainingState & { optimizer?: Map<string, Tensor> };
  /** The weights file's path in the tree. */
  file: string;
  /** Set when the checkpoint was kept lossy: the weights are approximate. */
  lossy?: LossyMark;
}

interface Job {
  step: number;
  state: TrainingState;
  model: { tensors: [string, Tensor][] } | { file: string; name: string };
  optimizer: [string, Tensor][] | null;
  resolve: (i: CheckpointInfo) => void;
  reject: (e: unknown) => void;
}

interface Meta {
  step: number;
  epoch?: number;
  lrSchedule?: unknown;
  rngSeed?: number | string;
  extra?: Record<string, unknown>;
  anchor: true | number;
  /** Checkpoints saved on the branch before this one (dropped ones included): anchors roll over by it. */
  seq: number;
  file: string;
  lossy?: string;
}

interface Entry {
  id: string;
  commit: Commit;
  meta: Meta;
  metrics: Record<string, number>;
}

const OPTION_KEYS = new Set([
  'branch',
  'every',
  'keepLast',
  'keepBest',
  'metric',
  'mode',
  'keepLossy',
  'anchorEvery',
  'maxQueued',
]);

function posInt(v: unknown, name: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
    throw invalidParameter(name, `integer >= ${min}`, v);
  return v;
}

function tensorList(m: TensorMap, what: string): [string, Tensor][] {
  const list = m instanceof Map ? [...m.entries()] : Object.entries(m);
  for (const [k, t] of list)
    if (!t || typeof t !== 'object' || !(t.data instanceof Uint8Array) || !Array.isArray(t.shape))
      throw invalidParameter(`${what}[${JSON.stringify(k)}]`, 'Tensor {dtype, shape, data}', t);
  return list;
}

/** A copy of a tensor whose bytes nobody else holds. */
function own(t: Tensor): Tensor {
  return { dtype: t.dtype, shape: t.shape.slice(), data: new Uint8Array(t.data) };
}

function metaOf(c: Commit): Meta | null {
  const m = c.metadata.checkpoint as Meta | undefined;
  return m && typeof m === 'object' && typeof m.step === 'number' ? m : null;
}

export class CheckpointManager {
  readonly branch: string;
  private readonly ref: string;
  private readonly opts: CheckpointManagerOptions;
  private readonly lossySpec: LossySpec | null;
  private readonly maxInFlight: number;
  private chain: Promise<void> = Promise.resolve();
  private inFlight = new Set<Promise<unknown>>();
  private lastSaved: { step: number; epoch?: number } | null | undefined;
  private firstError: unknown = null;

  constructor(
    private readonly ctx: RepoContext,
    options: CheckpointManagerOptions,
  ) {
    if (!options || typeof options !== 'object') throw invalidParameter('options', 'object', options);
    for (const k of Object.keys(options))
      if (!OPTION_KEYS.has(k)) throw invalidParameter('option', `one of ${[...OPTION_KEYS].join(', ')}`, k);
    checkShortRefName(options.branch);
    this.branch = options.branch;
    this.ref = `refs/heads/${options.branch}`;
    if (options.every !== undefined) {
      const e = options.every;
      if (!e || typeof e !== 'object' || (e.steps === undefined) === (e.epochs === undefined))
        throw invalidParameter('every', '{ steps } or { epochs }', e);
      posInt(e.steps, 'every.steps');
      posInt(e.epochs, 'every.epochs');
    }
    posInt(options.keepLast, 'keepLast');
    posInt(options.keepBest, 'keepBest');
    posInt(options.anchorEvery, 'anchorEvery');
    posInt(options.maxQueued, 'maxQueued', 0);
    if (options.mode !== undefined && options.mode !== 'min' && options.mode !== 'max')
      throw invalidParameter('mode', "'min' or 'max'", options.mode);
    if (options.keepBest !== undefined && typeof options.metric !== 'string')
      throw invalidParameter('metric', 'metric name (keepBest ranks by it)', options.metric);
    if (options.keepLossy !== undefined) {
      const k = options.keepLossy;
      if (!k || typeof k !== 'object') throw invalidParameter('keepLossy', '{ every, codec }', k);
      posInt(k.every, 'keepLossy.every');
      this.lossySpec = parseLossySpec(k.codec);
    } else this.lossySpec = null;
    this.opts = options;
    this.maxInFlight = (options.maxQueued ?? 1) + 1;
  }

  /** Captured checkpoints not yet committed (the one being written included). */
  get pending(): number {
    return this.inFlight.size;
  }

  /** Would `state` be saved now (the `every` policy)? */
  async due(state: Pick<TrainingState, 'step' | 'epoch'>): Promise<boolean> {
    if (this.lastSaved === undefined) {
      const tip = await this.entries();
      const last = tip[tip.length - 1];
      this.lastSaved = last ? { step: last.meta.step, epoch: last.meta.epoch } : null;
    }
    const e = this.opts.every;
    if (!e || !this.lastSaved) return true;
    if (e.steps !== undefined) return state.step - this.lastSaved.step >= e.steps;
    if (state.epoch === undefined) throw invalidParameter('state.epoch', 'number (every: { epochs })', state.epoch);
    return state.epoch - (this.lastSaved.epoch ?? -Infinity) >= e.epochs!;
  }

  /**
   * Captures a checkpoint and queues it for writing; resolves once the tensors
   * are captured (after waiting for room when `maxQueued` are already
   * waiting), to a handle whose `done` resolves when it is committed. Resolves
   * to null when the `every` policy says it is not due (unless `force`).
   *
   * `input` is the weights (a name -> Tensor map) or the path of a checkpoint
   * file (.safetensors, .pt, .npz... stored as `coral add` stores it; it is
   * copied before save resolves). With `owned: true` the tensors (weights and
   * optimizer) are handed over, not copied: do not modify them until `done`.
   */
  async save(
    input: TensorMap | string,
    state: TrainingState,
    opts: { force?: boolean; owned?: boolean } = {},
  ): Promise<SaveHandle | null> {
    if (!state || typeof state !== 'object') throw invalidParameter('state', 'TrainingState', state);
    if (typeof state.step !== 'number' || !Number.isSafeInteger(state.step) || state.step < 0)
      throw invalidParameter('state.step', 'non-negative integer', state.step);
    if (state.epoch !== undefined && (typeof state.epoch !== 'number' || !Number.isFinite(state.epoch)))
      throw invalidParameter('state.epoch', 'number', state.epoch);
    for (const [k, v] of Object.entries(state.metrics ?? {}))
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw invalidParameter(`state.metrics.${k}`, 'finite number', v);
    const model = typeof input === 'string' ? null : tensorList(input, 'tensors');
    const optimizer = state.optimizer ? tensorList(state.optimizer, 'state.optimizer') : null;
    if (!opts.force && !(await this.due(state))) return null;
    if (this.lastSaved && state.step <= this.lastSaved.step)
      throw new InvalidArgumentError(
        `step ${state.step} is not after the last checkpoint of '${this.branch}' (step ${this.lastSaved.step}); use another branch to branch off`,
        { step: state.step, last: this.lastSaved.step },
      );
    const previous = this.lastSaved;
    this.lastSaved = { step: state.step, epoch: state.epoch };
    // Bounded memory: wait until fewer than maxQueued captured checkpoints wait.
    while (this.inFlight.size >= this.maxInFlight) await Promise.race(this.inFlight).catch(() => undefined);
    let resolveFn!: (i: CheckpointInfo) => void;
    let rejectFn!: (e: unknown) => void;
    const done = new Promise<CheckpointInfo>((res, rej) => {
      resolveFn = res;
      rejectFn = rej;
    });
    this.inFlight.add(done);
    const settle = () => this.inFlight.delete(done);
    let captured = false;
    done.then(settle, (e: unknown) => {
      settle();
      // A failed capture was thrown to save's caller; flush reports failures after it.
      if (captured) this.firstError ??= e;
    });
    try {
      const job: Job = {
        step: state.step,
        state: { ...state, optimizer: undefined },
        model: model
          ? { tensors: opts.owned ? model : model.map(([k, t]) => [k, own(t)]) }
          : await this.captureFile(input as string),
        optimizer: optimizer ? (opts.owned ? optimizer : optimizer.map(([k, t]) => [k, own(t)])) : null,
        resolve: resolveFn,
        reject: rejectFn,
      };
      this.chain = this.chain.then(() => this.write(job));
      captured = true;
    } catch (e) {
      // Nothing was captured: the step is free again.
      if (this.lastSaved?.step === state.step) this.lastSaved = previous;
      rejectFn(e);
      throw e;
    }
    return { step: state.step, done };
  }

  /** Waits until every queued checkpoint is committed; throws the first failure of a save since the last flush. */
  async flush(): Promise<void> {
    await this.chain;
    await Promise.allSettled([...this.inFlight]);
    const e = this.firstError;
    this.firstError = null;
    if (e) throw e as Error;
  }

  /** The checkpoints on the branch, oldest first. */
  async list(): Promise<CheckpointInfo[]> {
    return (await this.entries()).map((e) => this.info(e));
  }

  /**
   * Loads a checkpoint: 'latest', 'best' (by `metric`/`mode`), a step number,
   * or any revision naming a checkpoint commit.
   */
  async load(which: CheckpointRef = 'latest'): Promise<LoadedCheckpoint> {
    const e = await this.pick(which);
    const tree = await readTree(this.ctx, e.commit.tree);
    const file = tree.files[e.meta.file] ? e.meta.file : Object.keys(tree.files).find((f) => f !== OPTIMIZER_FILE)!;
    const tensors = await this.readAll(tree.files[file]);
    const opt = tree.files[OPTIMIZER_FILE] ? await this.readAll(tree.files[OPTIMIZER_FILE]) : undefined;
    const m = e.meta;
    const state: LoadedCheckpoint['state'] = {
      step: m.step,
      ...(m.epoch !== undefined ? { epoch: m.epoch } : {}),
      metrics: e.metrics,
      ...(m.lrSchedule !== undefined ? { lrSchedule: m.lrSchedule } : {}),
      ...(m.rngSeed !== undefined ? { rngSeed: m.rngSeed } : {}),
      ...(m.extra !== undefined ? { extra: m.extra } : {}),
      ...(opt ? { optimizer: opt } : {}),
    };
    return {
      id: e.id,
      step: m.step,
      tensors,
      state,
      file,
      ...(tree.files[file].lossy ? { lossy: tree.files[file].lossy } : {}),
    };
  }

  /** Applies the retention policy now (save does after every checkpoint). */
  async retain(): Promise<RetentionReport> {
    const run = this.chain.then(() => withWriter(this.ctx, 'checkpoint retention', (w) => this.applyRetention(w)));
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  // ---- internals ------------------------------------------------------------------------------

  private info(e: Entry): CheckpointInfo {
    return {
      id: e.id,
      step: e.meta.step,
      ...(e.meta.epoch !== undefined ? { epoch: e.meta.epoch } : {}),
      metrics: e.metrics,
      anchor: e.meta.anchor,
    };
  }

  private async pick(which: CheckpointRef): Promise<Entry> {
    const list = await this.entries();
    if (!list.length) throw new InvalidArgumentError(`branch '${this.branch}' has no checkpoints`);
    if (which === 'latest') return list[list.length - 1];
    if (which === 'best') {
      const b = this.ranked(list)[0];
      if (!b) throw new InvalidArgumentError(`no checkpoint of '${this.branch}' has metric '${this.opts.metric}'`);
      return b;
    }
    if (typeof which === 'number') {
      const hit = list.find((e) => e.meta.step === which);
      if (!hit)
        throw new InvalidArgumentError(`no checkpoint at step ${which} on '${this.branch}'`, {
          steps: list.map((e) => e.meta.step),
        });
      return hit;
    }
    if (typeof which !== 'string') throw invalidParameter('which', "'latest', 'best', a step or a revision", which);
    const id = await resolve(this.ctx, which);
    const commit = await readCommit(this.ctx, id);
    const meta = metaOf(commit);
    if (!meta) throw new InvalidArgumentError(`${which} is not a checkpoint commit`);
    return { id, commit, meta, metrics: (commit.metadata.metrics ?? {}) as Record<string, number> };
  }

  /** Lossless checkpoints with the metric, best first. */
  private ranked(list: Entry[]): Entry[] {
    const metric = this.opts.metric;
    if (!metric) throw new InvalidArgumentError("load('best') and keepBest need the 'metric' option");
    const sign = this.opts.mode === 'max' ? -1 : 1;
    return list
      .filter((e) => !e.meta.lossy && typeof e.metrics[metric] === 'number')
      .sort((a, b) => sign * (a.metrics[metric] - b.metrics[metric]) || b.meta.step - a.meta.step);
  }

  /** The branch's checkpoints, oldest first (first-parent chain). */
  private async entries(): Promise<Entry[]> {
    const out: Entry[] = [];
    let id = await this.ctx.refs.readRef(this.ref);
    while (id) {
      const commit = await readCommit(this.ctx, id);
      const meta = metaOf(commit);
      if (!meta) break; // history before the manager took the branch over
      out.push({ id, commit, meta, metrics: (commit.metadata.metrics ?? {}) as Record<string, number> });
      id = commit.parents[0] ?? null;
    }
    return out.reverse();
  }

  private async captureFile(file: string): Promise<{ file: string; name: string }> {
    const st = await fsp.stat(file).catch(() => null);
    if (!st?.isFile()) throw invalidParameter('input', 'tensors or the path of a checkpoint file', file);
    const copy = await this.tmpPath(path.extname(file));
    await fsp.copyFile(file, copy);
    return { file: copy, name: path.basename(file) };
  }

  private async tmpPath(ext: string): Promise<string> {
    await fsp.mkdir(this.ctx.layout.tmp, { recursive: true });
    return path.join(this.ctx.layout.tmp, `ckpt-${process.pid}-${crypto.randomBytes(6).toString('hex')}${ext}`);
  }

  /** Base proposals: the same-named segments of the anchor checkpoint's files. */
  private basesFrom(tree: Tree): FindBase {
    const names = new Map<string, ReturnType<typeof segmentNames>>();
    return async (q) => {
      const e = Object.prototype.hasOwnProperty.call(tree.files, q.path) ? tree.files[q.path] : undefined;
      if (!e || e.lossy) return null;
      if (q.name === SKELETON_NAME) return { id: e.skeleton };
      let n = names.get(q.path);
      if (!n) names.set(q.path, (n = segmentNames(e)));
      const s = n.get(q.name);
      if (!s || s.dtype !== q.dtype || s.shape.length !== q.shape.length || s.shape.some((d, i) => d !== q.shape[i]))
        return null;
      return { id: s.object };
    };
  }

  private async write(job: Job): Promise<void> {
    const tmps: string[] = [];
    try {
      let modelPath: string;
      let modelName: string;
      if ('file' in job.model) {
        modelPath = job.model.file;
        modelName = job.model.name;
        tmps.push(modelPath);
      } else {
        modelPath = await this.tmpPath('.safetensors');
        tmps.push(modelPath);
        await writeSafetensors(modelPath, new Map(job.model.tensors));
        modelName = MODEL_FILE;
      }
      if (modelName === OPTIMIZER_FILE)
        throw new InvalidArgumentError(`a weights file cannot be named ${OPTIMIZER_FILE} (the optimizer's)`);
      let optPath: string | null = null;
      if (job.optimizer) {
        optPath = await this.tmpPath('.safetensors');
        tmps.push(optPath);
        await writeSafetensors(optPath, new Map(job.optimizer));
      }
      // Captured bytes are on disk now: drop the copies before encoding.
      job.model = { file: modelPath, name: modelName };
      job.optimizer = null;
      const info = await withWriter(this.ctx, 'checkpoint', async (writer) => {
        const tip = await this.ctx.refs.readRef(this.ref);
        const list = await this.entries();
        const anchorEvery = this.opts.anchorEvery ?? 8;
        let anchor: Entry | null = null;
        for (let i = list.length - 1; i >= 0 && !anchor; i--) if (list[i].meta.anchor === true) anchor = list[i];
        // A lossy anchor is no base for exact deltas: start a new one.
        if (anchor?.meta.lossy) anchor = null;
        const seq = list.length ? (list[list.length - 1].meta.seq ?? list.length - 1) + 1 : 0;
        const standalone = !anchor || anchorEvery <= 1 || seq - (anchor.meta.seq ?? 0) >= anchorEvery;
        const findBase = standalone ? null : this.basesFrom(await readTree(this.ctx, anchor!.commit.tree));
        const files = fileTable<FileEntry>();
        files[modelName] = (await ingestFile(writer, modelPath, modelName, findBase)).entry;
        if (optPath) files[OPTIMIZER_FILE] = (await ingestFile(writer, optPath, OPTIMIZER_FILE, findBase)).entry;
        await writer.flush();
        const treeId = await this.ctx.meta.put(encodeTree({ files }));
        const { optimizer: _o, metrics, ...rest } = job.state;
        void _o;
        const meta: Meta = {
          step: rest.step,
          ...(rest.epoch !== undefined ? { epoch: rest.epoch } : {}),
          ...(rest.lrSchedule !== undefined ? { lrSchedule: rest.lrSchedule } : {}),
          ...(rest.rngSeed !== undefined ? { rngSeed: rest.rngSeed } : {}),
          ...(rest.extra !== undefined ? { extra: rest.extra } : {}),
          anchor: standalone ? true : anchor!.meta.step,
          seq,
          file: modelName,
        };
        const sig = signature(this.ctx);
        const metricText = Object.entries(metrics ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
        const c: Commit = {
          tree: treeId,
          parents: tip ? [tip] : [],
          author: sig,
          committer: sig,
          message: `checkpoint: step ${rest.step}${metricText ? ` (${metricText})` : ''}\n`,
          metadata: { checkpoint: meta, metrics: metrics ?? {} },
        };
        const id = await this.ctx.meta.put(encodeCommit(c));
        await this.ctx.refs.updateRef(this.ref, id, { expectedOld: tip, message: `checkpoint: step ${rest.step}` });
        await this.applyRetention(writer);
        return this.info({ id, commit: c, meta, metrics: metrics ?? {} });
      });
      job.resolve(info);
    } catch (e) {
      job.reject(e);
    } finally {
      for (const f of tmps) await fsp.rm(f, { force: true });
    }
  }

  /** Which checkpoints stay whole, stay lossy, or go; then the branch rewrite. */
  private async applyRetention(writer: ObjectWriter): Promise<RetentionReport> {
    const report: RetentionReport = { kept: [], pinned: [], lossy: [], dropped: [] };
    const list = await this.entries();
    const { keepLast, keepBest, keepLossy } = this.opts;
    if (keepLast === undefined && keepBest === undefined) {
      report.kept = list.map((e) => e.meta.step);
      return report;
    }
    const full = new Set<Entry>(list.slice(-Math.max(1, keepLast ?? 1)).filter((e) => !e.meta.lossy));
    if (keepBest) for (const e of this.ranked(list).slice(0, keepBest)) full.add(e);
    const pinned = new Set<Entry>();
    for (const e of [...full])
      if (e.meta.anchor !== true) {
        const a = list.find((x) => x.meta.step === e.meta.anchor);
        if (a && !full.has(a)) pinned.add(a);
      }
    const plan = new Map<Entry, 'keep' | 'lossy' | 'drop'>();
    for (const e of list) {
      if (full.has(e) || pinned.has(e)) plan.set(e, 'keep');
      else if (keepLossy && e.meta.step % keepLossy.every === 0) plan.set(e, e.meta.lossy ? 'keep' : 'lossy');
      else plan.set(e, 'drop');
    }
    let parent: string | null = list.length ? (list[0].commit.parents[0] ?? null) : null;
    let rewriting = false;
    const oldIds = new Set<string>();
    for (const e of list) {
      const action = plan.get(e)!;
      if (action === 'drop') {
        report.dropped.push(e.meta.step);
        rewriting = true;
        oldIds.add(e.id);
        continue;
      }
      if (pinned.has(e)) report.pinned.push(e.meta.step);
      else report.kept.push(e.meta.step);
      let c = e.commit;
      if (action === 'lossy') {
        report.lossy.push(e.meta.step);
        const spec = this.lossySpec!;
        c = {
          ...c,
          tree: await this.lossyTree(writer, c.tree, spec),
          metadata: { ...c.metadata, checkpoint: { ...e.meta, lossy: spec.codec } },
        };
        rewriting = true;
      }
      if (!rewriting) {
        parent = e.id;
        continue;
      }
      oldIds.add(e.id);
      parent = await this.ctx.meta.put(encodeCommit({ ...c, parents: parent ? [parent] : [] }));
    }
    if (!rewriting) return report;
    const tip = list[list.length - 1].id;
    const msg = `checkpoint retention: ${report.dropped.length} dropped, ${report.lossy.length} made lossy`;
    await this.ctx.refs.updateRef(this.ref, parent!, { expectedOld: tip, message: msg });
    // Rewritten-away commits must not stay gc roots through the reflogs.
    await this.ctx.refs.expireReflog(this.ref, oldIds);
    const head = await this.ctx.refs.readHead();
    if (head.kind === 'symbolic' && head.target === this.ref) await this.ctx.refs.expireReflog('HEAD', oldIds);
    return report;
  }

  /** The tree with every float segment re-encoded with the lossy codec (standalone). */
  private async lossyTree(writer: ObjectWriter, treeId: string, spec: LossySpec): Promise<string> {
    const tree = await readTree(this.ctx, treeId);
    const files = fileTable<FileEntry>();
    for (const [p, e] of Object.entries(tree.files)) {
      if (e.lossy || !e.segments.length) {
        files[p] = e;
        continue;
      }
      const tally = new LossyTally();
      const segments = [];
      for (const s of e.segments) {
        const r = await writer.put(await this.ctx.reader.tensor(s.object), null, undefined, undefined, { lossy: spec });
        tally.count(r);
        segments.push({ ...s, object: r.id });
      }
      await writer.flush();
      const next: FileEntry = { ...e, segments };
      const sha = crypto.createHash('sha256');
      for await (const chunk of fileChunks(this.ctx.reader, next)) sha.update(chunk);
      const mark = tally.markFor(e.sha256);
      files[p] = mark ? { ...next, sha256: sha.digest('hex'), lossy: mark } : e;
    }
    return this.ctx.meta.put(encodeTree({ files }));
  }

  private async readAll(e: FileEntry): Promise<Map<string, Tensor>> {
    const out = new Map<string, Tensor>();
    for (const te of e.tensors) out.set(te.name, await readFileTensor(this.ctx.reader, e, te));
    return out;
  }
}
