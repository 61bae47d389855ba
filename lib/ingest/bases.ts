/**
 * Delta-base selection for ingestion.
 *
 * For each new tensor (exact duplicates never get here) the candidates are
 *  (a) the same-named tensor of the parent commit's version of the same file, and
 *  (b) up to `similarity.maxCandidates` entries of the repository-wide LSH index
 *      with the same dtype and shape (so renamed tensors and new files find
 *      their base; a fine-tune uploaded as a new file finds the base model).
 * Bases of another float dtype (the F32 original of a BF16 copy: codec CAST)
 * and bases with another first dimension (an embedding grown by new tokens:
 * codec ROWS) are proposed too: index hits of any castable dtype, and the
 * parent's same-named tensor whatever its first dimension (the index only
 * relates equal element counts). A cast candidate is scored against its
 * cast, so a pure cast scores 0 and wins over a same-dtype near-duplicate.
 *
 * A candidate at the chain-depth limit is replaced by its nearest ancestor
 * below the limit (a shallower relative is usually almost as good a base), so
 * chains stay within `core.maxChainDepth` without falling back to standalone.
 *
 * Fast path: when the parent's version is within `similarity.parentTrust`
 * (default 0.01) of the new tensor in relative L2 distance ||t - p|| / ||p||,
 * it is taken without searching the index: a checkpoint series committed
 * under one path then costs one base decode per tensor instead of one per
 * candidate (measured ~2x on a fine-tune add). Set it to 0 to always search.
 *
 * With several candidates, each is scored by ||t - base|| (native) on a fixed
 * spread sample of 2^15 elements (64 windows, the same positions for every
 * candidate; the whole tensor when smaller), falling back to the codec's
 * sample-based `estimate()` when non-finite values make the norm meaningless,
 * and the closest wins (on a tie, a base of the tensor's own dtype: the stored
 * BF16 cast rather than its F32 source, whose CAST object would cost the same
 * payload plus its params). The sample ranks like the exact norm except between
 * candidates within ~1% of each other (where the choice hardly matters), at a
 * small fraction of its cost; scoring with `estimate()` for every
 * candidate was measured at ~2x the ingest time. The chosen base's decoded
 * tensor goes to the writer with the proposal (no second decode). The object
 * writer then encodes losslessly and keeps the smaller of delta and standalone.
 *
 * Cast ids: with `similarity.castIds` (default true) each F32/F64 tensor's
 * content id comes with the ids of its RNE casts (F32 -> BF16/F16, F64 -> F32;
 * one native pass, lib/hash.ts), recorded in the cast-id index
 * (lib/similarity/cast-index.ts) once the tensor is stored. A new tensor whose
 * content id is such a cast id is proposed with `pureCast`: the writer stores a
 * CAST object against the recorded base without reading it. The index is a
 * hint: a hit whose base is gone, of another dtype or shape, or at the depth
 * limit takes the ordinary path below, and decode verifies the content id.
 *
 * Nothing here substitutes a tensor: every object decodes bit-exactly to the
 * bytes that were added (its id is their content id and decode verifies it).
 * Small tensors (e.g. biases) that look "similar" to another are therefore
 * never replaced; at most they are stored as a lossless delta.
 */
import { baseRelation, castTensorSync, estimate, type CodecName } from '../codec';
import { InvalidArgumentError } from '../errors';
import type { ObjectReader } from '../odb/objects';
import { cosine, type Fingerprint } from '../similarity';
import { DTYPES } from '../tensor/dtype';
import { tensor, type Tensor } from '../tensor/tensor';
import type { ObjectStore, ScratchSource } from '../store/object-store';
import type { BaseQuery, FindBase, IngestHooks } from './ingest';
import { CAST_ATTR, CastIndex, encodeCastAttr } from '../similarity/cast-index';
import { FP_ATTR, RepoSimilarity, encodeFingerprintAttr, indexable, similaritySettings } from './similarity';
import type { Config } from '../refs/config';

const DELTA_CODECS: ReadonlySet<CodecName> = new Set(['DELTA_XOR', 'DELTA_ORDERED', 'DELTA_EXPMANT', 'SPARSE_UPDATE']);

export interface BaseCandidate {
  id: string;
  source: 'parent' | 'index';
  /** LSH estimate (index candidates). */
  similarity?: number;
}

export interface SelectorStats {
  /** Tensors a base was searched for. */
  queries: number;
  /** Candidates scored with estimate(). */
  scored: number;
  chosenParent: number;
  chosenIndex: number;
  /** Candidates replaced by a shallower ancestor because of the depth limit. */
  rebased: number;
  noBase: number;
  /** Parents taken without searching the index (within `similarity.parentTrust`). */
  parentFastPath: number;
  /** Tensors found in the cast-id index and proposed as pure casts of their base. */
  castHits: number;
}

export interface SelectorOptions {
  reader: ObjectReader;
  store: ObjectStore;
  /** Proposes the parent's same-named tensor (lib/commands/add.ts parentBases), or null. */
  parent: FindBase | null;
  /** The repository index, or null when similarity search is off. */
  sim: RepoSimilarity | null;
  /** The cast-id index, or null when `similarity.castIds` is off. */
  casts?: CastIndex | null;
  maxChainDepth: number;
  /** zstd level the writer will use (estimates use the same). */
  level?: number;
  /**
   * A parent version whose relative L2 distance ||t - p|| / ||p|| (sampled) is at
   * most this is taken without searching the index (default 0.01; 0 = always search).
   */
  parentTrust?: number;
}

/** Default of `similarity.parentTrust`. */
export const DEFAULT_PARENT_TRUST = 0.01;

/**
 * Candidates at least this large are decoded into the ingest's scratch buffers, bypassing the base
 * cache, where tensors that size would only push one another out.
 */
const LEND_MIN_BYTES = 4 << 20;

/** Elements compared per candidate when scoring bases (64 windows spread over the tensor). */
const SCORE_SAMPLE_ELEMS = 1 << 15;
const SCORE_WINDOWS = 64;

/**
 * Buffers for score samples, reused: two fresh 128 KiB buffers per candidate were the only large
 * allocations on the JS heap during an `add` (64 of them for 32 tensors). Each holds the largest
 * element size.
 */
const freeSamples: Buffer[] = [];
const SAMPLE_BYTES = SCORE_SAMPLE_ELEMS * 8;
function giveSamples(bufs: Buffer[]): void {
  for (const b of bufs) if (freeSamples.length < 8) freeSamples.push(b);
  bufs.length = 0;
}

/**
 * The same spread windows of two equally shaped tensors, copied out (or the tensors themselves when
 * small). Copies go into reused buffers, listed in `taken` for giveSamples once scored.
 */
function scoreSample(t: Tensor, b: Tensor, taken: Buffer[]): [Tensor, Tensor] {
  const es = DTYPES[t.dtype].size;
  const bes = DTYPES[b.dtype].size; // a cast base has other element sizes
  const n = t.data.byteLength / es;
  if (n <= SCORE_SAMPLE_ELEMS) return [t, b];
  const win = SCORE_SAMPLE_ELEMS / SCORE_WINDOWS;
  const tsBuf = freeSamples.pop() ?? Buffer.allocUnsafe(SAMPLE_BYTES);
  const bsBuf = freeSamples.pop() ?? Buffer.allocUnsafe(SAMPLE_BYTES);
  taken.push(tsBuf, bsBuf);
  const ts = tsBuf.subarray(0, SCORE_SAMPLE_ELEMS * es);
  const bs = bsBuf.subarray(0, SCORE_SAMPLE_ELEMS * bes);
  for (let k = 0; k < SCORE_WINDOWS; k++) {
    const start = Math.floor(((n - win) * k) / (SCORE_WINDOWS - 1));
    ts.set(t.data.subarray(start * es, (start + win) * es), k * win * es);
    bs.set(b.data.subarray(start * bes, (start + win) * bes), k * win * bes);
  }
  return [tensor(t.dtype, [SCORE_SAMPLE_ELEMS], ts), tensor(b.dtype, [SCORE_SAMPLE_ELEMS], bs)];
}

/** Elements (of `size` bytes) whose bytes differ between a and b. */
function mismatches(a: Uint8Array, b: Uint8Array, size: number): number {
  let n = 0;
  for (let i = 0; i < a.byteLength; i += size) {
    for (let k = 0; k < size; k++)
      if (a[i + k] !== b[i + k]) {
        n++;
        break;
      }
  }
  return n;
}

/** ||t - b|| on the score sample and relative to ||b||; `skipped` when non-finite values make it meaningless. */
async function sampledDelta(t: Tensor, b: Tensor): Promise<{ dist: number; rel: number; skipped: boolean }> {
  const rel = baseRelation(t, b);
  if (rel === 'rows') {
    // Compare the leading rows both have (rows appended or cut at the end: the common resize).
    const rows = Math.min(t.shape[0], b.shape[0]);
    if (rows === 0) return { dist: Infinity, rel: Infinity, skipped: false };
    const lead = (x: Tensor): Tensor => {
      const shape = [rows, ...x.shape.slice(1)];
      return tensor(x.dtype, shape, x.data.subarray(0, (x.data.byteLength / x.shape[0]) * rows));
    };
    return sampledDelta(lead(t), lead(b));
  }
  const taken: Buffer[] = [];
  try {
    return await scoredSample(rel, ...scoreSample(t, b, taken));
  } finally {
    giveSamples(taken);
  }
}

/** sampledDelta on the samples of the new tensor (ts) and its candidate base (bs). */
async function scoredSample(
  rel: ReturnType<typeof baseRelation>,
  ts: Tensor,
  bs: Tensor,
): Promise<{ dist: number; rel: number; skipped: boolean }> {
  if (rel === 'cast') {
    // Against the base's cast (either rounding): a pure cast is at distance 0, where the raw
    // values would differ by the rounding noise and lose to any same-dtype near-duplicate.
    // Non-finite values (a cast overflowing to Inf) do not spoil it: elements are compared
    // bit for bit first, and only a base that is no exact cast is scored by the norm (or,
    // when that is meaningless, ranked after every finite score by its mismatch fraction).
    let best: { dist: number; rel: number; skipped: boolean } | null = null;
    for (const rounding of ['RNE', 'RTZ'] as const) {
      const c = castTensorSync(bs, ts.dtype, rounding);
      const miss = mismatches(ts.data, c.data, DTYPES[ts.dtype].size);
      if (miss === 0) return { dist: 0, rel: 0, skipped: false };
      const r = await cosine(ts, c);
      const d = r.skipped
        ? {
            dist: Number.MAX_VALUE * (miss / (ts.data.byteLength / DTYPES[ts.dtype].size)),
            rel: Infinity,
            skipped: false,
          }
        : { dist: r.normDelta, rel: r.relativeDelta, skipped: false };
      if (!best || d.dist < best.dist) best = d;
    }
    return best!;
  }
  const r = await cosine(ts, bs);
  return { dist: r.normDelta, rel: r.relativeDelta, skipped: !!r.skipped };
}

/**
 * Chooses delta bases for one ingestion session and keeps the similarity
 * index current. Use `findBase` and `hooks` with `ingestFile`.
 *
 * @example
 * const sel = new BaseSelector({ reader, store, parent, sim, maxChainDepth: 8 });
 * await ingestFile(writer, abs, rel, sel.findBase, sel.hooks);
 */
export class BaseSelector {
  readonly stats: SelectorStats = {
    queries: 0,
    scored: 0,
    chosenParent: 0,
    chosenIndex: 0,
    rebased: 0,
    noBase: 0,
    parentFastPath: 0,
    castHits: 0,
  };
  /** Fingerprints of tensors being ingested, by content id, until stored. */
  private fps = new Map<string, Fingerprint>();

  constructor(private readonly o: SelectorOptions) {}

  readonly findBase: FindBase = async (q) => {
    if (!q.tensor) {
      const cands = await this.candidates(q);
      return cands[0] ? { id: cands[0].id } : null;
    }
    const t = q.tensor;
    this.stats.queries++;
    const hit = await this.castHit(q);
    if (hit) {
      // Indexed under its source's fingerprint when the source has one (no pass over the tensor).
      const sim = this.o.sim;
      const fp =
        sim && q.id && indexable(q.dtype, q.shape, sim.settings) ? sim.fingerprintOf(hit, q.dtype, q.shape) : null;
      if (fp) this.fps.set(q.id!, fp);
      else await this.fingerprint(q);
      this.stats.castHits++;
      return { id: hit, pureCast: 'RNE' };
    }
    const parent = this.o.parent ? await this.o.parent(q) : null;
    // Fast path: a parent version within `parentTrust` (relative L2, sampled) is
    // taken as it is; the index is not searched and no other candidate decoded.
    // (A checkpoint series committed under one path lands here.)
    let parentScore: { resolved: string; tensor: Tensor; dist: number } | null = null;
    const trust = this.o.parentTrust ?? DEFAULT_PARENT_TRUST;
    // A decoded candidate that is not returned goes back to the ingest's buffers (when lent by them).
    const drop = (x: Tensor | null | undefined) => {
      if (x) q.scratch?.give(x.data);
    };
    if (parent && trust > 0) {
      const resolved = await this.resolveDepth(parent.id);
      const bt = resolved ? await this.load(resolved, t, q.scratch) : null;
      if (resolved && bt) {
        this.stats.scored++;
        const d = await sampledDelta(t, bt);
        if (!d.skipped && d.rel <= trust) {
          await this.fingerprint(q);
          this.stats.chosenParent++;
          this.stats.parentFastPath++;
          return { id: resolved, tensor: bt };
        }
        parentScore = { resolved, tensor: bt, dist: d.skipped ? this.estimateDelta(t, bt) : d.dist };
      }
    }
    const cands = await this.candidates(q, parent);
    const usable: Array<BaseCandidate & { resolved: string }> = [];
    for (const c of cands) {
      const r = c.source === 'parent' && parentScore ? parentScore.resolved : await this.resolveDepth(c.id);
      if (r && !usable.some((u) => u.resolved === r)) usable.push({ ...c, resolved: r });
    }
    if (!usable.length) {
      this.stats.noBase++;
      drop(parentScore?.tensor);
      return null;
    }
    if (usable.length === 1) {
      // One candidate: the writer's automatic choice already keeps the smaller of delta and standalone.
      const u = usable[0];
      if (u.source === 'parent') this.stats.chosenParent++;
      else this.stats.chosenIndex++;
      if (parentScore && u.resolved === parentScore.resolved) return { id: u.resolved, tensor: parentScore.tensor };
      drop(parentScore?.tensor);
      return { id: u.resolved };
    }
    // Score by ||t - base||: the delta codecs' output grows with the size of the
    // difference. The norm is taken on a fixed spread sample of elements (the same
    // positions for every candidate, so scores compare), far cheaper than the full
    // norm or a codec trial per candidate. The writer then keeps the smaller of
    // delta and standalone.
    let best: { c: (typeof usable)[number]; dist: number; tensor: Tensor } | null = null;
    for (const c of usable) {
      let dist: number;
      let bt: Tensor | null;
      if (parentScore && c.resolved === parentScore.resolved) {
        ({ dist, tensor: bt } = parentScore);
      } else {
        bt = await this.load(c.resolved, t, q.scratch);
        if (!bt) continue;
        this.stats.scored++;
        const r = await sampledDelta(t, bt);
        // Non-finite elements make the norm meaningless: fall back to the codec's estimate.
        dist = r.skipped ? this.estimateDelta(t, bt) : r.dist;
      }
      // On a tie a same-dtype base wins over a cast one: a delta on the stored cast costs the same
      // payload as CAST on its source, without CAST's params, and decodes without a cast.
      if (!best || dist < best.dist || (dist === best.dist && bt.dtype === t.dtype && best.tensor.dtype !== t.dtype)) {
        drop(best?.tensor);
        best = { c, dist, tensor: bt };
      } else {
        drop(bt);
      }
    }
    // The parent's tensor when scored but not chosen (a chosen or dropped one went through `best`).
    if (parentScore && !usable.some((u) => u.resolved === parentScore.resolved)) drop(parentScore.tensor);
    if (!best) {
      this.stats.noBase++;
      return null;
    }
    if (best.c.source === 'parent') this.stats.chosenParent++;
    else this.stats.chosenIndex++;
    return { id: best.c.resolved, tensor: best.tensor };
  };

  /**
   * The base a cast-id index entry names for `q`, when it still looks usable: stored, of the
   * entry's source dtype and q's shape, and a delta on it within the depth limit. The writer checks
   * again before writing (a hint is never trusted), and decode verifies the content id.
   */
  private async castHit(q: BaseQuery): Promise<string | null> {
    const e = q.id ? this.o.casts?.get(q.id) : undefined;
    if (!e || e.dtype !== q.dtype || e.rounding !== 'RNE' || e.base === q.id) return null;
    if (!(await this.o.store.has(e.base))) return null;
    const info = await this.o.reader.info(e.base).catch(() => null);
    if (!info || info.depth + 1 > this.o.maxChainDepth) return null;
    const a = await this.o.store.stat(e.base).catch(() => null);
    if (!a || a.dtype === q.dtype || a.shape.length !== q.shape.length || a.shape.some((d, i) => d !== q.shape[i]))
      return null;
    return e.base;
  }

  /**
   * Decodes a candidate; null when unreadable or no lossless delta base for `t` (see baseRelation).
   * A large one goes into `scratch` when given (not through the base cache, where tensors that size
   * would only push one another out).
   */
  private async load(id: string, t: Tensor, scratch?: ScratchSource): Promise<Tensor | null> {
    let bt: Tensor;
    const lend = scratch && t.data.byteLength >= LEND_MIN_BYTES;
    try {
      bt = await this.o.reader.tensor(id, lend ? { cacheBases: false, scratch } : {});
    } catch {
      return null; // vanished or unreadable: not a base
    }
    if (baseRelation(t, bt) !== null) return bt;
    scratch?.give(bt.data);
    return null;
  }

  /** Smallest estimated delta encoding (bytes) of t against base. */
  private estimateDelta(t: Tensor, base: Tensor): number {
    // The estimate covers the element delta codecs; a cast or resized base with non-finite
    // values ranks last (still used when it is the only candidate).
    if (baseRelation(t, base) !== 'same') return Number.MAX_VALUE;
    const est = estimate(t, { base: { tensor: base }, ...(this.o.level !== undefined ? { level: this.o.level } : {}) });
    return Math.min(...est.filter((e) => DELTA_CODECS.has(e.codec)).map((e) => e.bytes), Infinity);
  }

  readonly hooks: IngestHooks = {
    attrs: (q) => {
      const fp = q.id ? this.fps.get(q.id) : undefined;
      const out: Record<string, string> = {};
      if (fp) out[FP_ATTR] = encodeFingerprintAttr(fp);
      if (q.casts?.length && this.o.casts) out[CAST_ATTR] = encodeCastAttr(q.casts);
      return Object.keys(out).length ? out : undefined;
    },
    stored: async (q, r) => {
      // Cast ids name what the *added* bytes cast to: only for an exact object of them.
      if (this.o.casts && q.casts?.length && r.id === q.id && !r.lossy)
        await this.o.casts.add(q.casts.map((c) => ({ castId: c.id, base: r.id, dtype: c.dtype, rounding: 'RNE' })));
      const fp = q.id ? this.fps.get(q.id) : undefined;
      if (!fp || !this.o.sim) return;
      this.fps.delete(q.id!);
      await this.o.sim.insert(r.id, fp, { dtype: q.dtype, shape: q.shape });
    },
  };

  /**
   * Parent candidate first, then index hits (verified to exist), without
   * duplicates. `parent`: the parent proposal when the caller already asked for it.
   */
  async candidates(q: BaseQuery, parent?: { id: string } | null): Promise<BaseCandidate[]> {
    const out: BaseCandidate[] = [];
    const p = parent !== undefined ? parent : this.o.parent ? await this.o.parent(q) : null;
    if (p) out.push({ id: p.id, source: 'parent' });
    const sim = this.o.sim;
    const fp = await this.fingerprint(q);
    if (sim && fp && sim.settings.maxCandidates > 0) {
      // Any dtype the codecs can delta against: the same, or a float cast (CAST). Hits of
      // other dtypes are dropped after the query, so it asks for a few more than it keeps.
      const k = sim.settings.maxCandidates;
      let taken = 0;
      for (const h of sim.query(fp, { sameDtypeOnly: false, k: 2 * k })) {
        if (taken >= k) break;
        if (h.id === q.id || out.some((c) => c.id === h.id)) continue;
        if (baseRelation(q, h) === null) continue;
        // Index entries may outlive their objects (crashed add, gc): check.
        if (!(await this.o.store.has(h.id))) continue;
        out.push({ id: h.id, source: 'index', similarity: h.similarity });
        taken++;
      }
    }
    return out;
  }

  /** Fingerprints an indexable tensor (kept until it is stored, for the index); null otherwise. */
  private async fingerprint(q: BaseQuery): Promise<Fingerprint | null> {
    const sim = this.o.sim;
    if (!sim || !q.tensor || !q.id || !indexable(q.dtype, q.shape, sim.settings)) return null;
    const fp = this.fps.get(q.id) ?? (await sim.fingerprint(q.tensor));
    this.fps.set(q.id, fp);
    return fp;
  }

  /**
   * The candidate itself when a delta on it stays within the depth limit,
   * else its nearest ancestor that does; null when it is not in the store
   * (e.g. still pending in this session's pack).
   */
  private async resolveDepth(id: string): Promise<string | null> {
    let cur = id;
    for (let guard = 0; guard < 10_000; guard++) {
      if (!(await this.o.store.has(cur))) return null;
      const info = await this.o.reader.info(cur);
      if (info.depth + 1 <= this.o.maxChainDepth) {
        if (cur !== id) this.stats.rebased++;
        return cur;
      }
      if (!info.base) return null;
      cur = info.base;
    }
    return null;
  }
}

/** What `openIngestPolicy` needs from a repository. */
export interface PolicySource {
  config: Config;
  reader: ObjectReader;
  store: ObjectStore;
  layout: { simindex: string; castindex: string };
}

export interface IngestPolicy {
  findBase: FindBase | null;
  hooks: IngestHooks;
  selector: BaseSelector | null;
  /** Flushes and closes the similarity index session. */
  close(): Promise<void>;
}

/**
 * The base policy of one `add`: the parent proposal, plus the similarity index
 * unless `similarity.enabled` is false.
 */
export async function openIngestPolicy(repo: PolicySource, parent: FindBase | null): Promise<IngestPolicy> {
  const settings = similaritySettings(repo.config);
  const parentTrust = repo.config.getNumber('similarity.parentTrust', DEFAULT_PARENT_TRUST);
  if (!(parentTrust >= 0))
    throw new InvalidArgumentError(`config similarity.parentTrust must be a number >= 0, got ${parentTrust}`);
  const sim = settings.enabled ? await RepoSimilarity.open(repo.layout.simindex, settings) : null;
  const casts = repo.config.getBool('similarity.castIds', true) ? await CastIndex.open(repo.layout.castindex) : null;
  if (!sim && !parent && !casts) return { findBase: null, hooks: {}, selector: null, close: async () => {} };
  const selector = new BaseSelector({
    reader: repo.reader,
    store: repo.store,
    parent,
    sim,
    casts,
    maxChainDepth: repo.config.getNumber('core.maxChainDepth', 8),
    level: repo.config.getNumber('core.compressionLevel', 3),
    parentTrust,
  });
  const hooks: IngestHooks =
    !sim && !casts
      ? {}
      : settings.storeFingerprints
        ? { ...selector.hooks, castIds: !!casts }
        : // eslint-disable-next-line @typescript-eslint/unbound-method -- the selector's hooks are bound closures
          { stored: selector.hooks.stored, castIds: !!casts };
  return {
    findBase: selector.findBase,
    hooks,
    selector,
    close: async () => {
      try {
        await sim?.close();
      } finally {
        await casts?.close();
      }
    },
  };
}
