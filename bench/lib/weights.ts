/**
 * Synthetic but trained-like weight tensors for the codec bench (seeded, deterministic).
 *
 * How they are made (see docs/codecs.md, "Bench workloads"):
 * - Layer weights W[rows, cols] (fan_in = cols): a mixture of 85% Gaussian and 15% Laplacian
 *   (heavier tails) with base scale 1/sqrt(fan_in); every row gets a log-normal gain exp(0.35 z)
 *   and 1% of the columns are "outlier features" scaled by 4, as in trained transformers.
 * - Fine-tune: AdamW-like steps. The update of each element is lr * clip(m/sqrt(v)) with the
 *   normalised moment ~ N(0, 0.6^2) clipped to [-1, 1] (sign-like, as Adam's are), plus decoupled
 *   weight decay lr * 0.01 * w. lr is chosen as `rel` times the layer's weight scale, so the
 *   relative update is about `rel` (1e-3 .. 1e-2).
 * - Checkpoint series: successive fine-tune steps from one base.
 * - Partially updated model: many tensors; most unchanged, a few with 1% of elements rewritten.
 */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normals(r: () => number): () => number {
  let spare = NaN;
  return () => {
    if (!Number.isNaN(spare)) {
      const v = spare;
      spare = NaN;
      return v;
    }
    const u = r() + 1e-12,
      v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    spare = m * Math.sin(2 * Math.PI * v);
    return m * Math.cos(2 * Math.PI * v);
  };
}

export function trainedLike(rows: number, cols: number, seed: number): Float32Array {
  const r = rng(seed);
  const z = normals(r);
  const out = new Float32Array(rows * cols);
  const sigma = 1 / Math.sqrt(cols);
  const colGain = new Float32Array(cols);
  for (let j = 0; j < cols; j++) colGain[j] = r() < 0.01 ? 4 : 1;
  for (let i = 0; i < rows; i++) {
    const rowGain = Math.exp(0.35 * z());
    for (let j = 0; j < cols; j++) {
      let v: number;
      if (r() < 0.85) v = z();
      else {
        const u = r() - 0.5;
        v = -Math.sign(u) * Math.log(1 - 2 * Math.abs(u) + 1e-12) * 0.7071;
      }
      out[i * cols + j] = v * sigma * rowGain * colGain[j];
    }
  }
  return out;
}

/** One AdamW-like step with relative size ~rel. */
export function fineTune(w: Float32Array, rel: number, seed: number, cols: number): Float32Array {
  const r = rng(seed);
  const z = normals(r);
  const lr = rel / Math.sqrt(cols);
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const step = Math.max(-1, Math.min(1, 0.6 * z()));
    out[i] = w[i] - lr * (step + 0.01 * w[i] * Math.sqrt(cols));
  }
  return out;
}

/** Rewrites `fraction` of the elements (e.g. rows of an embedding touched by new tokens). */
export function sparseUpdate(w: Float32Array, fraction: number, seed: number): Float32Array {
  const r = rng(seed);
  const z = normals(r);
  const out = Float32Array.from(w);
  const k = Math.round(w.length * fraction);
  for (let c = 0; c < k; c++) {
    const i = Math.floor(r() * w.length);
    out[i] = w[i] + 0.05 * z() * Math.abs(w[i] + 1e-3);
  }
  return out;
}

/** Round-to-nearest-even F32 -> BF16 bits. */
export function toBf16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const x = u[i];
    out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

export function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}
