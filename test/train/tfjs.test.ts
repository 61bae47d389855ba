// TensorFlow.js: CoralCallback commits weights during model.fit through a CheckpointManager; an earlier
// epoch reloaded into a fresh model predicts bit-identically to what that epoch produced (tfjs CPU backend).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  CheckpointManager,
  CoralCallback,
  Repository,
  WeightMismatchError,
  loadIntoModel,
  readSafetensors,
  saveModel,
} from '../../lib/index';
import { tmpdir, tempDirs } from '../helpers/cli';

const dirs = tempDirs();

function build(hidden = 8): tf.Sequential {
  const m = tf.sequential();
  m.add(
    tf.layers.dense({
      units: hidden,
      inputShape: [4],
      activation: 'tanh',
      name: 'hidden',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
    }),
  );
  m.add(tf.layers.dense({ units: 1, name: 'out', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  m.compile({ optimizer: tf.train.adam(0.05), loss: 'meanSquaredError' });
  return m;
}

describe('TensorFlow.js integration', () => {
  it('CoralCallback commits each epoch; loadIntoModel restores an earlier epoch bit-identically', async () => {
    await tf.setBackend('cpu');
    const d = tmpdir('coral-tfjs-');
    dirs.push(d);
    const repo = await Repository.init(d);
    try {
      const xs = tf.tensor2d(
        Array.from({ length: 64 * 4 }, (_, i) => Math.sin(i * 0.37)),
        [64, 4],
      );
      const ys = tf.tensor2d(
        Array.from({ length: 64 }, (_, i) => Math.cos(i * 0.11)),
        [64, 1],
      );
      const probe = tf.tensor2d(
        Array.from({ length: 8 * 4 }, (_, i) => Math.cos(i * 0.5)),
        [8, 4],
      );
      const model = build();
      const manager = new CheckpointManager(repo, { branch: 'tfjs', metric: 'loss', mode: 'min' });
      const cb = new CoralCallback(model, manager, { every: { epochs: 1 }, state: { rngSeed: 1 } });
      const predictions: Float32Array[] = [];
      const record = {
        onEpochEnd: async () =>
          void predictions.push((await (model.predict(probe) as tf.Tensor).data()) as Float32Array),
      };
      const h = await model.fit(xs, ys, {
        epochs: 4,
        batchSize: 16,
        shuffle: false,
        verbose: 0,
        callbacks: [cb, record],
      });
      const list = await manager.list();
      expect(list.map((c) => [c.step, c.epoch])).toEqual([
        [4, 1],
        [8, 2],
        [12, 3],
        [16, 4],
      ]);
      expect(list.map((c) => c.metrics.loss)).toEqual(h.history.loss);
      // Adam's moments went into the checkpoint as tensors.
      const loaded = await manager.load(8);
      expect([...loaded.state.optimizer!.keys()]).toEqual(
        expect.arrayContaining(['hidden/kernel/m', 'hidden/kernel/v', 'out/bias/v']),
      );
      expect(loaded.state.rngSeed).toBe(1);

      // A fresh model (tfjs names its variables hidden/kernel_1...; coral matches originalName).
      const fresh = build();
      expect(fresh.weights[0].name).not.toBe('hidden/kernel');
      const r = await loadIntoModel(fresh, repo, 'tfjs~2', { tf }); // epoch 2
      expect(r.loaded).toEqual(['hidden/kernel', 'hidden/bias', 'out/kernel', 'out/bias']);
      const again = (await (fresh.predict(probe) as tf.Tensor).data()) as Float32Array;
      expect(Buffer.from(again.buffer).equals(Buffer.from(predictions[1].buffer))).toBe(true);
      expect(Buffer.from(again.buffer).equals(Buffer.from(predictions[3].buffer))).toBe(false);
      // From tensors already loaded: the best epoch.
      const best = await manager.load('best');
      await loadIntoModel(fresh, best.tensors, undefined, { tf });
      const bestPred = (await (fresh.predict(probe) as tf.Tensor).data()) as Float32Array;
      expect(Buffer.from(bestPred.buffer).equals(Buffer.from(predictions[best.state.epoch! - 1].buffer))).toBe(true);

      // Missing and mis-shaped weights: typed errors, the model is left untouched.
      const wider = build(16);
      const before = (await wider.weights[2].read().data()) as Float32Array;
      await expect(loadIntoModel(wider, repo, 'tfjs', { tf })).rejects.toMatchObject({
        code: WeightMismatchError.code,
        data: { weight: 'hidden/kernel' },
      });
      const other = tf.sequential();
      other.add(tf.layers.dense({ units: 1, inputShape: [4], name: 'head' }));
      await expect(loadIntoModel(other, repo, 'tfjs', { tf })).rejects.toBeInstanceOf(WeightMismatchError);
      await expect(loadIntoModel(fresh, repo, 'tfjs', { tf, strict: true })).resolves.toBeDefined();
      const after = (await wider.weights[2].read().data()) as Float32Array;
      expect(Buffer.from(after.buffer).equals(Buffer.from(before.buffer))).toBe(true); // nothing written on a mismatch

      // saveModel: safetensors with tfjs weight names.
      const file = path.join(d, 'saved.safetensors');
      await saveModel(model, file, { metadata: { framework: 'tfjs' } });
      const st = await readSafetensors(file);
      expect([...st.tensors.keys()].sort()).toEqual(['hidden/bias', 'hidden/kernel', 'out/bias', 'out/kernel']);
      expect(st.metadata).toEqual({ framework: 'tfjs' });
      expect(st.tensors.get('hidden/kernel')!.shape).toEqual([4, 8]);
      expect(fs.statSync(file).size).toBeGreaterThan(0);

      // Every N batches: 64 samples / 16 = 4 batches an epoch, 2 epochs, a commit every 3 batches.
      const byBatch = new CheckpointManager(repo, { branch: 'tfjs-batches' });
      const mB = build();
      const cbB = new CoralCallback(mB, byBatch, { every: { batches: 3 }, optimizer: false });
      expect(() => new CoralCallback(model, byBatch, { every: { batches: 0 } })).toThrow();
      expect(() => new CoralCallback(model, byBatch, { every: { batches: 1, epochs: 1 } })).toThrow();
      await mB.fit(xs, ys, { epochs: 2, batchSize: 16, shuffle: false, verbose: 0, callbacks: [cbB] });
      const byB = await byBatch.list();
      expect(byB.map((c) => [c.step, c.epoch])).toEqual([
        [3, 0],
        [6, 1],
      ]);
      expect((await byBatch.load(3)).state.optimizer).toBeUndefined();
    } finally {
      await repo.close();
    }
  }, 180_000);

  it('lib/index loads without tfjs (the module is only used when a model is passed)', () => {
    const src = fs.readFileSync(path.join(__dirname, '..', '..', 'lib', 'train', 'tfjs.ts'), 'utf8');
    expect(src).not.toMatch(/^import .*@tensorflow/m);
  });
});
