/**
 * `publish`: writes a commit out as a folder other tools load.
 *
 * - `hf`: a Hugging Face model folder: the weights as safetensors shards of at
 *   most `shardSize` bytes (`model.safetensors` when one shard is enough,
 *   else `model-00001-of-0000N.safetensors`), always with a
 *   `model.safetensors.index.json` (`metadata.total_size`, `weight_map`), the
 *   config and tokenizer files the commit holds (byte-exact), and a model card
 *   `README.md` whose YAML front matter carries the metrics of the commit and
 *   its lineage (first-parent history).
 * - `mlflow`: an MLflow model folder: `MLmodel` (YAML: a `coral` flavor naming
 *   the weights, the commit and the metrics under `metadata`), the weights and
 *   config files under `data/`, and `metrics.json`.
 *
 * Weights are the tensors of the commit's safetensors, PyTorch and NumPy files
 * (one name space: a name found in two files is an error unless `paths`
 * narrows the files). ONNX, GGUF and plain files are not weights here.
 * One shard's tensors are in memory at a time.
 *
 * Every publish appends a line to `.coral/publish.log` (JSON Lines), which
 * {@link publishLog} (`coral publish --list`) reads.
 *
 * @example
 * const r = await publish(ctx, 'v1', { format: 'hf', out: '/tmp/model', shardSize: 2e9 });
 * console.log(r.shards, r.files);
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, IoError, RefNotFoundError, invalidParameter } from '../errors';
import { writeSafetensors } from '../formats/safetensors';
import type { Commit, FileEntry, TensorEntry } from '../models';
import { DTYPES, type DType } from '../tensor/dtype';
import type { Tensor } from '../tensor/tensor';
import { readCommit, resolve, treeOf, type RepoContext } from '../context';
import { materializeFile, readFileTensor } from '../worktree/materialize';
import { logCommits } from './log';

export type PublishFormat = 'hf' | 'mlflow';
export const PUBLISH_FORMATS: readonly PublishFormat[] = ['hf', 'mlflow'];
/** Default largest shard: 5 GB, as transformers' `save_pretrained` uses. */
export const DEFAULT_SHARD_SIZE = 5_000_000_000;
/** First-parent commits listed in the model card's lineage. */
export const LINEAGE_LIMIT = 20;

const WEIGHT_FORMATS = new Set(['safetensors', 'pytorch', 'npy', 'npz']);
/** Files copied next to the weights (by base name): model config and tokenizer. */
const SIDE_FILES =
  /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|added_tokens\.json|vocab\.json|vocab\.txt|merges\.txt|tokenizer\.model|spiece\.model|sentencepiece\.bpe\.model|preprocessor_config\.json|chat_template\.jinja|.*\.tiktoken)$/;

export interface PublishOptions {
  format: PublishFormat;
  /** Destination folder: created; must be empty if it exists. */
  out: string;
  /** Largest shard in bytes (hf and mlflow). */
  shardSize?: number;
  /** Weight files to take (tree paths); default: every safetensors/PyTorch/NumPy file. */
  paths?: string[];
  /** Model name for the card (default: the destination folder's name). */
  name?: string;
}

export interface PublishReport {
  rev: string;
  commit: string;
  format: PublishFormat;
  out: string;
  /** Files written, relative to `out`. */
  files: string[];
  tensors: number;
  shards: number;
  /** Bytes of tensor data written. */
  weightBytes: number;
}

export interface PublishRecord {
  time: string;
  rev: string;
  commit: string;
  /** `coral`: published into a remote repository under a tag (`publish --to`, lib/commands/publish-remote.ts). */
  format: PublishFormat | 'coral';
  /** The folder, or the registry's URL. */
  destination: string;
  /** `coral`: the tag on the remote. */
  tag?: string;
  files: number;
  tensors: number;
  weightBytes: number;
  /** `coral`: bytes sent (objects and meta objects the registry lacked). */
  sentBytes?: number;
}

interface WeightRef {
  name: string;
  file: string;
  entry: FileEntry;
  te: TensorEntry;
  bytes: number;
}

function collectWeights(files: Record<string, FileEntry>, paths: string[] | undefined): WeightRef[] {
  const chosen = paths ?? Object.keys(files).filter((p) => WEIGHT_FORMATS.has(files[p].format));
  const seen = new Map<string, string>();
  const out: WeightRef[] = [];
  for (const p of chosen.sort()) {
    const e = files[p];
    if (!e) throw new RefNotFoundError(`path '${p}' is not in the published commit`, { path: p });
    if (!WEIGHT_FORMATS.has(e.format))
      throw new InvalidArgumentError(`'${p}' is a ${e.format} file, not safetensors/PyTorch/NumPy weights`, {
        path: p,
      });
    for (const te of e.tensors) {
      const prev = seen.get(te.name);
      if (prev)
        throw new InvalidArgumentError(
          `tensor '${te.name}' is in both '${prev}' and '${p}': choose the weight files to publish`,
          { tensor: te.name, files: [prev, p] },
        );
      seen.set(te.name, p);
      const bytes = te.shape.reduce((a, b) => a * b, 1) * dtypeSize(te.dtype);
      out.push({ name: te.name, file: p, entry: e, te, bytes });
    }
  }
  if (!out.length) throw new InvalidArgumentError('the commit holds no safetensors/PyTorch/NumPy tensors to publish');
  return out;
}

function dtypeSize(d: string): number {
  return DTYPES[d as DType].size;
}

/** Greedy shards in name order: a tensor bigger than the limit gets a shard of its own. */
function shard(weights: WeightRef[], limit: number): WeightRef[][] {
  const sorted = weights.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const shards: WeightRef[][] = [];
  let cur: WeightRef[] = [];
  let size = 0;
  for (const w of sorted) {
    if (cur.length && size + w.bytes > limit) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(w);
    size += w.bytes;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

async function emptyDir(dir: string): Promise<void> {
  try {
    const list = await fsp.readdir(dir);
    if (list.length) throw new InvalidArgumentError(`destination ${dir} exists and is not empty`, { path: dir });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') await fsp.mkdir(dir, { recursive: true });
    else if ((e as NodeJS.ErrnoException).code === 'ENOTDIR')
      throw new InvalidArgumentError(`destination ${dir} is a file`, { path: dir });
    else throw e;
  }
}

/** Numbers (and short strings) of the commit's metadata: `metadata.metrics` when it is an object, else the top level. */
export function commitMetrics(c: Commit): Record<string, number | string | boolean> {
  const src =
    c.metadata.metrics && typeof c.metadata.metrics === 'object' && !Array.isArray(c.metadata.metrics)
      ? (c.metadata.metrics as Record<string, unknown>)
      : c.metadata;
  const out: Record<string, number | string | boolean> = {};
  for (const [k, v] of Object.entries(src)) {
    if (typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && v.length <= 200)) out[k] = v;
  }
  return out;
}

/** A YAML scalar: numbers and booleans bare, everything else a JSON string (valid YAML). */
function yamlScalar(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return String(v);
  return JSON.stringify(String(v));
}
function yamlKey(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k) ? k : JSON.stringify(k);
}

function isoDate(ts: number): string {
  return new Date(ts * 1000).toISOString();
}

async function writeWeights(
  ctx: Pick<RepoContext, 'reader'>,
  weights: WeightRef[],
  dir: string,
  limit: number,
): Promise<{ files: string[]; shards: number; total: number }> {
  const shards = shard(weights, limit);
  const n = shards.length;
  const names = shards.map((_, i) =>
    n === 1
      ? 'model.safetensors'
      : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`,
  );
  const weightMap: Record<string, string> = Object.create(null) as Record<string, string>;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const tensors = new Map<string, Tensor>();
    for (const w of shards[i]) {
      tensors.set(w.name, await readFileTensor(ctx.reader, w.entry, w.te));
      weightMap[w.name] = names[i];
      total += w.bytes;
    }
    await writeSafetensors(path.join(dir, names[i]), tensors, { format: 'pt' });
  }
  const sortedMap: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sortedMap[k] = weightMap[k];
  await fsp.writeFile(
    path.join(dir, 'model.safetensors.index.json'),
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: sortedMap }, null, 2)}\n`,
  );
  return { files: [...names, 'model.safetensors.index.json'], shards: n, total };
}

async function copySideFiles(
  ctx: Pick<RepoContext, 'reader'>,
  files: Record<string, FileEntry>,
  dir: string,
): Promise<string[]> {
  const out: string[] = [];
  const taken = new Set<string>();
  for (const p of Object.keys(files).sort()) {
    const base = path.posix.basename(p);
    if (!SIDE_FILES.test(base) || taken.has(base)) continue;
    taken.add(base);
    await materializeFile(ctx.reader, files[p], path.join(dir, base));
    out.push(base);
  }
  return out;
}

function modelCard(
  name: string,
  rev: string,
  id: string,
  commit: Commit,
  metrics: Record<string, unknown>,
  lineage: { id: string; commit: Commit }[],
  weights: { files: string[]; total: number; tensors: number },
): string {
  const y: string[] = ['---', 'tags:', '  - coral', 'library_name: safetensors'];
  if (Object.keys(metrics).length) {
    y.push('metrics:');
    for (const [k, v] of Object.entries(metrics)) y.push(`  ${yamlKey(k)}: ${yamlScalar(v)}`);
  }
  y.push('coral:', `  commit: ${id}`, `  rev: ${yamlScalar(rev)}`, '  lineage:');
  for (const l of lineage) {
    y.push(`    - commit: ${l.id}`);
    y.push(`      message: ${yamlScalar(l.commit.message.split('\n')[0])}`);
    y.push(`      date: ${yamlScalar(isoDate(l.commit.committer.timestamp))}`);
    const m = commitMetrics(l.commit);
    if (Object.keys(m).length) {
      y.push('      metrics:');
      for (const [k, v] of Object.entries(m)) y.push(`        ${yamlKey(k)}: ${yamlScalar(v)}`);
    }
  }
  y.push('---', '');
  const body = [
    `# ${name}`,
    '',
    `Published by coral from commit \`${id}\` (${rev}): ${commit.message.split('\n')[0]}`,
    '',
    `${weights.tensors} tensors, ${weights.total} bytes of weights in ${weights.files.filter((f) => f.endsWith('.safetensors')).length} safetensors file(s).`,
    '',
  ];
  if (Object.keys(metrics).length) {
    body.push('## Metrics', '', '| metric | value |', '| --- | --- |');
    for (const [k, v] of Object.entries(metrics)) body.push(`| ${k} | ${String(v)} |`);
    body.push('');
  }
  body.push('## Lineage', '');
  for (const l of lineage)
    body.push(`- \`${l.id.slice(0, 12)}\` ${isoDate(l.commit.committer.timestamp)} ${l.commit.message.split('\n')[0]}`);
  body.push('');
  return `${y.join('\n')}\n${body.join('\n')}`;
}

function mlmodel(id: string, rev: string, metrics: Record<string, unknown>, weights: string[], time: string): string {
  const y = [
    'artifact_path: model',
    'flavors:',
    '  coral:',
    '    format: safetensors',
    `    weights_index: ${yamlScalar('data/model.safetensors.index.json')}`,
    '    weights:',
    ...weights.filter((w) => w.endsWith('.safetensors')).map((w) => `      - ${yamlScalar(`data/${w}`)}`),
    `    commit: ${id}`,
    `model_uuid: ${id.slice(0, 32)}`,
    `utc_time_created: ${yamlScalar(time.replace('T', ' ').replace('Z', ''))}`,
    'metadata:',
    '  source: coral',
    `  coral_commit: ${id}`,
    `  coral_rev: ${yamlScalar(rev)}`,
  ];
  if (Object.keys(metrics).length) {
    y.push('  metrics:');
    for (const [k, v] of Object.entries(metrics)) y.push(`    ${yamlKey(k)}: ${yamlScalar(v)}`);
  }
  return `${y.join('\n')}\n`;
}

function publishLogPath(ctx: Pick<RepoContext, 'layout'>): string {
  return path.join(ctx.layout.coral, 'publish.log');
}

/** Writes `rev` to `opts.out` in `opts.format` and records it in `.coral/publish.log`. */
export async function publish(
  ctx: Pick<RepoContext, 'refs' | 'meta' | 'reader' | 'layout'>,
  rev: string,
  opts: PublishOptions,
): Promise<PublishReport> {
  if (!PUBLISH_FORMATS.includes(opts.format))
    throw invalidParameter('format', `one of ${PUBLISH_FORMATS.join(', ')}`, opts.format);
  if (typeof opts.out !== 'string' || !opts.out) throw invalidParameter('out', 'destination folder', opts.out);
  const limit = opts.shardSize ?? DEFAULT_SHARD_SIZE;
  if (!Number.isSafeInteger(limit) || limit <= 0) throw invalidParameter('shardSize', 'positive integer', limit);
  const id = await resolve(ctx, rev);
  const commit = await readCommit(ctx, id);
  const tree = await treeOf(ctx, id);
  const weights = collectWeights(tree.files, opts.paths);
  const out = path.resolve(opts.out);
  if (out === ctx.layout.worktree || out.startsWith(`${ctx.layout.coral}${path.sep}`) || out === ctx.layout.coral)
    throw new InvalidArgumentError(`cannot publish into the repository itself (${out})`, { path: out });
  await emptyDir(out);
  const metrics = commitMetrics(commit);
  const time = new Date().toISOString();
  const files: string[] = [];
  let w: { files: string[]; shards: number; total: number };
  if (opts.format === 'hf') {
    w = await writeWeights(ctx, weights, out, limit);
    files.push(...w.files);
    files.push(...(await copySideFiles(ctx, tree.files, out)));
    const lineage = (await logCommits(ctx, { revs: [id], firstParent: true, limit: LINEAGE_LIMIT })).map((e) => ({
      id: e.id,
      commit: e.commit,
    }));
    const card = modelCard(opts.name ?? path.basename(out), rev, id, commit, metrics, lineage, {
      files: w.files,
      total: w.total,
      tensors: weights.length,
    });
    await fsp.writeFile(path.join(out, 'README.md'), card);
    files.push('README.md');
  } else {
    const data = path.join(out, 'data');
    await fsp.mkdir(data);
    w = await writeWeights(ctx, weights, data, limit);
    files.push(...w.files.map((f) => `data/${f}`));
    files.push(...(await copySideFiles(ctx, tree.files, data)).map((f) => `data/${f}`));
    await fsp.writeFile(path.join(out, 'MLmodel'), mlmodel(id, rev, metrics, w.files, time));
    await fsp.writeFile(path.join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
    files.push('MLmodel', 'metrics.json');
  }
  const record: PublishRecord = {
    time,
    rev,
    commit: id,
    format: opts.format,
    destination: out,
    files: files.length,
    tensors: weights.length,
    weightBytes: w.total,
  };
  await recordPublish(ctx, record);
  return {
    rev,
    commit: id,
    format: opts.format,
    out,
    files,
    tensors: weights.length,
    shards: w.shards,
    weightBytes: w.total,
  };
}

/** Appends one record to `.coral/publish.log`. */
export async function recordPublish(ctx: Pick<RepoContext, 'layout'>, record: PublishRecord): Promise<void> {
  try {
    // One short line per publish, appended with O_APPEND: concurrent publishes do not interleave.
    await fsp.appendFile(publishLogPath(ctx), `${JSON.stringify(record)}\n`);
  } catch (e) {
    throw new IoError(`cannot record the publish in ${publishLogPath(ctx)}: ${(e as Error).message}`);
  }
}

/** What was published where, oldest first, from `.coral/publish.log` (a damaged line is skipped). */
export async function publishLog(ctx: Pick<RepoContext, 'layout'>): Promise<PublishRecord[]> {
  let text: string;
  try {
    text = await fsp.readFile(publishLogPath(ctx), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: PublishRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as PublishRecord;
      if (r && typeof r.commit === 'string' && typeof r.destination === 'string') out.push(r);
    } catch {
      // a torn last line (crash mid-append) is not a record
    }
  }
  return out;
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** `"500MB"`, `"2GiB"`, `"1e9"` -> bytes (decimal units as transformers' `max_shard_size`, binary with `i`). */
export function parseByteSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(s);
  const n = m ? Math.floor(Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]) : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw invalidParameter('size', 'a byte size like 500MB or 2GiB', s);
  return n;
}
