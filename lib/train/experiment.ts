/**
 * ExperimentTracker: training runs as branches, with parameters and per-step
 * metrics, queryable and comparable (docs/training.md).
 *
 * A run named `lr-3e-4` is the branch `exp/lr-3e-4` (refs/heads/exp/lr-3e-4).
 * `start` commits its first commit: the tree of the revision it starts from
 * (HEAD by default, so the run records which weights it began with) and
 * metadata `experiment: { name, params, status: 'running' }`. Metrics logged
 * with `Run.log(step, metrics)` are buffered and committed every `flushEvery`
 * points (and on `flush`/`finish`) as commits with the same tree and metadata
 * `series: [{ step, metrics }...]` plus the latest `metrics`, so `coral log
 * exp/<run> --metric loss` works too. A CheckpointManager may write its
 * checkpoints to the same branch name instead: its commits (metadata
 * `checkpoint.step` + `metrics`) count as points of the series as well.
 *
 * @example
 * const tracker = new ExperimentTracker(repo);
 * const run = await tracker.start('lr-3e-4', { params: { lr: 3e-4, batch: 64 } });
 * for (let step = 0; step < 100; step++) run.log(step, { loss: 1 / (step + 1) });
 * await run.finish();
 * const cmp = await tracker.compare(['lr-3e-4', 'lr-1e-3'], { metric: 'loss' });
 * await tracker.plot(['lr-3e-4', 'lr-1e-3'], { metric: 'loss', file: 'runs.svg' });
 */
import * as fsp from 'node:fs/promises';
import { readCommit, resolve, signature, withWriter, type RepoContext } from '../context';
import { AlreadyExistsError, InvalidArgumentError, RefNotFoundError, invalidParameter } from '../errors';
import { checkShortRefName, encodeCommit, encodeTree, type Commit } from '../models';
import { renderPlot, type PlotSeries, type PlotOptions } from './plot';
import { encodePng } from './png';

/** Branch prefix of experiment runs. */
export const EXPERIMENT_PREFIX = 'exp/';

export interface MetricPoint {
  step: number;
  metrics: Record<string, number>;
}

export type RunStatus = 'running' | 'finished' | 'failed';

export interface RunSummary {
  name: string;
  /** The run's branch (exp/<name>). */
  branch: string;
  params: Record<string, unknown>;
  status: RunStatus;
  /** Number of logged points. */
  points: number;
  /** Last logged step, or null. */
  lastStep: number | null;
  /** The last value of each metric. */
  last: Record<string, number>;
  /** The tip commit of the run. */
  id: string;
}

export interface RunDetail extends RunSummary {
  /** Every point, in step order. */
  series: MetricPoint[];
  /** The commit the run started from (null for an unborn repository). */
  from: string | null;
}

export interface RunComparison {
  metric: string;
  runs: Array<{
    name: string;
    params: Record<string, unknown>;
    /** (step, value) of the metric. */
    points: Array<[number, number]>;
    last: number | null;
    best: number | null;
    bestStep: number | null;
  }>;
  /** Parameters whose values differ between the runs. */
  differingParams: string[];
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function checkMetrics(m: unknown, where: string): Record<string, number> {
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw invalidParameter(where, 'object of finite numbers', m);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) {
    if (!isNum(v)) throw invalidParameter(`${where}.${k}`, 'finite number', v);
    out[k] = v;
  }
  return out;
}

function checkStep(step: unknown): number {
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0)
    throw invalidParameter('step', 'non-negative integer', step);
  return step;
}

/** One run being logged to. */
export class Run {
  private buffer: MetricPoint[] = [];
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly tracker: ExperimentTracker,
    readonly name: string,
    private readonly flushEvery: number,
  ) {}

  /** Records metrics at a step; committed every `flushEvery` points and on flush/finish. */
  log(step: number, metrics: Record<string, number>): void {
    this.buffer.push({ step: checkStep(step), metrics: checkMetrics(metrics, 'metrics') });
    if (this.buffer.length >= this.flushEvery) void this.flush().catch(() => undefined);
  }

  /** Commits the buffered points (one commit). */
  flush(): Promise<void> {
    const points = this.buffer;
    this.buffer = [];
    const run = this.writing.then(() => (points.length ? this.tracker.append(this.name, points) : undefined));
    this.writing = run.then(
      () => undefined,
      () => undefined,
    );
    return run.then(() => undefined);
  }

  /** Flushes and marks the run finished (or failed). */
  async finish(status: Exclude<RunStatus, 'running'> = 'finished'): Promise<void> {
    await this.flush();
    await this.tracker.append(this.name, [], status);
  }
}

export class ExperimentTracker {
  constructor(private readonly ctx: RepoContext) {}

  private ref(name: string): string {
    if (typeof name !== 'string' || !name) throw invalidParameter('run name', 'non-empty string', name);
    checkShortRefName(`${EXPERIMENT_PREFIX}${name}`);
    return `refs/heads/${EXPERIMENT_PREFIX}${name}`;
  }

  /** Starts a run: a branch exp/<name> from `from` (default HEAD) with the parameters. */
  async start(
    name: string,
    opts: { params?: Record<string, unknown>; from?: string; message?: string; flushEvery?: number } = {},
  ): Promise<Run> {
    const ref = this.ref(name);
    if (await this.ctx.refs.readRef(ref))
      throw new AlreadyExistsError(`experiment '${name}' already exists`, { run: name });
    const params = opts.params ?? {};
    if (typeof params !== 'object' || Array.isArray(params)) throw invalidParameter('params', 'object', params);
    const from = opts.from ? await resolve(this.ctx, opts.from) : await this.ctx.refs.resolveHead();
    const tree = from ? (await readCommit(this.ctx, from)).tree : await this.ctx.meta.put(encodeTree({ files: {} }));
    await this.commit(ref, null, {
      tree,
      message: opts.message ?? `experiment ${name}: start`,
      metadata: { experiment: { name, params, status: 'running', from } },
    });
    return this.run(name, opts);
  }

  /** A handle to log into an existing run. */
  run(name: string, opts: { flushEvery?: number } = {}): Run {
    this.ref(name);
    const n = opts.flushEvery ?? 50;
    if (!Number.isSafeInteger(n) || n < 1) throw invalidParameter('flushEvery', 'positive integer', n);
    return new Run(this, name, n);
  }

  /** @internal Commits points (and a status change) onto the run's branch. */
  async append(name: string, points: MetricPoint[], status?: RunStatus): Promise<string> {
    const ref = this.ref(name);
    const tip = await this.ctx.refs.readRef(ref);
    if (!tip) throw new RefNotFoundError(`no experiment named '${name}' (start it first)`, { run: name });
    const tc = await readCommit(this.ctx, tip);
    const last = points.length ? points[points.length - 1] : null;
    const message = status
      ? `experiment ${name}: ${status}`
      : `experiment ${name}: step ${points[0].step}${points.length > 1 ? `..${last!.step}` : ''}`;
    return this.commit(ref, tip, {
      tree: tc.tree,
      message,
      metadata: {
        ...(points.length ? { series: points, metrics: last!.metrics, step: last!.step } : {}),
        ...(status ? { experiment: { status } } : {}),
      },
    });
  }

  private async commit(
    ref: string,
    parent: string | null,
    c: { tree: string; message: string; metadata: Record<string, unknown> },
  ): Promise<string> {
    return withWriter(this.ctx, 'experiment', async () => {
      const sig = signature(this.ctx);
      const commit: Commit = {
        tree: c.tree,
        parents: parent ? [parent] : [],
        author: sig,
        committer: sig,
        message: `${c.message}\n`,
        metadata: c.metadata,
      };
      const id = await this.ctx.meta.put(encodeCommit(commit));
      await this.ctx.refs.updateRef(ref, id, { expectedOld: parent, message: c.message });
      return id;
    });
  }

  /** Every run, by name. */
  async list(): Promise<RunSummary[]> {
    const out: RunSummary[] = [];
    for (const r of await this.ctx.refs.listRefs(`refs/heads/${EXPERIMENT_PREFIX}`)) {
      const name = r.name.slice(`refs/heads/${EXPERIMENT_PREFIX}`.length);
      const { series: _s, from: _f, ...summary } = await this.show(name);
      void _s;
      void _f;
      out.push(summary);
    }
    return out;
  }

  /** One run: parameters, status and every point. */
  async show(name: string): Promise<RunDetail> {
    const ref = this.ref(name);
    const tip = await this.ctx.refs.readRef(ref);
    if (!tip) throw new RefNotFoundError(`no experiment named '${name}'`, { run: name });
    return readRun(name, tip, (id) => readCommit(this.ctx, id));
  }

  /** One metric of several runs side by side: points, last and best values, differing parameters. */
  async compare(names: string[], opts: { metric?: string; mode?: 'min' | 'max' } = {}): Promise<RunComparison> {
    if (!Array.isArray(names) || !names.length) throw invalidParameter('runs', 'non-empty array of run names', names);
    const details = await Promise.all(names.map((n) => this.show(n)));
    const metric = opts.metric ?? firstMetric(details);
    if (!metric) throw new InvalidArgumentError('the runs have no metrics to compare');
    const sign = opts.mode === 'max' ? -1 : 1;
    const runs = details.map((d) => {
      const points = d.series.flatMap((p) =>
        isNum(p.metrics[metric]) ? [[p.step, p.metrics[metric]] as [number, number]] : [],
      );
      let best: [number, number] | null = null;
      for (const p of points) if (!best || sign * (p[1] - best[1]) < 0) best = p;
      return {
        name: d.name,
        params: d.params,
        points,
        last: points.length ? points[points.length - 1][1] : null,
        best: best ? best[1] : null,
        bestStep: best ? best[0] : null,
      };
    });
    const keys = new Set(details.flatMap((d) => Object.keys(d.params)));
    const differingParams = [...keys]
      .filter((k) => new Set(details.map((d) => JSON.stringify(d.params[k] ?? null))).size > 1)
      .sort();
    return { metric, runs, differingParams };
  }

  /**
   * Draws one metric of several runs against step (lines, axes with labels,
   * a legend). Returns the SVG text, or the PNG bytes when `format` is 'png'
   * (or `file` ends in .png); with `file`, also writes it.
   */
  async plot(
    names: string[],
    opts: { metric?: string; file?: string; format?: 'svg' | 'png'; title?: string } & Pick<
      PlotOptions,
      'width' | 'height' | 'logY'
    > = {},
  ): Promise<string | Buffer> {
    const cmp = await this.compare(names, { metric: opts.metric });
    const series: PlotSeries[] = cmp.runs.map((r) => ({ label: r.name, points: r.points }));
    const format = opts.format ?? (opts.file && /\.png$/i.test(opts.file) ? 'png' : 'svg');
    const plotOpts: PlotOptions = {
      title: opts.title ?? `${cmp.metric} by step`,
      xLabel: 'step',
      yLabel: cmp.metric,
      ...(opts.width ? { width: opts.width } : {}),
      ...(opts.height ? { height: opts.height } : {}),
      ...(opts.logY ? { logY: true } : {}),
    };
    const out =
      format === 'png' ? encodePng(renderPlot(series, plotOpts).raster()) : renderPlot(series, plotOpts).svg();
    if (opts.file) await fsp.writeFile(opts.file, out);
    return out;
  }
}

function firstMetric(details: RunDetail[]): string | undefined {
  for (const d of details) for (const p of d.series) for (const k of Object.keys(p.metrics)) return k;
  return undefined;
}

/**
 * A run's parameters, status and points, read from its tip commit back to its first one; `read` reads one
 * commit (a repository's, or a served repository's meta objects: the web UI reads runs this way).
 */
export async function readRun(name: string, tip: string, read: (id: string) => Promise<Commit>): Promise<RunDetail> {
  const chunks: MetricPoint[][] = [];
  let params: Record<string, unknown> = {};
  let status: RunStatus | null = null;
  let from: string | null = null;
  let id: string | null = tip;
  while (id) {
    const c = await read(id);
    const md = c.metadata;
    const exp = md.experiment as
      { params?: Record<string, unknown>; status?: RunStatus; from?: string | null } | undefined;
    if (exp?.status && status === null) status = exp.status;
    if (Array.isArray(md.series)) chunks.push(md.series as MetricPoint[]);
    else {
      const ck = md.checkpoint as { step?: number } | undefined;
      if (ck && isNum(ck.step) && md.metrics && typeof md.metrics === 'object')
        chunks.push([{ step: ck.step, metrics: md.metrics as Record<string, number> }]);
    }
    if (exp?.params) {
      params = exp.params;
      from = exp.from ?? null;
      break; // the run's first commit
    }
    id = c.parents[0] ?? null;
  }
  const series = chunks.reverse().flat();
  series.sort((a, b) => a.step - b.step);
  const last: Record<string, number> = {};
  for (const p of series) Object.assign(last, p.metrics);
  return {
    name,
    branch: `${EXPERIMENT_PREFIX}${name}`,
    params,
    status: status ?? 'running',
    points: series.length,
    lastStep: series.length ? series[series.length - 1].step : null,
    last,
    id: tip,
    series,
    from,
  };
}
