// CheckpointManager: TrainingState round trip, load by latest/best/step/commit, the `every` policy,
// bounded background saving, and retention that really frees disk (tiered: some kept lossy).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointManager, InvalidArgumentError, Repository, tensor, type Tensor } from '../../lib/index';
import { tmpdir, tempDirs } from '../helpers/cli';

const dirs = tempDirs();

/** Seeded xorshift32 floats in [-scale, scale). */
function rand(n: number, seed: number, scale = 0.05): Float32Array {
  let x = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = ((x / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}
const t32 = (shape: number[], a: Float32Array): Tensor => tensor('F32', shape, new Uint8Array(a.buffer.slice(0)));
const f32 = (t: Tensor) =>
  new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));

function weightsAt(step: number) {
  return { 'layer.w': t32([128, 128], rand(128 * 128, 1000 + step)), 'layer.b': t32([128], rand(128, 7)) };
}

/** Byte equality (vitest's deep equality is slow on megabyte buffers). */
const same = (a: Uint8Array | ArrayBufferLike, b: Uint8Array | ArrayBufferLike) =>
  Buffer.from(a instanceof Uint8Array ? a : new Uint8Array(a)).equals(
    Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b)),
  );

async function repoIn(prefix: string): Promise<Repository> {
  const d = tmpdir(prefix);
  dirs.push(d);
  return Repository.init(d);
}

describe('CheckpointManager', () => {
  it('stores the whole TrainingState and loads latest, best, a step and a commit', async () => {
    const repo = await repoIn('coral-ckpt-state-');
    try {
      const m = new CheckpointManager(repo, { branch: 'run', metric: 'loss', mode: 'min' });
      const losses = [0.9, 0.3, 0.5];
      for (let i = 0; i < 3; i++) {
        const step = (i + 1) * 10;
        const h = await m.save(weightsAt(step), {
          step,
          epoch: i,
          metrics: { loss: losses[i], acc: 0.5 + i / 10 },
          lrSchedule: { step, lr: 0.001 * (3 - i) },
          rngSeed: 42 + i,
          optimizer: {
            'layer.w.m': t32([128, 128], rand(128 * 128, 50 + i, 0.001)),
            'layer.w.v': t32([128, 128], rand(128 * 128, 60, 1e-6)),
          },
          extra: { betas: [0.9, 0.999] },
        });
        expect(h?.step).toBe(step);
      }
      await m.flush();
      const latest = await m.load('latest');
      expect(latest.step).toBe(30);
      expect(same(latest.tensors.get('layer.w')!.data, weightsAt(30)['layer.w'].data)).toBe(true);
      expect(latest.state).toMatchObject({
        step: 30,
        epoch: 2,
        metrics: { loss: 0.5 },
        lrSchedule: { step: 30, lr: 0.001 },
        rngSeed: 44,
        extra: { betas: [0.9, 0.999] },
      });
      expect(same(latest.state.optimizer!.get('layer.w.m')!.data, rand(128 * 128, 52, 0.001).buffer)).toBe(true);
      const best = await m.load('best');
      expect(best.step).toBe(20);
      expect(best.state.metrics).toEqual({ loss: 0.3, acc: 0.6 });
      const s10 = await m.load(10);
      expect(same(s10.tensors.get('layer.w')!.data, weightsAt(10)['layer.w'].data)).toBe(true);
      expect((await m.load(s10.id)).step).toBe(10);
      // Adam's second moment did not change between checkpoints: stored once.
      const trees = await Promise.all(
        (await m.list()).map(async (c) => (await repo.treeOf(c.id)).files['optimizer.safetensors']),
      );
      const v = trees
        .map((t) => t.tensors.find((x) => x.name === 'layer.w.v')!)
        .map((te, i) => trees[i].segments[te.segment].object);
      expect(new Set(v).size).toBe(1);
      // Checkpoint 2 is a delta against the anchor (checkpoint 1).
      expect((await m.list()).map((c) => c.anchor)).toEqual([true, 10, 10]);
      const log = await repo.log({ rev: 'run' });
      expect(log.map((e) => e.commit.metadata.metrics)).toEqual([
        { loss: 0.5, acc: 0.7 },
        { loss: 0.3, acc: 0.6 },
        { loss: 0.9, acc: 0.5 },
      ]);
      await expect(m.load(15)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(m.save(weightsAt(5), { step: 5 })).rejects.toBeInstanceOf(InvalidArgumentError);
    } finally {
      await repo.close();
    }
  });

  it('saves a checkpoint file (copied before save resolves) under its own name', async () => {
    const repo = await repoIn('coral-ckpt-file-');
    try {
      const m = new CheckpointManager(repo, { branch: 'files' });
      const file = path.join(repo.worktree, 'weights.safetensors');
      const { writeSafetensors } = await import('../../lib/index');
      await writeSafetensors(file, weightsAt(1));
      const h = (await m.save(file, { step: 1, metrics: { loss: 1 } }))!;
      // Captured: the file may change or go as soon as save resolves.
      fs.rmSync(file);
      await h.done;
      const c = await m.load('latest');
      expect(c.file).toBe('weights.safetensors');
      expect(same(c.tensors.get('layer.w')!.data, weightsAt(1)['layer.w'].data)).toBe(true);
      await expect(m.save(path.join(repo.worktree, 'missing.pt'), { step: 2 })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      expect(await m.due({ step: 2 })).toBe(true); // a failed capture does not count as saved
      await m.flush(); // that failure was save's own, not a background one
    } finally {
      await repo.close();
    }
  });

  it('a failed background write rejects done, surfaces in flush, and leaves the branch as it was', async () => {
    const repo = await repoIn('coral-ckpt-fail-');
    try {
      const m = new CheckpointManager(repo, { branch: 'run' });
      await (await m.save(weightsAt(1), { step: 1 }))!.done;
      process.env.CORAL_FAULT = 'pack:write:ENOSPC';
      let h;
      try {
        h = (await m.save(weightsAt(2), { step: 2 }))!;
        await expect(h.done).rejects.toMatchObject({ code: 'CORAL_IO' });
      } finally {
        delete process.env.CORAL_FAULT;
      }
      await expect(m.flush()).rejects.toMatchObject({ code: 'CORAL_IO' });
      await m.flush(); // reported once
      expect((await m.list()).map((c) => c.step)).toEqual([1]);
      await (await m.save(weightsAt(3), { step: 3 }))!.done;
      expect((await m.list()).map((c) => c.step)).toEqual([1, 3]);
    } finally {
      await repo.close();
    }
  });

  it('rejects bad options with typed errors', async () => {
    const repo = await repoIn('coral-ckpt-opts-');
    try {
      const bad: unknown[] = [
        { branch: 'a b' },
        { branch: 'x', every: { steps: 0 } },
        { branch: 'x', every: { steps: 1, epochs: 1 } },
        { branch: 'x', keepBest: 1 },
        { branch: 'x', mode: 'lowest' },
        { branch: 'x', keepLossy: { every: 10, codec: 'ZSTD' } },
        { branch: 'x', keepLast: 1, kepBest: 2 },
      ];
      for (const o of bad)
        expect(() => new CheckpointManager(repo, o as never), JSON.stringify(o)).toThrow(InvalidArgumentError);
    } finally {
      await repo.close();
    }
  });

  it('saves only when due (every steps / epochs)', async () => {
    const repo = await repoIn('coral-ckpt-every-');
    try {
      const m = new CheckpointManager(repo, { branch: 'run', every: { steps: 10 } });
      const saved = [];
      for (const step of [0, 5, 9, 10, 15, 21]) if (await m.save(weightsAt(step), { step })) saved.push(step);
      expect(saved).toEqual([0, 10, 21]);
      const e = new CheckpointManager(repo, { branch: 'ep', every: { epochs: 2 } });
      const savedE = [];
      for (let epoch = 0; epoch < 6; epoch++)
        if (await e.save(weightsAt(epoch), { step: epoch * 100, epoch })) savedE.push(epoch);
      expect(savedE).toEqual([0, 2, 4]);
      await m.flush();
      await e.flush();
      // A new manager on the same branch continues from its tip.
      const m2 = new CheckpointManager(repo, { branch: 'run', every: { steps: 10 } });
      expect(await m2.due({ step: 25 })).toBe(false);
      expect(await m2.due({ step: 31 })).toBe(true);
    } finally {
      await repo.close();
    }
  });

  it('save returns once captured; writing runs in the background with bounded queueing', async () => {
    const repo = await repoIn('coral-ckpt-queue-');
    try {
      const m = new CheckpointManager(repo, { branch: 'run', maxQueued: 1 });
      const big = () => ({ w: t32([1024, 1024], rand(1024 * 1024, 3)) }); // 4 MiB: encoded off the event loop
      const w1 = big();
      const h1 = (await m.save(w1, { step: 1 }))!;
      // Captured: mutating the caller's buffer now does not change what is stored.
      w1.w.data.fill(0);
      let ticks = 0;
      const tick = setInterval(() => ticks++, 1);
      const order: string[] = [];
      void h1.done.then(() => order.push('done1'));
      const h2 = (await m.save(big(), { step: 2 }))!;
      expect(m.pending).toBe(2);
      // A third save must wait for room: it resolves only after the first is committed.
      const h3 = (await m.save(big(), { step: 3 }).then((h) => (order.push('save3'), h)))!;
      expect(order).toEqual(['done1', 'save3']);
      expect(m.pending).toBeLessThanOrEqual(2);
      await Promise.all([h2.done, h3.done]);
      clearInterval(tick);
      expect(ticks).toBeGreaterThan(0); // the event loop ran while checkpoints were written
      const back = await m.load(1);
      expect(same(back.tensors.get('w')!.data, rand(1024 * 1024, 3).buffer)).toBe(true);
    } finally {
      await repo.close();
    }
  });

  it('retention frees disk after gc; older checkpoints on the lossy grid stay lossy', async () => {
    const repo = await repoIn('coral-ckpt-retain-');
    const objects = path.join(repo.worktree, '.coral', 'objects');
    const du = (dir: string): number =>
      fs
        .readdirSync(dir, { withFileTypes: true })
        .reduce(
          (n, e) => n + (e.isDirectory() ? du(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size),
          0,
        );
    try {
      const m = new CheckpointManager(repo, {
        branch: 'run',
        keepLast: 2,
        keepBest: 1,
        metric: 'loss',
        mode: 'min',
        keepLossy: { every: 40, codec: 'QUANT_INT8' },
        anchorEvery: 4,
      });
      const loss = (step: number) => (step === 30 ? 0.0001 : 1 / step);
      for (let step = 10; step <= 120; step += 10)
        await m.save(weightsAt(step), { step, metrics: { loss: loss(step) } });
      await m.flush();
      const list = await m.list();
      // Anchors every 4 checkpoints: 10, 50, 90. Kept whole: best (30), last two (110, 120), and the
      // anchors they are deltas against (10 for 30, 90 for 110/120: pinned); 40 and 80 on the lossy
      // grid stay lossy. Everything else (20, 50, 60, 70, 100) is dropped.
      expect(list.map((c) => c.step)).toEqual([10, 30, 40, 80, 90, 110, 120]);
      expect(list.map((c) => c.anchor)).toEqual([true, 10, 10, 50, true, 90, 90]);
      const lossy = await m.load(40);
      expect(lossy.lossy?.codec).toBe('QUANT_INT8');
      const exact = f32(weightsAt(40)['layer.w']);
      const got = f32(lossy.tensors.get('layer.w')!);
      let maxErr = 0;
      for (let i = 0; i < exact.length; i++) maxErr = Math.max(maxErr, Math.abs(exact[i] - got[i]));
      expect(maxErr).toBeGreaterThan(0);
      expect(maxErr).toBeLessThanOrEqual(lossy.lossy!.maxAbsError);
      for (const s of [10, 30, 90, 110, 120]) {
        const c = await m.load(s);
        expect(c.lossy).toBeUndefined();
        expect(same(c.tensors.get('layer.w')!.data, weightsAt(s)['layer.w'].data)).toBe(true);
      }
      const before = du(objects);
      const r = await repo.gc({ pruneExpireMs: 0 });
      const after = du(objects);
      // 12 checkpoints of 64 KiB weights were written; 5 whole + 2 lossy (~1/4 size) remain.
      expect(after).toBeLessThan(before * 0.65);
      expect(r.bytesAfter).toBe(after);
      expect(r.removedObjects).toBeGreaterThan(0);
      fs.mkdirSync(path.join(__dirname, '..', '..', 'test-output'), { recursive: true });
      fs.writeFileSync(
        path.join(__dirname, '..', '..', 'test-output', 'retention.json'),
        JSON.stringify(
          { checkpoints: 12, kept: list.map((c) => c.step), bytesBeforeGc: before, bytesAfterGc: after },
          null,
          2,
        ),
      );
      // Every kept checkpoint still decodes after gc; fsck is clean.
      for (const c of list) await m.load(c.step);
      const f = await repo.fsck({ full: true });
      expect(f.problems ?? []).toEqual([]);
    } finally {
      await repo.close();
    }
  });
});
