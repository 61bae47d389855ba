/**
 * Merge throughput: average and TIES on large tensors, against baselines
 * measured in the same run (a plain Buffer.copy of the same input bytes, and
 * a straightforward JS loop average).
 *
 *   npx tsx bench/merge.ts            # 64M-element F32 and BF16 tensors
 *   npx tsx bench/merge.ts --quick    # 1M elements
 *   npx tsx bench/merge.ts --runs 7 --threads 2
 *
 * Throughput = bytes of all input tensors (ours + theirs, + base for TIES)
 * divided by the median wall time of N runs. One table, then one JSON line.
 */
import * as os from 'node:os';
import { mergeLinear, mergeTaskVectors } from '../lib/merge/numeric';
import { native } from '../lib/native';
import type { DType } from '../lib/tensor/dtype';
import { tensor, type Tensor } from '../lib/tensor/tensor';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argVal = (k: string) => {
  const i = args.indexOf(k);
  return i >= 0 ? Number(args[i + 1]) : undefined;
};
const N = argVal('--runs') ?? (quick ? 7 : 5);
const ELEMS = argVal('--elems') ?? (quick ? 1 << 20 : 64 << 20);
const threads = argVal('--threads');
if (threads) native.setThreads(threads);

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function time(fn: () => unknown): Promise<number> {
  await fn(); // warm-up (page faults, JIT)
  const ts: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(ts);
}

/** Seeded normal-ish weights, plus two perturbed copies (fine-tunes). */
function makeF32(n: number, seed: number, from?: Float32Array): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const u = (x / 4294967296 - 0.5) * 0.02;
    a[i] = from ? from[i] + u * 0.1 : u;
  }
  return a;
}

function toBF16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const v = u[i];
    out[i] = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
  }
  return out;
}

// ---- baselines ------------------------------------------------------------------------------

function jsAverageF32(a: Float32Array, b: Float32Array, out: Float32Array): void {
  for (let i = 0; i < a.length; i++) out[i] = 0.5 * a[i] + 0.5 * b[i];
}

const f32s = new Float32Array(1);
const u32s = new Uint32Array(f32s.buffer);
function jsAverageBF16(a: Uint16Array, b: Uint16Array, out: Uint16Array): void {
  // decode by shift, mean in f64, RNE back through f32 (the simple loop, double rounding and all)
  for (let i = 0; i < a.length; i++) {
    u32s[0] = a[i] << 16;
    const x = f32s[0];
    u32s[0] = b[i] << 16;
    f32s[0] = 0.5 * x + 0.5 * f32s[0];
    const v = u32s[0];
    out[i] = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
  }
}

interface Row {
  op: string;
  dtype: DType;
  elems: number;
  inputBytes: number;
  seconds: number;
  gbps: number;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const add = (op: string, dtype: DType, inputBytes: number, seconds: number) =>
    rows.push({ op, dtype, elems: ELEMS, inputBytes, seconds, gbps: inputBytes / seconds / 1e9 });

  const baseF = makeF32(ELEMS, 1);
  const oursF = makeF32(ELEMS, 2, baseF);
  const theirsF = makeF32(ELEMS, 3, baseF);

  for (const dtype of ['F32', 'BF16'] as const) {
    const conv = (a: Float32Array) => (dtype === 'F32' ? a : toBF16(a));
    const [b, o, t] = [baseF, oursF, theirsF].map(conv);
    const T = (d: ArrayBufferView): Tensor => tensor(dtype, [ELEMS], d);
    const base = T(b),
      ours = T(o),
      theirs = T(t);
    const nb = ours.data.byteLength;
    const out = new Uint8Array(nb);

    // Baseline 1: Buffer.copy of the same input bytes (ours and theirs) into one destination.
    const dst = Buffer.allocUnsafe(2 * nb);
    const srcO = Buffer.from(ours.data.buffer, ours.data.byteOffset, nb);
    const srcT = Buffer.from(theirs.data.buffer, theirs.data.byteOffset, nb);
    add(
      'copy (baseline)',
      dtype,
      2 * nb,
      await time(() => {
        srcO.copy(dst, 0);
        srcT.copy(dst, nb);
      }),
    );

    // Baseline 2: a straightforward JS loop average.
    if (dtype === 'F32') {
      const jo = new Float32Array(ELEMS);
      add(
        'js average (baseline)',
        dtype,
        2 * nb,
        await time(() => jsAverageF32(o as Float32Array, t as Float32Array, jo)),
      );
    } else {
      const jo = new Uint16Array(ELEMS);
      add(
        'js average (baseline)',
        dtype,
        2 * nb,
        await time(() => jsAverageBF16(o as Uint16Array, t as Uint16Array, jo)),
      );
    }

    add('coral average', dtype, 2 * nb, await time(() => mergeLinear([ours, theirs], [0.5, 0.5], { out })));
    add(
      'coral average f32acc',
      dtype,
      2 * nb,
      await time(() => mergeLinear([ours, theirs], [0.5, 0.5], { out, precision: 'f32' })),
    );
    add(
      'coral ties k=0.2',
      dtype,
      3 * nb,
      await time(() => mergeTaskVectors('ties', base, [ours, theirs], { density: 0.2, out })),
    );
    add(
      'coral ties k=1',
      dtype,
      3 * nb,
      await time(() => mergeTaskVectors('ties', base, [ours, theirs], { density: 1, out })),
    );
    add(
      'coral dare p=0.5',
      dtype,
      3 * nb,
      await time(() => mergeTaskVectors('dare', base, [ours, theirs], { drop: 0.5, seed: 1, out })),
    );
  }

  const cpu = os.cpus()[0]?.model ?? 'unknown';
  console.log(
    `# merge bench  node ${process.version}  cpu ${cpu} x${os.cpus().length}  ` +
      `kernel threads ${native.threads()}  UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 'default(4)'}  runs ${N}`,
  );
  console.log(
    `${'op'.padEnd(24)}${'dtype'.padEnd(7)}${'elements'.padStart(10)}${'input MB'.padStart(10)}` +
      `${'median ms'.padStart(11)}${'GB/s'.padStart(8)}${'vs copy'.padStart(9)}${'vs js'.padStart(8)}`,
  );
  for (const r of rows) {
    const copy = rows.find((x) => x.dtype === r.dtype && x.op.startsWith('copy'))!;
    const js = rows.find((x) => x.dtype === r.dtype && x.op.startsWith('js'))!;
    console.log(
      `${r.op.padEnd(24)}${r.dtype.padEnd(7)}${String(r.elems).padStart(10)}` +
        `${(r.inputBytes / 2 ** 20).toFixed(0).padStart(10)}${(r.seconds * 1e3).toFixed(1).padStart(11)}` +
        `${r.gbps.toFixed(2).padStart(8)}${(r.gbps / copy.gbps).toFixed(2).padStart(9)}${(r.gbps / js.gbps).toFixed(2).padStart(8)}`,
    );
  }
  console.log(JSON.stringify({ bench: 'merge', node: process.version, cpu, threads: native.threads(), runs: N, rows }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
