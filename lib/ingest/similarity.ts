/**
 * The repository's similarity index: fingerprints of stored tensor objects in
 * `.coral/simindex/` (a SimilarityStore: snapshot + one append-only log per
 * writer session, so concurrent `coral add` processes never corrupt it).
 *
 * The index is a cache: `coral fsck --rebuild-index` rebuilds it from the
 * objects. With `similarity.storeFingerprints` each indexed object carries its
 * fingerprint as the attribute `simhash` (written at put time) and the rebuild
 * reads attributes only; otherwise (the default, since an HDF5 attribute costs
 * ~1.6 KB per object) it decodes and fingerprints the objects.
 *
 * Entries can outlive their objects (a crashed add, gc): every user of a hit
 * checks that the object exists before acting on it.
 *
 * Settings (`coral config`): similarity.enabled (true), similarity.bits (256),
 * similarity.minCosine (0.95), similarity.maxCandidates (4), similarity.minNumel (64),
 * similarity.storeFingerprints (false).
 *
 * @example
 * const sim = await RepoSimilarity.open(repo.layout.simindex, similaritySettings(repo.config));
 * const fp = await sim.fingerprint(t);
 * sim.query(fp, { k: 4, minSimilarity: 0.95 });
 * await sim.close();
 */
import * as fs from 'node:fs';
import { InvalidArgumentError } from '../errors';
import type { Config } from '../refs/config';
import {
  DEFAULT_MAX_SAMPLES,
  SMALL_TENSOR_NUMEL,
  SimilarityStore,
  fingerprint,
  resolveScheme,
  type Fingerprint,
  type IndexRecord,
  type QueryOptions,
  type SimilarityHit,
} from '../similarity';
import type { StoredAttrs } from '../store/object-store';
import { CAST_ATTR, CastIndex, decodeCastAttr, type CastEntry } from '../similarity/cast-index';
import { CAST_ID_TARGETS, contentIdWithCasts } from '../hash';
import { LOSSY_CODECS } from '../codec';
import type { DType } from '../tensor/dtype';
import { numel, type Tensor } from '../tensor/tensor';

/** Object attribute holding the encoded fingerprint. */
export const FP_ATTR = 'simhash';

export interface SimilaritySettings {
  /** Search the index for delta bases on add and keep it up to date. */
  enabled: boolean;
  /** Fingerprint bits (multiple of 64, 64..1024). */
  bits: number;
  /** LSH threshold (estimated cosine, with the index's noise tolerance). */
  minCosine: number;
  /** Candidates per tensor taken from the index (the parent's same-named tensor comes on top). */
  maxCandidates: number;
  /** Tensors with fewer elements are neither indexed nor searched for. */
  minNumel: number;
  /**
   * Store each fingerprint as the object attribute `simhash` so a rebuild needs
   * no decoding. Off by default: an HDF5 attribute costs ~1.6 KB per object in
   * the pack (measured), far more than the 60-byte value.
   */
  storeFingerprints: boolean;
}

export const DEFAULT_SIMILARITY: Readonly<SimilaritySettings> = Object.freeze({
  enabled: true,
  bits: 256,
  minCosine: 0.95,
  maxCandidates: 4,
  minNumel: 64,
  storeFingerprints: false,
});

/** Reads the `similarity.*` keys of a repository config (defaults above), validated. */
export function similaritySettings(config: Config): SimilaritySettings {
  const s: SimilaritySettings = {
    enabled: config.getBool('similarity.enabled', DEFAULT_SIMILARITY.enabled),
    bits: config.getNumber('similarity.bits', DEFAULT_SIMILARITY.bits),
    minCosine: config.getNumber('similarity.minCosine', DEFAULT_SIMILARITY.minCosine),
    maxCandidates: config.getNumber('similarity.maxCandidates', DEFAULT_SIMILARITY.maxCandidates),
    minNumel: config.getNumber('similarity.minNumel', DEFAULT_SIMILARITY.minNumel),
    storeFingerprints: config.getBool('similarity.storeFingerprints', DEFAULT_SIMILARITY.storeFingerprints),
  };
  resolveScheme({ bits: s.bits }); // throws InvalidArgumentError on a bad bit count
  if (!(s.minCosine >= -1 && s.minCosine <= 1))
    throw new InvalidArgumentError(`config similarity.minCosine must be a number in [-1, 1], got ${s.minCosine}`);
  if (!Number.isInteger(s.maxCandidates) || s.maxCandidates < 0 || s.maxCandidates > 64)
    throw new InvalidArgumentError(
      `config similarity.maxCandidates must be an integer in [0, 64], got ${s.maxCandidates}`,
    );
  if (!Number.isInteger(s.minNumel) || s.minNumel < 1)
    throw new InvalidArgumentError(`config similarity.minNumel must be a positive integer, got ${s.minNumel}`);
  return s;
}

/**
 * Is a tensor of this dtype and shape indexed? Skeletons and blob chunks
 * (1-d U8 objects) are bytes, not weights, and tiny tensors say nothing.
 */
export function indexable(dtype: string, shape: readonly number[], s: SimilaritySettings): boolean {
  if (dtype === 'U8' && shape.length === 1) return false;
  if (dtype === 'BOOL') return false;
  return numel(shape) >= s.minNumel;
}

// Attribute form: "1:<bits>:<base64 signature>:<rms>". The scheme is the default
// one for <bits> (seed, maxSamples, uncentred), the only one the repository uses.

export function encodeFingerprintAttr(fp: Fingerprint): string {
  return `1:${fp.bits}:${Buffer.from(fp.signature).toString('base64')}:${fp.rms}`;
}

/** Decodes the attribute for an object of `dtype`/`shape`; null if malformed or of another bit count. */
export function decodeFingerprintAttr(
  attr: string,
  dtype: DType,
  shape: readonly number[],
  bits: number,
): Fingerprint | null {
  const m = /^1:(\d+):([A-Za-z0-9+/=]+):([-+0-9.eE]+|NaN|Infinity)$/.exec(attr);
  if (!m || Number(m[1]) !== bits) return null;
  const sig = Buffer.from(m[2], 'base64');
  if (sig.length !== bits / 8) return null;
  const rms = Number(m[3]);
  if (!Number.isFinite(rms)) return null;
  return fingerprintOfParts(resolveScheme({ bits }).scheme, bits, new Uint8Array(sig), rms, dtype, shape);
}

/** A fingerprint of the repository's scheme (default seed and samples) from a stored signature and RMS. */
function fingerprintOfParts(
  scheme: string,
  bits: number,
  signature: Uint8Array,
  rms: number,
  dtype: DType,
  shape: readonly number[],
): Fingerprint {
  const n = numel(shape);
  return Object.freeze({
    scheme,
    bits,
    signature,
    dtype,
    shape: Object.freeze(shape.slice()),
    numel: n,
    samples: Math.min(n, DEFAULT_MAX_SAMPLES),
    exact: n <= DEFAULT_MAX_SAMPLES,
    small: n < SMALL_TENSOR_NUMEL,
    nonfinite: 0,
    mean: 0,
    rms,
  });
}

/** The repository's persisted index plus the settings it was opened with. */
export class RepoSimilarity {
  private constructor(
    readonly store: SimilarityStore,
    readonly settings: SimilaritySettings,
  ) {}

  /**
   * Opens (creating) the index in `dir`. A corrupt index is discarded and
   * recreated empty (it is a cache; `coral fsck --rebuild-index` refills it).
   * An index made with another bit count is recreated too.
   */
  static async open(dir: string, settings: SimilaritySettings): Promise<RepoSimilarity> {
    let store: SimilarityStore;
    try {
      store = await SimilarityStore.open(dir, { bits: settings.bits });
    } catch (e) {
      if ((e as { code?: string }).code !== 'CORAL_CORRUPT_INDEX') throw e;
      fs.rmSync(dir, { recursive: true, force: true });
      store = await SimilarityStore.open(dir, { bits: settings.bits });
    }
    if (store.index.bits !== settings.bits) {
      await store.close({ compact: false });
      fs.rmSync(dir, { recursive: true, force: true });
      store = await SimilarityStore.open(dir, { bits: settings.bits });
    }
    return new RepoSimilarity(store, settings);
  }

  get size(): number {
    return this.store.index.size;
  }

  fingerprint(t: Tensor): Promise<Fingerprint> {
    return fingerprint(t, { bits: this.settings.bits });
  }

  /** Candidates for `fp` (same shape; same dtype unless `sameDtypeOnly: false`), best first. */
  query(fp: Fingerprint, opts: QueryOptions = {}): SimilarityHit[] {
    return this.store.query(fp, {
      k: this.settings.maxCandidates,
      minSimilarity: this.settings.minCosine,
      sameShapeOnly: true,
      sameDtypeOnly: true,
      ...opts,
    });
  }

  /**
   * The indexed fingerprint of `id`, for a tensor of `dtype`/`shape` holding the same values up to
   * a rounding (a pure cast of `id`): SimHash signs are taken on values, so a cast's signature is
   * its source's but for the rare sample within a rounding step of a hyperplane; good enough for a
   * hint, and no tensor pass. Null when `id` is not indexed or has another element count.
   */
  fingerprintOf(id: string, dtype: DType, shape: readonly number[]): Fingerprint | null {
    const e = this.store.index.get(id);
    if (!e || e.numel !== numel(shape)) return null;
    return fingerprintOfParts(this.store.index.scheme, this.store.index.bits, e.signature, e.rms, dtype, shape);
  }

  async insert(id: string, fp: Fingerprint, meta?: { dtype: DType; shape: readonly number[] }): Promise<void> {
    if (this.store.index.has(id)) return;
    await this.store.insert(id, fp, meta);
  }

  /** Picks up other writers' inserts. */
  refresh(): void {
    this.store.refresh();
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

export interface RebuildReport {
  entries: number;
  /** Fingerprints taken from object attributes. */
  fromAttributes: number;
  /** Objects decoded because they had no usable attribute. */
  decoded: number;
  /** Entries of the rebuilt cast-id index (when it was rebuilt too). */
  castIds?: number;
}

/** What `rebuildSimilarityIndex` needs from a repository. */
export interface IndexSource {
  store: { list(): AsyncIterableIterator<StoredAttrs> };
  reader: { tensor(id: string): Promise<Tensor> };
}

/**
 * Rebuilds `.coral/simindex/` from the stored objects: fingerprints from the
 * `simhash` attributes, decoding (and fingerprinting) only objects without one.
 * With `castDir`, the cast-id index there is rebuilt in the same walk: each
 * exact F32/F64 object's cast ids from its `castids` attribute, else computed
 * from the decoded tensor (decoded once for both).
 */
export async function rebuildSimilarityIndex(
  dir: string,
  src: IndexSource,
  settings: SimilaritySettings,
  castDir?: string,
): Promise<RebuildReport> {
  const report: RebuildReport = { entries: 0, fromAttributes: 0, decoded: 0 };
  const records: IndexRecord[] = [];
  const casts: CastEntry[] = [];
  for await (const a of src.store.list()) {
    const dtype = a.dtype as DType;
    const wantFp = indexable(dtype, a.shape, settings);
    const wantCasts = !!castDir && !!CAST_ID_TARGETS[dtype];
    // A lossy object's attribute (if any) was computed on the bytes before rounding: recompute.
    const lossy = (LOSSY_CODECS as readonly string[]).includes(a.codec);
    if (!wantFp && !wantCasts) continue;
    let fp =
      wantFp && a.extra?.[FP_ATTR] ? decodeFingerprintAttr(a.extra[FP_ATTR], dtype, a.shape, settings.bits) : null;
    let ids = wantCasts && !lossy && a.extra?.[CAST_ATTR] ? decodeCastAttr(a.extra[CAST_ATTR]) : null;
    if (fp) report.fromAttributes++;
    if ((wantFp && !fp) || (wantCasts && !ids)) {
      const t = await src.reader.tensor(a.id);
      report.decoded++;
      if (wantFp && !fp) fp = await fingerprint(t, { bits: settings.bits });
      if (wantCasts && !ids) ids = (await contentIdWithCasts(t)).casts;
    }
    if (wantFp && fp) records.push({ id: a.id, fingerprint: fp, meta: { dtype, shape: a.shape } });
    for (const c of ids ?? []) casts.push({ castId: c.id, base: a.id, dtype: c.dtype, rounding: 'RNE' });
  }
  // open() replaces a corrupt or differently-sized index; rebuild() keeps records
  // other writers append meanwhile (see SimilarityStore.rebuild).
  const sim = await RepoSimilarity.open(dir, settings);
  try {
    await sim.store.rebuild(records);
    report.entries = sim.size;
  } finally {
    await sim.close();
  }
  if (castDir) {
    const ix = await CastIndex.open(castDir);
    await ix.rebuild(casts);
    report.castIds = ix.size;
  }
  return report;
}

// ---- provenance: `coral similar` ----------------------------------------------------------

/** Which checkpoint to compare: a worktree file (absolute path) or a committed `rev:path`. */
export type SimilarTarget = { file: string } | { rev: string; path: string };

export interface SimilarOptions {
  /** Checkpoints to return (default 5). */
  k?: number;
  /** A tensor counts as matched at or above this exact cosine (default 0.98). */
  matchCosine?: number;
  /** Index hits per tensor to verify with the exact cosine (default 16). */
  perTensor?: number;
}

export interface SimilarMatch {
  /** `<commit12>:<path>` of the newest commit holding this file version. */
  rev: string;
  commit: string;
  path: string;
  sha256: string;
  /** Element-weighted mean of each query tensor's best exact cosine in this file (0 when unmatched). */
  score: number;
  /** Fraction of the query's indexed tensors with a match at >= matchCosine. */
  matched: number;
  /** Query tensors with any candidate in this file. */
  tensors: number;
  /** Byte-identical to the query. */
  identical: boolean;
}

export interface SimilarReport {
  target: { label: string; sha256: string | null; tensors: number; indexedTensors: number };
  matches: SimilarMatch[];
}

/** What similarCheckpoints needs from a repository (see Repository.similar). */
export interface SimilarSource extends IndexSource {
  config: Config;
  layout: { simindex: string };
  store: IndexSource['store'] & { has(id: string): Promise<boolean> };
  refs: {
    listRefs(prefix: string): Promise<Array<{ name: string; id: string }>>;
    resolveHead(): Promise<string | null>;
  };
  resolve(rev: string): Promise<string>;
  treeOf(rev: string | null): Promise<import('../models').Tree>;
  meta: import('../odb/meta-store').MetaStore;
}

async function targetTensors(
  repo: SimilarSource,
  target: SimilarTarget,
): Promise<{ label: string; sha256: string | null; path: string | null; tensors: Tensor[] }> {
  if ('file' in target) {
    const { scanCheckpoint } = await import('../formats');
    const { UnsupportedFormatError } = await import('../errors');
    const fsp = await import('node:fs/promises');
    let layout;
    try {
      layout = await scanCheckpoint(target.file);
    } catch (e) {
      if (!(e instanceof UnsupportedFormatError)) throw e;
      layout = await scanCheckpoint(target.file, { format: 'raw' });
    }
    const fh = await fsp.open(target.file, 'r');
    const tensors: Tensor[] = [];
    try {
      for (const s of layout.segments) {
        const buf = Buffer.allocUnsafe(s.length);
        let done = 0;
        while (done < s.length) {
          const { bytesRead } = await fh.read(buf, done, s.length - done, s.offset + done);
          if (!bytesRead) throw new InvalidArgumentError(`${target.file} changed while it was being read`);
          done += bytesRead;
        }
        tensors.push({ dtype: s.dtype, shape: s.shape.slice(), data: buf });
      }
    } finally {
      await fh.close();
    }
    const { sha256File } = await import('../util/fsutil');
    return { label: target.file, sha256: await sha256File(target.file), path: null, tensors };
  }
  const { RefNotFoundError } = await import('../errors');
  const e = (await repo.treeOf(target.rev)).files[target.path];
  if (!e) throw new RefNotFoundError(`path '${target.path}' does not exist in ${target.rev}`);
  const tensors: Tensor[] = [];
  for (const s of e.segments) tensors.push(await repo.reader.tensor(s.object));
  return { label: `${target.rev}:${target.path}`, sha256: e.sha256, path: target.path, tensors };
}

/**
 * The stored checkpoints closest to `target`, best first: answers "which base
 * was this fine-tuned from?". Each indexed tensor of the target is looked up
 * in the similarity index (any name, any file), candidates are verified with
 * the exact cosine, and the per-tensor best matches are aggregated per stored
 * file version (element-weighted mean cosine, and the fraction matched).
 */
export async function similarCheckpoints(
  repo: SimilarSource,
  target: SimilarTarget,
  opts: SimilarOptions = {},
): Promise<SimilarReport> {
  const k = opts.k ?? 5;
  const matchCosine = opts.matchCosine ?? 0.98;
  const perTensor = opts.perTensor ?? 16;
  if (!Number.isInteger(k) || k < 1)
    throw new InvalidArgumentError(`Expected positive integer for k but received ${k}`);
  const { cosine } = await import('../similarity');
  const { walkCommits } = await import('../refs/ancestry');
  const settings = { ...similaritySettings(repo.config) };
  const t = await targetTensors(repo, target);
  const queryIdx = t.tensors
    .map((x, i) => i)
    .filter((i) => indexable(t.tensors[i].dtype, t.tensors[i].shape, settings));

  // Object id -> stored file versions holding it (newest commit first).
  const files = new Map<string, { commit: string; path: string; sha256: string }>();
  const byObject = new Map<string, string[]>();
  const starts = new Set<string>();
  for (const r of await repo.refs.listRefs('refs/')) {
    try {
      starts.add(await repo.resolve(r.name));
    } catch {
      /* not a commit-ish ref */
    }
  }
  const head = await repo.refs.resolveHead();
  if (head) starts.add(head);
  const treesSeen = new Set<string>();
  if (starts.size) {
    for await (const { id, commit } of walkCommits([...starts], repo.meta)) {
      if (treesSeen.has(commit.tree)) continue;
      treesSeen.add(commit.tree);
      const tree = await repo.meta.readTree(commit.tree);
      for (const [p, e] of Object.entries(tree.files)) {
        const key = `${e.sha256}\0${p}`;
        if (files.has(key)) continue;
        files.set(key, { commit: id, path: p, sha256: e.sha256 });
        for (const s of e.segments) {
          const l = byObject.get(s.object);
          if (l) l.push(key);
          else byObject.set(s.object, [key]);
        }
      }
    }
  }

  const best = new Map<string, Map<number, number>>();
  const sim = await RepoSimilarity.open(repo.layout.simindex, settings);
  try {
    for (const i of queryIdx) {
      const q = t.tensors[i];
      const fp = await sim.fingerprint(q);
      // Any dtype: fingerprints are taken on values, so a BF16 copy finds its F32 original.
      const hits = sim.query(fp, {
        k: perTensor,
        minSimilarity: Math.min(settings.minCosine, 0.9),
        sameDtypeOnly: false,
      });
      for (const h of hits) {
        const owners = byObject.get(h.id);
        if (!owners || !(await repo.store.has(h.id))) continue;
        const c = (await cosine(q, await repo.reader.tensor(h.id))).cosine;
        for (const key of owners) {
          let m = best.get(key);
          if (!m) best.set(key, (m = new Map<number, number>()));
          if (!(m.get(i)! >= c)) m.set(i, c);
        }
      }
    }
  } finally {
    await sim.close();
  }
  const total = queryIdx.reduce((n, i) => n + numel(t.tensors[i].shape), 0);
  const matches: SimilarMatch[] = [];
  for (const [key, m] of best) {
    const f = files.get(key)!;
    if (t.path !== null && f.path === t.path && f.sha256 === t.sha256) continue; // the query itself
    let w = 0;
    let matched = 0;
    for (const [i, c] of m) {
      w += numel(t.tensors[i].shape) * Math.max(0, c);
      if (c >= matchCosine) matched++;
    }
    matches.push({
      rev: `${f.commit.slice(0, 12)}:${f.path}`,
      commit: f.commit,
      path: f.path,
      sha256: f.sha256,
      score: total ? w / total : 0,
      matched: queryIdx.length ? matched / queryIdx.length : 0,
      tensors: m.size,
      identical: f.sha256 === t.sha256,
    });
  }
  matches.sort((a, b) => b.score - a.score || b.matched - a.matched || a.rev.localeCompare(b.rev));
  return {
    target: { label: t.label, sha256: t.sha256, tensors: t.tensors.length, indexedTensors: queryIdx.length },
    matches: matches.slice(0, k),
  };
}
