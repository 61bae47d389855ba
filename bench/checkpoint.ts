/**
 * CheckpointManager: what retention frees, and what `save` costs the training loop.
 *
 * A seeded "training run": a 1M-parameter F32 weight matrix plus two Adam moments (12 MiB per
 * checkpoint), 24 checkpoints, each step moving every weight a little. Baseline in the same run: the
 * same saves with no retention policy (everything kept). coral: keepLast 3, keepBest 1,
 * keepLossy every 800 steps (QUANT_INT8), anchors every 8, then `gc --prune=now`.
 * Also: the time `save` holds the caller (capture) against the time until the checkpoint is committed
 * (medians), and the largest event-loop gap seen while checkpoints were written.
 *
 *   npx tsx bench/checkpoint.ts [--quick]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointManager, Repository, tensor, type CheckpointManagerOptions } from '../lib/index';
import { argFlag, emitJson, header, median, table } from './lib/harness';

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x / 2 ** 32) * 2 - 1;
  };
}

const du = (d: string): number =>
  fs
    .readdirSync(d, { withFileTypes: true })
    .reduce((n, e) => n + (e.isDirectory() ? du(path.join(d, e.name)) : fs.statSync(path.join(d, e.name)).size), 0);

async function run(opts: CheckpointManagerOptions, side: number, count: number) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-ckpt-'));
  const repo = await Repository.init(d);
  try {
    const m = new CheckpointManager(repo, opts);
    const r = rng(1);
    const n = side * side;
    const w = new Float32Array(n).map(() => r() * 0.05);
    const mom = new Float32Array(n);
    const v = new Float32Array(n);
    const capture: number[] = [];
    const commit: number[] = [];
    let lag = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      lag = Math.max(lag, now - last);
      last = now;
    }, 1);
    for (let k = 1; k <= count; k++) {
      for (let i = 0; i < n; i++) {
        const g = r() * 1e-3;
        w[i] -= g;
        mom[i] = 0.9 * mom[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
      }
      const t = (a: Float32Array) => tensor('F32', [side, side], new Uint8Array(a.buffer));
      const t0 = performance.now();
      last = t0;
      lag = lag || 0;
      const h = await m.save(
        { w: t(w) },
        { step: k * 100, metrics: { loss: k === 5 ? 0.01 : 1 / k }, optimizer: { 'w.m': t(mom), 'w.v': t(v) } },
      );
      const t1 = performance.now();
      await h!.done;
      capture.push(t1 - t0);
      commit.push(performance.now() - t0);
    }
    clearInterval(tick);
    await m.flush();
    const before = du(path.join(d, '.coral', 'objects'));
    await repo.gc({ pruneExpireMs: 0 });
    const after = du(path.join(d, '.coral', 'objects'));
    return {
      kept: (await m.list()).length,
      before,
      after,
      captureMs: median(capture),
      commitMs: median(commit),
      lagMs: lag,
    };
  } finally {
    await repo.close();
    fs.rmSync(d, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const side = quick ? 512 : 1024;
  const count = quick ? 12 : 24;
  header(
    `checkpoint: ${count} checkpoints of ${side}x${side} F32 weights + Adam moments (${(side * side * 12) >> 20} MiB each)`,
  );
  const all = await run({ branch: 'run', anchorEvery: 8 }, side, count);
  const kept = await run(
    {
      branch: 'run',
      keepLast: 3,
      keepBest: 1,
      metric: 'loss',
      keepLossy: { every: 800, codec: 'QUANT_INT8' },
      anchorEvery: 8,
    },
    side,
    count,
  );
  const mb = (b: number) => (b / 1e6).toFixed(1);
  table([
    {
      policy: 'keep all (baseline)',
      kept: all.kept,
      'store MB': mb(all.after),
      'save ms': all.captureMs.toFixed(1),
      'commit ms': all.commitMs.toFixed(0),
      'max loop gap ms': all.lagMs.toFixed(1),
    },
    {
      policy: 'retention + gc',
      kept: kept.kept,
      'store MB': mb(kept.after),
      'save ms': kept.captureMs.toFixed(1),
      'commit ms': kept.commitMs.toFixed(0),
      'max loop gap ms': kept.lagMs.toFixed(1),
    },
  ]);
  console.log(
    `store ratio retention/baseline: ${(kept.after / all.after).toFixed(3)}  (before gc: ${mb(kept.before)} MB)`,
  );
  emitJson('checkpoint', { side, count, baseline: all, retention: kept, ratio: kept.after / all.after });
}

void main();
