/**
 * Seeded tensor families for similarity tests and bench/similarity.ts.
 *
 * A base is "trained-like": Gaussian entries with log-normal per-row scales and
 * a few outlier columns (x8). Variants are base + delta at an exact target
 * cosine: the delta has the base's row scales (as fine-tune updates do), is
 * orthogonalised against the base and scaled so cos(base, variant) = c.
 * "partial" variants change only 10% of the rows (a partial fine-tune).
 * Unrelated tensors are fresh draws of the same distribution.
 */
import { native } from '../../lib/native';
import { fingerprints } from '../../lib/similarity/fingerprint';
import { SimilarityIndex, type IndexOptions, type QueryOptions } from '../../lib/similarity/lsh-index';
import { DTYPES } from '../../lib/tensor/dtype';
import { tensor, type Tensor } from '../../lib/tensor/tensor';

export class Rng {
  private s: number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.s = x;
    return x;
  }
  uniform(): number {
    return (this.u32() + 0.5) / 4294967296;
  }
  gauss(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform())),
      t = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }
}

/** A trained-like matrix: N(0,1) * rowScale[r] * (outlier column ? 8 : 1) * 0.02. */
export function trainedLike(rng: Rng, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const outlier = new Uint8Array(cols);
  for (let c = 0; c < cols; c++) outlier[c] = rng.uniform() < 0.01 ? 1 : 0;
  for (let r = 0; r < rows; r++) {
    const scale = 0.02 * Math.exp(0.5 * rng.gauss());
    for (let c = 0; c < cols; c++) out[r * cols + c] = rng.gauss() * scale * (outlier[c] ? 8 : 1);
  }
  return out;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** base + t * (delta orthogonalised against base), with cos(base, result) = c. */
export function variantAt(base: Float32Array, delta: Float32Array, c: number): Float32Array {
  const bb = dot(base, base);
  const k = dot(delta, base) / bb;
  const d = new Float32Array(base.length);
  for (let i = 0; i < d.length; i++) d[i] = delta[i] - k * base[i];
  const t = (Math.sqrt(bb) * Math.tan(Math.acos(c))) / Math.sqrt(dot(d, d));
  const out = new Float32Array(base.length);
  for (let i = 0; i < out.length; i++) out[i] = base[i] + t * d[i];
  return out;
}

/** A delta with the base's row scales; with `rowsFraction` < 1 only that share of rows changes. */
export function rowScaledDelta(
  rng: Rng,
  base: Float32Array,
  rows: number,
  cols: number,
  rowsFraction = 1,
): Float32Array {
  const d = new Float32Array(base.length);
  for (let r = 0; r < rows; r++) {
    if (rng.uniform() >= rowsFraction) continue;
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += base[r * cols + c] ** 2;
    const scale = Math.sqrt(ss / cols);
    for (let c = 0; c < cols; c++) d[r * cols + c] = rng.gauss() * scale;
  }
  return d;
}

export interface Member {
  id: string;
  family: number; // -1 for unrelated
  kind: string;
  tensor: Tensor;
}

export interface FamilySpec {
  families: number;
  rows: number;
  cols: number;
  cosines: number[];
  /** Also add a partial fine-tune (10% of rows) at each of these cosines. */
  partial?: number[];
  unrelated: number;
  seed: number;
}

export function makeFamilies(spec: FamilySpec): Member[] {
  const rng = new Rng(spec.seed);
  const out: Member[] = [];
  const { rows, cols } = spec;
  const t = (a: Float32Array) => tensor('F32', [rows, cols], a);
  for (let f = 0; f < spec.families; f++) {
    const base = trainedLike(rng, rows, cols);
    out.push({ id: `f${f}-base`, family: f, kind: 'base', tensor: t(base) });
    for (const c of spec.cosines) {
      out.push({
        id: `f${f}-c${c}`,
        family: f,
        kind: `cos ${c}`,
        tensor: t(variantAt(base, rowScaledDelta(rng, base, rows, cols), c)),
      });
    }
    for (const c of spec.partial ?? []) {
      out.push({
        id: `f${f}-p${c}`,
        family: f,
        kind: `partial ${c}`,
        tensor: t(variantAt(base, rowScaledDelta(rng, base, rows, cols, 0.1), c)),
      });
    }
  }
  for (let u = 0; u < spec.unrelated; u++) {
    out.push({ id: `u${u}`, family: -1, kind: 'unrelated', tensor: t(trainedLike(rng, rows, cols)) });
  }
  return out;
}

export function exactCosine(a: Tensor, b: Tensor): number {
  return native.cosine(a.data, DTYPES[a.dtype].code, b.data, DTYPES[b.dtype].code, [
    a.data.byteLength / DTYPES[a.dtype].size,
  ]).cosine;
}

export interface RecallReport {
  pairs98: number;
  recall98: number;
  bandRecall98: number;
  precision98: number;
  pairs995: number;
  recall995: number;
  precision995: number;
  returned98: number;
  queries: number;
  queryMs: number;
  ramPerEntry: number;
  falseBandRate: number;
}

/**
 * Indexes every member, queries with every member, and scores the answers
 * against exact cosines. Pairs across families are assumed dissimilar (they
 * are independent draws), but every returned candidate is checked exactly.
 */
export async function evaluate(
  members: Member[],
  indexOpts: IndexOptions,
  queryOpts: QueryOptions = {},
): Promise<RecallReport> {
  const { bandBits: _bandBits, ...fpOpts } = indexOpts;
  const fps = await fingerprints(
    members.map((m) => m.tensor),
    fpOpts,
  );
  const index = SimilarityIndex.create(indexOpts);
  members.forEach((m, i) => index.insert(m.id, fps[i]));
  const byId = new Map(members.map((m, i) => [m.id, i]));
  const cache = new Map<string, number>();
  const cos = (i: number, j: number) => {
    const key = i < j ? `${i}:${j}` : `${j}:${i}`;
    let v = cache.get(key);
    if (v === undefined) {
      v = exactCosine(members[i].tensor, members[j].tensor);
      cache.set(key, v);
    }
    return v;
  };
  let pairs98 = 0,
    found98 = 0,
    band98 = 0,
    ret98 = 0,
    good98 = 0;
  let pairs995 = 0,
    found995 = 0,
    ret995 = 0,
    good995 = 0;
  let falseBand = 0,
    unrelatedPairs = 0;
  let queryNs = 0n;
  let queries = 0;
  for (let i = 0; i < members.length; i++) {
    const t0 = process.hrtime.bigint();
    const hits98 = index.query(fps[i], { ...queryOpts, k: 0, minSimilarity: 0.98 });
    queryNs += process.hrtime.bigint() - t0;
    queries++;
    const hits995 = index.query(fps[i], { ...queryOpts, k: 0, minSimilarity: 0.995 });
    const band = index.query(fps[i], { ...queryOpts, k: 0, minSimilarity: -1 });
    const set98 = new Set(hits98.map((h) => h.id));
    const set995 = new Set(hits995.map((h) => h.id));
    const setBand = new Set(band.map((h) => h.id));
    for (const h of hits98) {
      if (h.id === members[i].id) continue;
      ret98++;
      if (cos(i, byId.get(h.id)!) >= 0.98) good98++;
    }
    for (const h of hits995) {
      if (h.id === members[i].id) continue;
      ret995++;
      if (cos(i, byId.get(h.id)!) >= 0.995) good995++;
    }
    for (let j = 0; j < members.length; j++) {
      if (j === i) continue;
      if (members[i].family < 0 || members[j].family !== members[i].family) {
        unrelatedPairs++;
        if (setBand.has(members[j].id)) falseBand++;
        continue;
      }
      const c = cos(i, j);
      if (c >= 0.98) {
        pairs98++;
        if (set98.has(members[j].id)) found98++;
        if (setBand.has(members[j].id)) band98++;
      }
      if (c >= 0.995) {
        pairs995++;
        if (set995.has(members[j].id)) found995++;
      }
    }
  }
  return {
    pairs98,
    recall98: found98 / pairs98,
    bandRecall98: band98 / pairs98,
    precision98: ret98 ? good98 / ret98 : 1,
    pairs995,
    recall995: found995 / pairs995,
    precision995: ret995 ? good995 / ret995 : 1,
    returned98: ret98,
    queries,
    queryMs: Number(queryNs) / 1e6 / queries,
    ramPerEntry: index.memoryBytes() / index.size,
    falseBandRate: unrelatedPairs ? falseBand / unrelatedPairs : 0,
  };
}
