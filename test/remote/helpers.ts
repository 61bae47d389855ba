// Shared fixtures of the remote tests: a small checkpoint family (a base, fine-tunes of it) written with
// the test's own safetensors writer, and what a repository's store holds.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LocalPackStore } from '../../lib/store/local';
import { f32, perturb, weights, writeSafetensors } from '../helpers/cli';

export const N = 64 * 1024; // elements per tensor: 256 KiB of F32

/** Tensors of the family: `step` 0 is the base, each further step a small fine-tune of the previous. */
export function family(step: number, seed = 1): Record<string, Float32Array> {
  let w = weights(N, seed);
  let b = weights(N / 4, seed + 100);
  for (let s = 1; s <= step; s++) {
    w = perturb(w, seed * 1000 + s, 1e-2, 0.25);
    b = perturb(b, seed * 2000 + s, 1e-2, 0.25);
  }
  return { 'layer.weight': w, 'layer.bias': b };
}

export function writeModel(file: string, t: Record<string, Float32Array>): void {
  const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [k, v] of Object.entries(t)) out[k] = { dtype: 'F32', shape: [v.length], data: f32(v) };
  writeSafetensors(file, out);
}

/** Every object in a repository directory's packs (a bare dir or a `.coral`) with its stored size. */
export async function storedObjects(coral: string): Promise<Map<string, number>> {
  const store = await LocalPackStore.open(coral);
  try {
    const out = new Map<string, number>();
    for await (const a of store.list()) out.set(a.id, a.storedSize);
    return out;
  } finally {
    await store.close();
  }
}

export function packCount(coral: string): number {
  const dir = path.join(coral, 'objects', 'packs');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.h5')).length : 0;
}

/** Seeded xorshift32 in [0, 1). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}
