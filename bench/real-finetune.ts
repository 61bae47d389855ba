/**
 * Codec ratios and speed on weights from a real training run, next to the
 * generated workloads of bench/codec.ts: a transformer-style feed-forward block
 * (d -> 4d -> d, LayerNorm) trained with AdamW by Debian's torch
 * (scripts/train-small-model.py, seeded, CPU). Checkpoint a is taken half way,
 * b one optimizer step later, c at the end.
 *
 * Baselines in the same run: `zstd -3` on the raw bytes (standalone) and on the
 * XOR with the base (deltas), as in the codec issue's targets. bf16 rows use the
 * same weights rounded to bf16 (round to nearest even).
 *
 *   npx tsx bench/real-finetune.ts            # d = 512, 200 steps (~45 s of training here)
 *   npx tsx bench/real-finetune.ts --quick    # d = 256, 40 steps
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decode, encode } from '../lib/codec';
import { npyToTensor, parseNpyHeader, type NpyHeader } from '../lib/formats/numpy';
import type { Tensor } from '../lib/tensor/tensor';
import { argFlag, emitJson, gbps, header, median, table, timeRuns, xorBytes, zstd3 } from './lib/harness';
import { bytesOf, toBf16 } from './lib/weights';

const PYTHON = '/usr/bin/python3';
const quick = argFlag('quick');
const steps = quick ? 40 : 200,
  width = quick ? 256 : 512;

function load(file: string): Tensor {
  const bytes = fs.readFileSync(file);
  const h = parseNpyHeader(bytes) as NpyHeader;
  const t = npyToTensor(h, bytes.subarray(h.dataOffset));
  return { dtype: t.dtype, shape: t.shape, data: new Uint8Array(t.data) };
}
function bf16(t: Tensor): Tensor {
  const f = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  return { dtype: 'BF16', shape: t.shape, data: bytesOf(toBf16(f)) };
}

async function main(): Promise<void> {
  const torchOk = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  if (!torchOk) {
    console.log(`real-finetune: skipped (no torch under ${PYTHON}; run scripts/setup.sh)`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-real-ft-'));
  try {
    const train = execFileSync(
      PYTHON,
      [path.join(__dirname, '..', 'scripts', 'train-small-model.py'), dir, String(steps), String(width)],
      { encoding: 'utf8' },
    );
    header(`real-finetune: FFN block d=${width} (2 x ${width}x${4 * width} + norm), AdamW lr 1e-3, ${train.trim()}`);
    const names = fs
      .readdirSync(dir)
      .filter((f) => f.startsWith('a.'))
      .map((f) => f.slice(2, -4))
      .sort();
    const at = (tag: string, dtype: 'F32' | 'BF16') =>
      names.map((n) => {
        const t = load(path.join(dir, `${tag}.${n}.npy`));
        return dtype === 'F32' ? t : bf16(t);
      });
    const rows: Array<Record<string, string | number>> = [];
    for (const dtype of ['F32', 'BF16'] as const) {
      const a = at('a', dtype),
        b = at('b', dtype),
        c = at('c', dtype);
      const cases: Array<[string, Tensor[], Tensor[] | null]> = [
        ['standalone', a, null],
        ['1-step delta', b, a],
        [`${steps / 2}-step delta`, c, a],
      ];
      for (const [what, ts, bases] of cases) {
        let raw = 0,
          baseline = 0,
          coral = 0;
        const objs: Array<{ bytes: Uint8Array; base: Tensor | null }> = [];
        for (let i = 0; i < ts.length; i++) {
          const base = bases ? bases[i] : null;
          raw += ts[i].data.length;
          baseline += zstd3(base ? xorBytes(ts[i].data, base.data) : ts[i].data);
          const o = await encode(ts[i], base ? { base: { tensor: base } } : {});
          coral += o.bytes.length;
          objs.push({ bytes: o.bytes, base });
        }
        // Throughput over the whole set of tensors, medians of 5.
        const enc = median(
          await timeRuns(async () => {
            for (let i = 0; i < ts.length; i++) await encode(ts[i], bases ? { base: { tensor: bases[i] } } : {});
          }),
        );
        const dec = median(
          await timeRuns(async () => {
            for (const o of objs) await decode(o.bytes, o.base ? { tensor: o.base } : null);
          }),
        );
        rows.push({
          workload: `${dtype.toLowerCase()} ${what}`,
          'raw bytes': raw,
          baseline: bases ? 'xor+zstd -3' : 'zstd -3',
          'baseline bytes': baseline,
          'coral bytes': coral,
          'x baseline': baseline / coral,
          'x raw': raw / coral,
          'enc GB/s': gbps(raw, enc),
          'dec GB/s': gbps(raw, dec),
        });
      }
    }
    table(rows);
    emitJson('real-finetune', { steps, width, rows });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
