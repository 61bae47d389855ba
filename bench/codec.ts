/**
 * Codec bench: storage ratio against `zstd -3` (the CLI, on the same bytes) and against
 * "XOR with base, then zstd -3" for deltas; encode/decode throughput against a plain
 * Buffer copy. Workloads are generated trained-like weights (bench/lib/weights.ts).
 *
 *   npx tsx bench/codec.ts            # full sizes (64 MiB fp32 tensors), 5 runs
 *   npx tsx bench/codec.ts --quick    # small sizes, 3 runs
 *
 * Prints a table of medians, a per-codec speed table (encode, decode into a caller buffer,
 * decode into a fresh buffer; each next to a Buffer.copy of the same bytes timed in the same
 * loop), and one JSON line (prefix "codec-bench ") for tracking.
 */
import * as os from 'node:os';
import { decode, encode, type CodecName } from '../lib/codec';
import { native } from '../lib/native';
import type { Tensor } from '../lib/tensor/tensor';
import { median, xorBytes, zstd3 } from './lib/harness';
import { bytesOf, fineTune, sparseUpdate, toBf16, trainedLike } from './lib/weights';

const quick = process.argv.includes('--quick');
const RUNS = quick ? 3 : 5;
const ROWS = quick ? 512 : 4096;
const COLS = quick ? 1024 : 4096;

async function time(fn: () => unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

interface Row {
  workload: string;
  mib: number;
  baseline: string;
  baselineBytes: number;
  coralBytes: number;
  codec: string;
  ratioVsBaseline: number;
  ratioVsRaw: number;
  encGBs?: number;
  decGBs?: number;
}
const rows: Row[] = [];

interface SpeedRow {
  workload: string;
  codec: string;
  chosen: string;
  mib: number;
  ratio: number;
  copyGBs: number;
  encGBs: number;
  decGBs: number;
  decFreshGBs: number;
}
const speeds: SpeedRow[] = [];

/**
 * Encode / decode throughput of one codec (or 'auto', estimation included), medians of RUNS,
 * with a Buffer.copy of the same byte count timed in the same loop as the baseline.
 */
async function speed(workload: string, t: Tensor, base: Tensor | null, codec: CodecName | 'auto'): Promise<void> {
  const b = base ? { base: { tensor: base } } : {};
  const obj = await encode(t, { ...b, codec });
  const ref = base ? { tensor: base } : null;
  const out = new Uint8Array(t.data.length);
  const src = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.length),
    dst = Buffer.allocUnsafe(t.data.length);
  await decode(obj.bytes, ref, { out }); // warm-up
  const cp: number[] = [],
    enc: number[] = [],
    dec: number[] = [],
    fresh: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    cp.push(await time(() => src.copy(dst)));
    enc.push(await time(() => encode(t, { ...b, codec })));
    dec.push(await time(() => decode(obj.bytes, ref, { out })));
    fresh.push(await time(() => decode(obj.bytes, ref)));
  }
  const g = (xs: number[]) => t.data.length / median(xs) / 1e9;
  speeds.push({
    workload,
    codec,
    chosen: obj.codec,
    mib: t.data.length / 2 ** 20,
    ratio: t.data.length / obj.bytes.length,
    copyGBs: g(cp),
    encGBs: g(enc),
    decGBs: g(dec),
    decFreshGBs: g(fresh),
  });
}

async function standalone(name: string, t: Tensor, speed: boolean): Promise<void> {
  const zs = zstd3(t.data);
  const obj = await encode(t);
  const row: Row = {
    workload: name,
    mib: t.data.length / 2 ** 20,
    baseline: 'zstd -3',
    baselineBytes: zs,
    coralBytes: obj.bytes.length,
    codec: obj.codec,
    ratioVsBaseline: zs / obj.bytes.length,
    ratioVsRaw: t.data.length / obj.bytes.length,
  };
  if (speed) {
    const enc: number[] = [],
      dec: number[] = [];
    await encode(t);
    await decode(obj.bytes); // warm-up
    for (let i = 0; i < RUNS; i++) {
      enc.push(await time(() => encode(t)));
      dec.push(await time(() => decode(obj.bytes)));
    }
    row.encGBs = t.data.length / median(enc) / 1e9;
    row.decGBs = t.data.length / median(dec) / 1e9;
  }
  rows.push(row);
}

async function delta(name: string, t: Tensor, base: Tensor, speed: boolean, codec?: CodecName): Promise<void> {
  const xz = zstd3(xorBytes(t.data, base.data));
  const obj = await encode(t, { base: { tensor: base }, codec: codec ?? 'auto' });
  const row: Row = {
    workload: name,
    mib: t.data.length / 2 ** 20,
    baseline: 'xor+zstd -3',
    baselineBytes: xz,
    coralBytes: obj.bytes.length,
    codec: obj.codec,
    ratioVsBaseline: xz / obj.bytes.length,
    ratioVsRaw: t.data.length / obj.bytes.length,
  };
  if (speed) {
    const enc: number[] = [],
      dec: number[] = [];
    await decode(obj.bytes, { tensor: base }); // warm-up
    for (let i = 0; i < RUNS; i++) {
      enc.push(await time(() => encode(t, { base: { tensor: base } })));
      dec.push(await time(() => decode(obj.bytes, { tensor: base })));
    }
    row.encGBs = t.data.length / median(enc) / 1e9;
    row.decGBs = t.data.length / median(dec) / 1e9;
  }
  rows.push(row);
}

function f32(a: Float32Array, shape: number[]): Tensor {
  return { dtype: 'F32', shape, data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) };
}
function bf16(a: Float32Array, shape: number[]): Tensor {
  return { dtype: 'BF16', shape, data: bytesOf(toBf16(a)) };
}

async function main(): Promise<void> {
  const shape = [ROWS, COLS];
  const w = trainedLike(ROWS, COLS, 1);
  const wt = f32(w, shape);

  // copy baseline
  const copy: number[] = [];
  Buffer.from(wt.data); // warm-up
  for (let i = 0; i < RUNS; i++) copy.push(await time(() => Buffer.from(wt.data)));
  const copyGBs = wt.data.length / median(copy) / 1e9;

  await standalone('fp32 standalone', wt, true);
  await standalone('bf16 standalone', bf16(w, shape), true);

  const ft3 = fineTune(w, 1e-3, 2, COLS);
  const ft2 = fineTune(w, 1e-2, 3, COLS);
  await delta('fp32 fine-tune rel 1e-3', f32(ft3, shape), wt, true);
  await delta('fp32 fine-tune rel 1e-2', f32(ft2, shape), wt, false);
  await delta('bf16 fine-tune rel 1e-2', bf16(ft2, shape), bf16(w, shape), true);
  await delta('fp32 sparse update 1%', f32(sparseUpdate(w, 0.01, 4), shape), wt, false);

  // checkpoint series: 3 successive AdamW-like steps (rel 2e-3), each stored against the previous
  {
    let prev = w,
      xz = 0,
      cb = 0;
    for (let s = 0; s < 3; s++) {
      const next = fineTune(prev, 2e-3, 10 + s, COLS);
      xz += zstd3(xorBytes(f32(next, shape).data, f32(prev, shape).data));
      cb += (await encode(f32(next, shape), { base: { tensor: f32(prev, shape) } })).bytes.length;
      prev = next;
    }
    rows.push({
      workload: 'fp32 checkpoint series x3',
      mib: (3 * wt.data.length) / 2 ** 20,
      baseline: 'xor+zstd -3',
      baselineBytes: xz,
      coralBytes: cb,
      codec: 'auto',
      ratioVsBaseline: xz / cb,
      ratioVsRaw: (3 * wt.data.length) / cb,
    });
  }

  // partially-updated model: 16 tensors, 14 unchanged, 2 with 1% of elements rewritten
  {
    const r = ROWS / 4;
    let xz = 0,
      cb = 0,
      raw = 0;
    for (let k = 0; k < 16; k++) {
      const b = trainedLike(r, COLS, 100 + k);
      const nt = k === 3 || k === 11 ? sparseUpdate(b, 0.01, 200 + k) : b;
      const tb = f32(b, [r, COLS]),
        tn = f32(nt, [r, COLS]);
      raw += tn.data.length;
      xz += zstd3(xorBytes(tn.data, tb.data));
      cb += (await encode(tn, { base: { tensor: tb } })).bytes.length;
    }
    rows.push({
      workload: 'fp32 partial update (2/16)',
      mib: raw / 2 ** 20,
      baseline: 'xor+zstd -3',
      baselineBytes: xz,
      coralBytes: cb,
      codec: 'auto',
      ratioVsBaseline: xz / cb,
      ratioVsRaw: raw / cb,
    });
  }

  // per-codec speed: standalone and delta codecs, and the automatic choice
  {
    const bw = bf16(w, shape);
    for (const c of ['PLANES', 'auto'] as const) await speed('fp32 standalone', wt, null, c);
    for (const c of ['PLANES', 'auto'] as const) await speed('bf16 standalone', bw, null, c);
    const deltas = ['DELTA_XOR', 'DELTA_ORDERED', 'DELTA_EXPMANT', 'SPARSE_UPDATE', 'auto'] as const;
    for (const c of deltas) await speed('fp32 fine-tune 1e-3', f32(ft3, shape), wt, c);
    for (const c of deltas) await speed('bf16 fine-tune 1e-2', bf16(ft2, shape), bw, c);
    const sp = f32(sparseUpdate(w, 0.01, 4), shape);
    for (const c of ['SPARSE_UPDATE', 'auto'] as const) await speed('fp32 sparse update 1%', sp, wt, c);
  }

  const cpu = os.cpus()[0]?.model ?? 'unknown';
  console.log(
    `codec bench  node ${process.version}  ${cpu}  cores ${os.cpus().length}  kernel threads ${native.threads()}  ` +
      `UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 4}  zstd ${native.features.zstdVersion}  runs ${RUNS}${quick ? ' (quick)' : ''}`,
  );
  console.log(`Buffer copy baseline: ${copyGBs.toFixed(2)} GB/s (${(wt.data.length / 2 ** 20).toFixed(0)} MiB)`);
  const hdr = [
    'workload',
    'MiB',
    'baseline',
    'base bytes',
    'coral bytes',
    'codec',
    'x baseline',
    'x raw',
    'enc GB/s',
    'dec GB/s',
  ];
  const body = rows.map((r) => [
    r.workload,
    r.mib.toFixed(1),
    r.baseline,
    String(r.baselineBytes),
    String(r.coralBytes),
    r.codec,
    r.ratioVsBaseline.toFixed(3),
    r.ratioVsRaw.toFixed(3),
    r.encGBs?.toFixed(2) ?? '-',
    r.decGBs?.toFixed(2) ?? '-',
  ]);
  const widths = hdr.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells: string[]) =>
    cells.map((c, i) => (i === 0 || i === 2 || i === 5 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(fmt(hdr));
  for (const b of body) console.log(fmt(b));
  console.log('');
  const sh = [
    'workload',
    'codec',
    'chosen',
    'x raw',
    'copy GB/s',
    'enc GB/s',
    'dec GB/s',
    'dec fresh',
    'enc/copy',
    'dec/copy',
  ];
  const sb = speeds.map((r) => [
    r.workload,
    r.codec,
    r.chosen,
    r.ratio.toFixed(3),
    r.copyGBs.toFixed(2),
    r.encGBs.toFixed(2),
    r.decGBs.toFixed(2),
    r.decFreshGBs.toFixed(2),
    (r.encGBs / r.copyGBs).toFixed(3),
    (r.decGBs / r.copyGBs).toFixed(3),
  ]);
  const sw = sh.map((h, i) => Math.max(h.length, ...sb.map((b) => b[i].length)));
  const sfmt = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(sw[i]) : c.padStart(sw[i]))).join('  ');
  console.log(sfmt(sh));
  for (const b of sb) console.log(sfmt(b));
  // The throughput targets, on the automatic choice (what the repository stores):
  // lossless encode >= 1 GB/s and decode >= 2 GB/s, aggregate over the machine's cores.
  const auto = speeds.filter((r) => r.codec === 'auto');
  const targets = {
    encodeMinGBs: Math.min(...auto.map((r) => r.encGBs)),
    decodeMinGBs: Math.min(...auto.map((r) => r.decGBs)),
    decodeFreshMinGBs: Math.min(...auto.map((r) => r.decFreshGBs)),
  };
  console.log('');
  console.log(
    `targets (auto codec, slowest workload): encode ${targets.encodeMinGBs.toFixed(2)} GB/s (>= 1.0), ` +
      `decode into a caller buffer ${targets.decodeMinGBs.toFixed(2)} GB/s, into a new buffer ` +
      `${targets.decodeFreshMinGBs.toFixed(2)} GB/s (>= 2.0)` +
      (quick
        ? ' [quick: 1-2 MiB tensors, where fixed per-call costs dominate; the targets are for the full sizes]'
        : ''),
  );
  console.log('codec-bench ' + JSON.stringify({ quick, runs: RUNS, copyGBs, rows, speeds, targets }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
