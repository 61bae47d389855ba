/**
 * Low-rank updates with an exact residual. A LoRA merge or any rank-r update
 * changes every element of a matrix, so the general delta codecs see a dense
 * change; stored as rank-r factors (the LOW_RANK codec, lossy on its own)
 * plus the exact residual against what the factors rebuild, it is far
 * smaller, and still bit-exact: the group's object is the residual, a delta
 * on the factors object, itself a delta on the previous version.
 *
 * Trying the factorisation costs a randomized SVD, so it is only tried when a
 * cheap test says the update is low-rank: the numerical rank (Gaussian
 * elimination with complete pivoting) of the update restricted to evenly
 * spaced sample rows and columns. A full-rank fine-tune step fails the test
 * for the price of a 48 x 48 elimination. The factors + residual are kept
 * only when they beat the direct update by a margin.
 */
import { decode, encode } from '../codec';
import { SKELETON_NAME, type BaseQuery, type FindBase } from '../ingest/ingest';
import type { ObjectReader, ObjectWriter } from '../odb/objects';
import type { Tensor } from '../tensor/tensor';

/** Rows and columns sampled by the rank test. */
const SKETCH = 48;
/** Numerical rank above which an update is not treated as low-rank. */
const MAX_SKETCH_RANK = 16;
/** Smallest matrix worth factorising. */
const MIN_ELEMENTS = 1 << 14;
/** Factors + residual must be at most this fraction of the direct update. */
const WIN_MARGIN = 0.8;

function view(t: Tensor): Float32Array | Float64Array | null {
  const d = t.data;
  if (t.dtype === 'F32' && d.byteOffset % 4 === 0) return new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4);
  if (t.dtype === 'F64' && d.byteOffset % 8 === 0) return new Float64Array(d.buffer, d.byteOffset, d.byteLength / 8);
  return null;
}

/**
 * Numerical rank of (next − prev) on a SKETCH x SKETCH grid of rows and
 * columns, or -1 when the sample holds a non-finite value. 0: unchanged
 * there, or a sparse change: fewer than half of the sampled elements changed.
 * A rank-r update (a LoRA merge) changes every element; the rank of a sparse
 * sample only counts its nonzeros (1% of elements rewritten at random gives a
 * 48 x 48 sample of rank ~20, which looks low-rank), and SPARSE_UPDATE already
 * stores such a change at a cost proportional to what changed.
 */
export function sketchRank(prev: Tensor, next: Tensor, tol = 1e-4): number {
  const a = view(prev);
  const b = view(next);
  if (!a || !b || next.shape.length !== 2) return -1;
  const [rows, cols] = next.shape;
  const k = Math.min(SKETCH, rows, cols);
  const m: number[][] = [];
  let changed = 0;
  for (let i = 0; i < k; i++) {
    const r = Math.floor(((i + 0.5) * rows) / k);
    const row: number[] = [];
    for (let j = 0; j < k; j++) {
      const c = Math.floor(((j + 0.5) * cols) / k);
      const x = b[r * cols + c] - a[r * cols + c];
      if (!Number.isFinite(x)) return -1;
      if (x !== 0) changed++;
      row.push(x);
    }
    m.push(row);
  }
  if (2 * changed < k * k) return 0;
  let first = 0;
  for (let step = 0; step < k; step++) {
    let bi = step;
    let bj = step;
    let best = 0;
    for (let i = step; i < k; i++)
      for (let j = step; j < k; j++)
        if (Math.abs(m[i][j]) > best) {
          best = Math.abs(m[i][j]);
          bi = i;
          bj = j;
        }
    if (step === 0) first = best;
    if (best === 0 || best <= tol * first) return step;
    [m[step], m[bi]] = [m[bi], m[step]];
    for (const row of m) [row[step], row[bj]] = [row[bj], row[step]];
    const p = m[step][step];
    for (let i = step + 1; i < k; i++) {
      const f = m[i][step] / p;
      if (f === 0) continue;
      for (let j = step; j < k; j++) m[i][j] -= f * m[step][j];
    }
  }
  return k;
}

/**
 * Is (next − prev) a low-rank change, as lowRankBases tests it (sketchRank on the
 * sampled grid)? False for matrices too small for the test.
 */
export function lowRankChange(prev: Tensor, next: Tensor): boolean {
  if (next.shape.length !== 2 || Math.min(next.shape[0], next.shape[1]) < SKETCH) return false;
  const rank = sketchRank(prev, next);
  return rank > 0 && rank <= MAX_SKETCH_RANK;
}

/**
 * Wraps a base proposal: when the proposed base and the new tensor differ by
 * a low-rank update, stores the LOW_RANK factors (a delta on the proposed
 * base), publishes them, and proposes them as the base instead, so the
 * writer stores the exact residual against them.
 */
export function lowRankBases(writer: ObjectWriter, reader: ObjectReader, inner: FindBase): FindBase {
  return async (q: BaseQuery) => {
    const b = await inner(q);
    const t = q.tensor;
    if (!b || !t || q.name === SKELETON_NAME || t.shape.length !== 2 || (t.dtype !== 'F32' && t.dtype !== 'F64'))
      return b;
    if (t.shape[0] * t.shape[1] < MIN_ELEMENTS || Math.min(t.shape[0], t.shape[1]) < SKETCH) return b;
    // Two more links (factors, residual) must fit in the chain.
    if ((await reader.info(b.id)).depth + 2 > writer.opts.maxChainDepth) return b;
    const prev = b.tensor ?? (await reader.tensor(b.id));
    const rank = sketchRank(prev, t);
    // Not low-rank: the direct update, with the base decoded here (the writer would decode its chain again).
    if (rank <= 0 || rank > MAX_SKETCH_RANK) return { id: b.id, tensor: prev };
    try {
      const base = { tensor: prev, id: b.id };
      const lr = await encode(t, {
        codec: 'LOW_RANK',
        base,
        lossy: { energy: 0.999999, maxRank: Math.min(64, 2 * rank + 2) },
      });
      const approx = await decode(lr.bytes, base);
      const residual = await encode(t, { base: { tensor: approx, id: lr.id } });
      const direct = await encode(t, { base });
      if (lr.bytes.byteLength + residual.bytes.byteLength > WIN_MARGIN * direct.bytes.byteLength)
        return { id: b.id, tensor: prev };
      await writer.putEncoded(lr, t, b.id);
      // The residual's base must be published before the writer will encode against it.
      await writer.flush();
      return { id: lr.id, tensor: approx };
    } catch {
      // Non-finite values (the lossy codec refuses them) or an unfactorisable update: the direct update.
      return { id: b.id, tensor: prev };
    }
  };
}
