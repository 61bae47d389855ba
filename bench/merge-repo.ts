/**
 * Repository-level merge throughput: `repo.merge` (classify, decode, merge,
 * encode + store, re-assemble, write the worktree file, index) for `average`
 * and `ties` on a checkpoint of large F32 tensors, against baselines measured
 * in the same run: the bare numeric kernel on the same tensors (in memory),
 * and `checkout` of the same checkpoint (decode + write, no merge).
 *
 *   npx tsx bench/merge-repo.ts               # 2 x 16M-element F32 tensors (128 MiB per version)
 *   npx tsx bench/merge-repo.ts --elems 1048576
 *
 * Throughput = bytes of the merged checkpoint / wall time (one run each: a
 * second run would deduplicate against the first result's stored objects).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSafetensors } from '../lib/formats/safetensors';
import { mergeLinear, mergeTaskVectors } from '../lib/merge/numeric';
import { Repository } from '../lib/repository';
import { tensor, type Tensor } from '../lib/tensor/tensor';

const args = process.argv.slice(2);
const argVal = (k: string) => {
  const i = args.indexOf(k);
  return i >= 0 ? Number(args[i + 1]) : undefined;
};
const ELEMS = argVal('--elems') ?? 16 << 20;
const NT = 2;

function rand(n: number, seed: number, scale = 0.05): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = (x / 4294967296 - 0.5) * scale;
  }
  return a;
}
function derive(a: Float32Array, seed: number): Float32Array {
  const d = rand(a.length, seed, 0.002);
  return Float32Array.from(a, (v, i) => v + d[i]);
}
const T = (a: Float32Array): Tensor => tensor('F32', [a.length], new Uint8Array(a.buffer));

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  return [Number(process.hrtime.bigint() - t0) / 1e9, r];
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-merge-'));
  process.env.CORAL_AUTHOR_NAME ??= 'bench';
  process.env.CORAL_AUTHOR_EMAIL ??= 'bench@example.com';
  try {
    const repo = await Repository.init(dir);
    const F = path.join(dir, 'model.safetensors');
    const base = Array.from({ length: NT }, (_, i) => rand(ELEMS, 11 + i));
    const ours = base.map((b, i) => derive(b, 100 + i));
    const theirs = base.map((b, i) => derive(b, 200 + i));
    const save = async (ts: Float32Array[]) =>
      writeSafetensors(F, Object.fromEntries(ts.map((t, i) => [`layer${i}.weight`, T(t)])));
    await save(base);
    await repo.add([F]);
    const b0 = await repo.commit({ message: 'base' });
    await save(ours);
    await repo.add([F]);
    await repo.commit({ message: 'ours' });
    await repo.createBranch('feat', b0);
    await repo.checkout('feat');
    await save(theirs);
    await repo.add([F]);
    await repo.commit({ message: 'theirs' });
    await repo.checkout('main');
    const bytes = NT * ELEMS * 4;

    const rows: Array<{ what: string; seconds: number; gbps: number }> = [];
    const row = (what: string, s: number) => rows.push({ what, seconds: s, gbps: bytes / s / 1e9 });

    // Baselines in the same run.
    const [kAvg] = await timed(async () => {
      for (let i = 0; i < NT; i++) await mergeLinear([T(ours[i]), T(theirs[i])], [0.5, 0.5]);
    });
    row('kernel average (in memory)', kAvg);
    const [kTies] = await timed(async () => {
      for (let i = 0; i < NT; i++)
        await mergeTaskVectors('ties', T(base[i]), [T(ours[i]), T(theirs[i])], { density: 0.2 });
    });
    row('kernel ties k=0.2 (in memory)', kTies);
    await repo.close();
    const fresh = await Repository.open(dir); // cold object cache, like a CLI run
    const [co] = await timed(() => fresh.checkout('feat'));
    row('checkout (decode + write file)', co);
    await fresh.checkout('main');
    await fresh.close();

    for (const [name, opts] of [
      ['average', { strategy: 'average' as const }],
      ['ties', { strategy: 'ties' as const, density: 0.2 }],
    ] as const) {
      const r = await Repository.open(dir);
      const [s, rep] = await timed(() => r.merge('feat', { ...opts, noCommit: true }));
      if (rep.resolved.length !== NT) throw new Error(`expected ${NT} resolved tensors, got ${rep.resolved.length}`);
      row(`repo.merge ${name}${name === 'ties' ? ' k=0.2' : ''} (--no-commit)`, s);
      await r.mergeAbort();
      await r.close();
    }
    console.log(
      `merge-repo: ${NT} x ${ELEMS} F32 elements (${(bytes / 2 ** 20).toFixed(0)} MiB per version), ${os.cpus().length} cpus`,
    );
    for (const x of rows)
      console.log(
        `  ${x.what.padEnd(38)} ${x.seconds.toFixed(3).padStart(8)} s  ${x.gbps.toFixed(3).padStart(7)} GB/s`,
      );
    console.log(JSON.stringify({ bench: 'merge-repo', elems: ELEMS, tensors: NT, rows }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
