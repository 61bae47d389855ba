/**
 * Delta-base selection for ingestion.
 *
 * For each new tensor (exact duplicates never get here) the candidates are
 *  (a) the same-named tensor of the parent commit's version of the same file, and
 *  (b) up to `similarity.maxCandidates` entries of the repository-wide LSH index
 *      with the same dtype and shape (so renamed tensors and new files find
 *      their base; a fine-tune uploaded as a new file finds the base model).
 * Cross-dtype bases (a BF16 copy of an F32 base) are not proposed: the delta
 * codecs need equal dtypes, and a lossless cross-dtype delta is not built yet.
 *
 * A candidate at the chain-depth limit is replaced by its nearest ancestor
 * below the limit (a shallower relative is usually almost as good a base), so
 * chains stay within `core.maxChainDepth` without falling back to standalone.
 * With several candidates, each is scored by the exact norm of the difference
 * ||t - base|| (native, GB/s; the codec's sample-based `estimate()` when
 * non-finite values make the norm meaningless) and the closest wins. Scoring
 * with `estimate()` for every candidate was measured at ~2x the ingest time.
 * The object writer then encodes losslessly and keeps the smaller of delta
 * and standalone.
 *
 * Nothing here substitutes a tensor: every object decodes bit-exactly to the
 * bytes that were added (its id is their content id and decode verifies it).
 * Small tensors (e.g. biases) that look "similar" to another are therefore
 * never replaced; at most they are stored as a lossless delta.
 */
import { estimate, type CodecName } from '../codec';
import type { ObjectReader } from '../repo/objects';
import { cosine, type Fingerprint } from '../similarity';
import type { Tensor } from '../tensor/tensor';
import type { ObjectStore } from '../store/object-store';
import type { BaseQuery, FindBase, IngestHooks } from './ingest';
import {
  FP_ATTR, RepoSimilarity, encodeFingerprintAttr, indexable, similaritySettings,
} from './similarity';
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
}

export interface SelectorOptions {
  reader: ObjectReader;
  store: ObjectStore;
  /** Proposes the parent's same-named tensor (Repository.parentBases), or null. */
  parent: FindBase | null;
  /** The repository index, or null when similarity search is off. */
  sim: RepoSimilarity | null;
  maxChainDepth: number;
  /** zstd level the writer will use (estimates use the same). */
  level?: number;
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
  readonly stats: SelectorStats = { queries: 0, scored: 0, chosenParent: 0, chosenIndex: 0, rebased: 0, noBase: 0 };
  /** Fingerprints of tensors being ingested, by content id, until stored. */
  private fps = new Map<string, Fingerprint>();

  constructor(private readonly o: SelectorOptions) {}

  readonly findBase: FindBase = async (q) => {
    const cands = await this.candidates(q);
    if (!q.tensor) return cands[0] ? { id: cands[0].id } : null;
    this.stats.queries++;
    const usable: Array<BaseCandidate & { resolved: string }> = [];
    for (const c of cands) {
      const r = await this.resolveDepth(c.id);
      if (r && !usable.some((u) => u.resolved === r)) usable.push({ ...c, resolved: r });
    }
    if (!usable.length) {
      this.stats.noBase++;
      return null;
    }
    if (usable.length === 1) {
      // One candidate: the writer's automatic choice already keeps the smaller of delta and standalone.
      if (usable[0].source === 'parent') this.stats.chosenParent++;
      else this.stats.chosenIndex++;
      return { id: usable[0].resolved };
    }
    // Score by ||t - base||: the delta codecs' output grows with the size of the
    // difference, and the exact native norm (GB/s) is far cheaper than a codec
    // trial per candidate. The writer then keeps the smaller of delta and standalone.
    let best: { c: (typeof usable)[number]; dist: number } | null = null;
    for (const c of usable) {
      let bt;
      try {
        bt = await this.o.reader.tensor(c.resolved);
      } catch {
        continue; // vanished or unreadable: not a base
      }
      if (bt.dtype !== q.tensor.dtype || bt.shape.length !== q.tensor.shape.length || bt.shape.some((d, i) => d !== q.tensor!.shape[i]))
        continue;
      this.stats.scored++;
      const r = await cosine(q.tensor, bt);
      // Non-finite elements make the norm meaningless: fall back to the codec's estimate.
      const dist = r.skipped ? this.estimateDelta(q.tensor, bt) : r.normDelta;
      if (!best || dist < best.dist) best = { c, dist };
    }
    if (!best) {
      this.stats.noBase++;
      return null;
    }
    if (best.c.source === 'parent') this.stats.chosenParent++;
    else this.stats.chosenIndex++;
    return { id: best.c.resolved };
  };

  /** Smallest estimated delta encoding (bytes) of t against base. */
  private estimateDelta(t: Tensor, base: Tensor): number {
    const est = estimate(t, { base: { tensor: base }, ...(this.o.level !== undefined ? { level: this.o.level } : {}) });
    return Math.min(...est.filter((e) => DELTA_CODECS.has(e.codec)).map((e) => e.bytes), Infinity);
  }

  readonly hooks: IngestHooks = {
    attrs: (q) => {
      const fp = q.id ? this.fps.get(q.id) : undefined;
      return fp ? { [FP_ATTR]: encodeFingerprintAttr(fp) } : undefined;
    },
    stored: async (q, r) => {
      const fp = q.id ? this.fps.get(q.id) : undefined;
      if (!fp) return;
      this.fps.delete(q.id!);
      await this.o.sim!.insert(r.id, fp, { dtype: q.dtype, shape: q.shape });
    },
  };

  /** Parent candidate first, then index hits (verified to exist), without duplicates. */
  async candidates(q: BaseQuery): Promise<BaseCandidate[]> {
    const out: BaseCandidate[] = [];
    const p = this.o.parent ? await this.o.parent(q) : null;
    if (p) out.push({ id: p.id, source: 'parent' });
    const sim = this.o.sim;
    if (sim && q.tensor && q.id && indexable(q.dtype, q.shape, sim.settings)) {
      const fp = await sim.fingerprint(q.tensor);
      this.fps.set(q.id, fp);
      if (sim.settings.maxCandidates > 0) {
        for (const h of sim.query(fp)) {
          if (h.id === q.id || out.some((c) => c.id === h.id)) continue;
          // Index entries may outlive their objects (crashed add, gc): check.
          if (!(await this.o.store.has(h.id))) continue;
          out.push({ id: h.id, source: 'index', similarity: h.similarity });
        }
      }
    }
    return out;
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
  layout: { simindex: string };
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
  const sim = settings.enabled ? await RepoSimilarity.open(repo.layout.simindex, settings) : null;
  if (!sim && !parent) return { findBase: null, hooks: {}, selector: null, close: async () => {} };
  const selector = new BaseSelector({
    reader: repo.reader,
    store: repo.store,
    parent,
    sim,
    maxChainDepth: repo.config.getNumber('core.maxChainDepth', 8),
    level: repo.config.getNumber('core.compressionLevel', 3),
  });
  const hooks: IngestHooks = !sim ? {} : settings.storeFingerprints ? selector.hooks : { stored: selector.hooks.stored };
  return { findBase: selector.findBase, hooks, selector, close: async () => sim?.close() };
}
