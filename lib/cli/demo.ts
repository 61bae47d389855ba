/**
 * `coral demo`: the embedded default job. It generates a small transformer-like
 * checkpoint family (base, fine-tune, checkpoint series, a partial update on a
 * branch), commits it, and shows what coral does with it: dedup and delta
 * storage, tensor-aware diff, byte-exact checkout, stats and fsck.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Repository, serializeSafetensors, tensor, type Tensor } from '../index';
import { fmtNum, humanBytes, paint, type Io } from './output';

/** Deterministic N(0,1) samples (xorshift128+ and Box-Muller). */
class Rng {
  private s0: bigint;
  private s1: bigint;
  private spare: number | null = null;
  constructor(seed: number) {
    this.s0 = (BigInt(seed) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn || 1n;
    this.s1 = (this.s0 ^ 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  }
  uniform(): number {
    let x = this.s0;
    const y = this.s1;
    this.s0 = y;
    x ^= (x << 23n) & 0xffffffffffffffffn;
    this.s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return Number(((this.s1 + y) & 0xffffffffffffffffn) >> 11n) / 2 ** 53;
  }
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u = Math.max(this.uniform(), 1e-300);
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

type Weights = Record<string, Float32Array & { shape?: number[] }>;

function layerShapes(d = 128, layers = 4, vocab = 1000): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [['embed.weight', [vocab, d]]];
  for (let i = 0; i < layers; i++) {
    const p = `layers.${i}`;
    out.push(
      [`${p}.attn.qkv.weight`, [3 * d, d]],
      [`${p}.attn.out.weight`, [d, d]],
      [`${p}.ln1.weight`, [d]],
      [`${p}.ln1.bias`, [d]],
      [`${p}.mlp.up.weight`, [4 * d, d]],
      [`${p}.mlp.down.weight`, [d, 4 * d]],
      [`${p}.ln2.weight`, [d]],
      [`${p}.ln2.bias`, [d]],
    );
  }
  out.push(['head.weight', [vocab, d]]);
  return out;
}

function baseModel(seed: number): { w: Weights; shapes: Map<string, number[]> } {
  const rng = new Rng(seed);
  const w: Weights = {};
  const shapes = new Map<string, number[]>();
  for (const [name, shape] of layerShapes()) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    if (name.includes('.ln') && name.endsWith('.weight')) a.fill(1);
    else if (!name.endsWith('.bias')) {
      const std = 1 / Math.sqrt(shape[shape.length - 1]);
      for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
    }
    w[name] = a;
    shapes.set(name, shape);
  }
  return { w, shapes };
}

/** A fine-tune step: every weight moves by ~lr relative to its scale (AdamW-like sign updates). */
function step(w: Weights, seed: number, lr: number, only?: (name: string) => boolean): Weights {
  const rng = new Rng(seed);
  const out: Weights = {};
  for (const [name, a] of Object.entries(w)) {
    if (only && !only(name)) {
      out[name] = a;
      continue;
    }
    const b = new Float32Array(a.length);
    let scale = 0;
    for (let i = 0; i < a.length; i++) scale += a[i] * a[i];
    scale = Math.sqrt(scale / Math.max(1, a.length)) || 0.02;
    for (let i = 0; i < a.length; i++) b[i] = a[i] + lr * scale * Math.sign(rng.normal()) * (0.5 + rng.uniform());
    out[name] = b;
  }
  return out;
}

function toFile(w: Weights, shapes: Map<string, number[]>, meta: Record<string, string>): Buffer {
  const ts: Record<string, Tensor> = {};
  for (const [name, a] of Object.entries(w)) ts[name] = tensor('F32', shapes.get(name)!, a);
  return serializeSafetensors(ts, meta);
}

const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

export async function runDemo(io: Io, opts: { dir?: string; keep?: boolean; json?: boolean }): Promise<number> {
  const dir = opts.dir ? path.resolve(opts.dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'coral-demo-'));
  const say = (s = '') => {
    if (!opts.json) io.out(s + '\n');
  };
  const h = (s: string) => say(paint(io, 'bold', `\n== ${s}`));
  const t0 = Date.now();
  try {
    fs.mkdirSync(dir, { recursive: true });
    const repo = await Repository.init(dir);
    const file = path.join(dir, 'model.safetensors');
    const written: Array<{ rev: string; sha: string; bytes: number }> = [];
    try {
      h('1. base model');
      const { w: base, shapes } = baseModel(1);
      const baseBytes = toFile(base, shapes, { step: '0' });
      fs.writeFileSync(file, baseBytes);
      await repo.add([file]);
      const c0 = await repo.commit({ message: 'base model', metadata: { step: 0 } });
      await repo.createTag('v1', 'HEAD', { message: 'first release', metrics: { loss: 2.31 } });
      written.push({ rev: c0, sha: sha(baseBytes), bytes: baseBytes.length });
      say(
        `  wrote model.safetensors (${humanBytes(baseBytes.length)}, ${shapes.size} tensors), committed ${c0.slice(0, 12)}, tagged v1`,
      );

      h('2. fine-tuning: a checkpoint series at lr 1e-3 relative');
      let cur = base;
      for (let s = 1; s <= 3; s++) {
        cur = step(cur, 100 + s, 1e-3);
        const bytes = toFile(cur, shapes, { step: String(s * 100) });
        fs.writeFileSync(file, bytes);
        const r = await repo.add([file]);
        const id = await repo.commit({ message: `fine-tune step ${s * 100}`, metadata: { step: s * 100 } });
        written.push({ rev: id, sha: sha(bytes), bytes: bytes.length });
        const f = r.files[0];
        say(
          `  step ${s * 100}: ${f.storedObjects} objects stored (${f.deltaObjects} as deltas against the parent), ${humanBytes(f.storedBytes)} for ${humanBytes(f.bytes)}`,
        );
      }

      h('3. a partial update on a branch (only the output head is trained)');
      await repo.checkout('head-only', { create: true });
      const partial = step(cur, 999, 1e-2, (n) => n.startsWith('head.'));
      const pBytes = toFile(partial, shapes, { step: '300', note: 'head-only' });
      fs.writeFileSync(file, pBytes);
      const pr = await repo.add([file]);
      const pId = await repo.commit({ message: 'train the head only' });
      written.push({ rev: pId, sha: sha(pBytes), bytes: pBytes.length });
      say(`  ${pr.files[0].dedupedObjects} tensors deduplicated, ${pr.files[0].storedObjects} stored`);

      h('4. tensor-aware diff main..head-only');
      const changes = await repo.diff('main', 'head-only');
      for (const f of changes)
        for (const t of f.tensors)
          say(
            `  ~ ${f.path}:${t.name} ${t.dtype}[${t.shape.join(',')}] changed ${(100 * (t.metrics?.changedFraction ?? 0)).toFixed(1)}% relL2 ${t.metrics?.relL2 === null ? '-' : fmtNum(t.metrics?.relL2 ?? 0)}`,
          );

      h('5. checkout every commit and verify the bytes');
      await repo.checkout('main');
      let ok = 0;
      for (const wv of written) {
        await repo.checkout(wv.rev, { detach: true });
        if (sha(fs.readFileSync(file)) === wv.sha) ok++;
      }
      await repo.checkout('main');
      say(`  ${ok}/${written.length} checkouts byte-identical (sha256)`);

      h('6. storage');
      const s = await repo.stats();
      say(
        `  ${humanBytes(s.logicalBytes)} of checkpoints stored in ${humanBytes(s.storedBytes)}: ${s.ratio.toFixed(2)}x`,
      );
      for (const [c, v] of Object.entries(s.codecs))
        say(`  ${c.padEnd(20)} ${v.objects} objects, ${humanBytes(v.rawBytes)} -> ${humanBytes(v.storedBytes)}`);
      const f = await repo.fsck();
      say(`  fsck: ${f.ok ? 'ok' : `${f.problems.length} problems`} (${f.objects} objects verified)`);
      say(
        `\ndone in ${((Date.now() - t0) / 1000).toFixed(1)} s; repository at ${dir}${opts.keep || opts.dir ? '' : ' (removed; pass --keep to keep it)'}`,
      );
      if (opts.json)
        io.out(JSON.stringify({ dir, commits: written.length, verified: ok, stats: s, fsck: f.ok }) + '\n');
      return ok === written.length && f.ok ? 0 : 1;
    } finally {
      await repo.close();
    }
  } finally {
    if (!opts.keep && !opts.dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}
