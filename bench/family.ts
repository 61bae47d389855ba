/**
 * Storage and ingest throughput on a realistic model family, each checkpoint
 * a separate safetensors file (seeded):
 *   base.safetensors            a 12-layer MLP-style model (F32)
 *   full-ft.safetensors         full fine-tune at a small learning rate (every weight moves by ~1e-3 relative),
 *                               with every tensor renamed ("model." prefix)
 *   partial-ft.safetensors      only the last 3 layers fine-tuned, the rest byte-identical to base
 *   ckpt/step-N.safetensors     a checkpoint series continuing from the full fine-tune
 * Contenders: exact dedup only (similarity.enabled=false, core.deltaAgainstParent=false),
 * and similarity on (default). Reports naive / stored ratios and ingest throughput (medians).
 *
 *   npx tsx bench/family.ts [--quick]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSafetensors } from '../lib/formats';
import { Repository } from '../lib/repository';
import { tensor, type Tensor } from '../lib/tensor/tensor';
import { argFlag, emitJson, header, median, table } from './lib/harness';

function gauss(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x + 1) / 4294967297;
  };
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const t = 2 * Math.PI * next();
    a[i] = r * Math.cos(t) * scale;
    if (i + 1 < n) a[i + 1] = r * Math.sin(t) * scale;
  }
  return a;
}

type Model = Map<string, { shape: number[]; data: Float32Array }>;

function baseModel(layers: number, width: number): Model {
  const m: Model = new Map();
  for (let l = 0; l < layers; l++) {
    m.set(`layers.${l}.weight`, { shape: [width, width], data: gauss(width * width, 100 + l, 1 / Math.sqrt(width)) });
    m.set(`layers.${l}.bias`, { shape: [width], data: gauss(width, 200 + l, 0.01) });
    m.set(`layers.${l}.norm`, { shape: [width], data: gauss(width, 300 + l, 0.02).map((v) => 1 + v) });
  }
  return m;
}

/** w + rel * rms(w) * noise for the selected tensors (a fine-tune step). */
function step(m: Model, seed: number, rel: number, pick: (name: string) => boolean = () => true): Model {
  const out: Model = new Map();
  let s = seed;
  for (const [k, v] of m) {
    if (!pick(k)) {
      out.set(k, v);
      continue;
    }
    let ss = 0;
    for (const x of v.data) ss += x * x;
    const rms = Math.sqrt(ss / v.data.length);
    const n = gauss(v.data.length, s++, rel * rms);
    out.set(k, { shape: v.shape, data: v.data.map((x, i) => x + n[i]) });
  }
  return out;
}

async function save(file: string, m: Model, prefix = ''): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const t: Record<string, Tensor> = {};
  for (const [k, v] of m) t[prefix + k] = tensor('F32', v.shape, v.data);
  await writeSafetensors(file, t);
}

async function run(src: string, files: string[], config: Record<string, unknown>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-family-repo-'));
  try {
    const repo = await Repository.init(dir);
    for (const [k, v] of Object.entries(config)) await repo.config.set(k, v as never);
    let naive = 0;
    let seconds = 0;
    for (const f of files) {
      const dst = path.join(dir, f);
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.copyFileSync(path.join(src, f), dst);
      naive += fs.statSync(dst).size;
      const t0 = process.hrtime.bigint();
      await repo.add([dst]);
      await repo.commit({ message: f });
      seconds += Number(process.hrtime.bigint() - t0) / 1e9;
    }
    const s = await repo.stats();
    await repo.close();
    return {
      naive,
      stored: s.storedBytes,
      ratio: naive / s.storedBytes,
      deltas: s.deltaObjects,
      objects: s.objects,
      maxDepth: s.maxChainDepth,
      seconds,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const layers = quick ? 6 : 12;
  const width = quick ? 512 : 1024;
  const series = quick ? 3 : 5;
  header(
    `family: ${layers} layers x ${width}^2 F32 (base, renamed full fine-tune, partial fine-tune, ${series}-step series)`,
  );
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-family-files-'));
  try {
    const base = baseModel(layers, width);
    const ft = step(base, 1000, 1e-3);
    const files: string[] = [];
    await save(path.join(src, 'base.safetensors'), base);
    files.push('base.safetensors');
    await save(path.join(src, 'full-ft.safetensors'), ft, 'model.');
    files.push('full-ft.safetensors');
    const last = new Set([layers - 1, layers - 2, layers - 3].map(String));
    await save(
      path.join(src, 'partial-ft.safetensors'),
      step(base, 2000, 1e-3, (k) => last.has(k.split('.')[1])),
    );
    files.push('partial-ft.safetensors');
    let cur = ft;
    for (let i = 1; i <= series; i++) {
      cur = step(cur, 3000 + i * 100, 3e-4);
      const f = `ckpt/step-${i * 1000}.safetensors`;
      await save(path.join(src, f), cur);
      files.push(f);
    }
    const runs = quick ? 1 : 3;
    const contenders: Record<string, Record<string, unknown>> = {
      'exact dedup only': { 'similarity.enabled': false, 'core.deltaAgainstParent': false },
      'similarity off (parent deltas)': { 'similarity.enabled': false },
      'similarity on (default)': {},
      'similarity on, maxCandidates 1': { 'similarity.maxCandidates': 1 },
    };
    await run(src, files.slice(0, 2), {}); // warm-up
    const res: Record<string, Array<Awaited<ReturnType<typeof run>>>> = {};
    for (let i = 0; i < runs; i++)
      for (const [n, c] of Object.entries(contenders)) (res[n] ??= []).push(await run(src, files, c));
    const rows = Object.entries(res).map(([n, rs]) => {
      const sec = median(rs.map((r) => r.seconds));
      return {
        contender: n,
        naive: rs[0].naive,
        stored: rs[0].stored,
        ratio: rs[0].ratio,
        deltas: rs[0].deltas,
        objects: rs[0].objects,
        'max depth': rs[0].maxDepth,
        'ingest s': sec,
        'MB/s': rs[0].naive / sec / 1e6,
      };
    });
    table(rows);
    const dedup = rows[0];
    const off = rows[1];
    const on = rows[2];
    console.log(
      `similarity vs exact dedup: ${(dedup.stored / on.stored).toFixed(3)}x smaller; throughput on/off: ${(on['MB/s'] / off['MB/s']).toFixed(3)}`,
    );
    emitJson('family', {
      runs,
      layers,
      width,
      series,
      rows,
      vsDedup: dedup.stored / on.stored,
      throughputOnOff: on['MB/s'] / off['MB/s'],
    });
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
