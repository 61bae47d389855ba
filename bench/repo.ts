/**
 * Repository ingest and checkout throughput and peak memory of the real
 * `coral` CLI (one process per command, timed by /usr/bin/time), against the
 * baselines a user would reach for, measured in the same run (issue #13).
 *
 * Workload per size: a safetensors file of 32 F32 tensors (512 MiB: 16 MiB
 * each; 2 GiB: 64 MiB each; --quick: 8 x 16 MiB = 128 MiB; --tensor-mib=N:
 * tensors of N MiB instead, as many as the size takes; --model=gpt2 or resnet50: the
 * tensor shapes, names and dtypes of those models' state dicts instead), trained-like
 * values (bench/lib/weights.ts), each tensor a differently scaled copy of one
 * generated block so nothing deduplicates; and a fine-tune of it (every
 * element moved by ~3e-3 relative, AdamW-like signs).
 *
 * Cases, each a median of `runs` fresh repositories:
 * - new model: `coral add` + `coral commit` of the base in an empty repository;
 * - fine-tune: `coral add` + `coral commit` of the fine-tune on top of it (deltas);
 * - checkout: `coral checkout -f <rev> -- model.safetensors` of either version
 *   (the file removed first), the fine-tune being base + delta.
 * Baselines: `zstd -3 -T2` of the file followed by an fsync of its output
 * (`sync <file>`), `zstd -d` of that output, `cp`, and the machine's fsync'd
 * write rate (`dd conv=fsync`) and cold-ish read rate.
 * Floors, measured in the same run:
 * - write: the same `cat … > f && sync f` of the bytes each side stored (zstd's
 *   output; the packs an add created): the disk's share of each figure;
 * - CPU: add + commit are two CLI processes, and `add` must compute the file's
 *   sha256 (one sequential pass: it is recorded in the tree, checked by checkout,
 *   and is the git and hub identity of the file). Two start-ups (`coral --version`)
 *   plus `openssl dgst -sha256` of the file bound any add + commit from below.
 * Peak RSS of every coral command is printed against the issue's limit:
 * 3 x the largest tensor + 256 MiB.
 *
 * Small files: add + commit of a 1 MiB safetensors checkpoint in-process
 * (Repository API), median of 15 after 3 warm-up rounds.
 *
 *   node --import tsx bench/repo.ts [--quick] [--size=512|2048|128] [--tensor-mib=N] [--model=gpt2|resnet50]
 *     [--small-only] [--bin=<coral.js>]
 *
 * `--bin` measures another build's CLI (e.g. an older checkout, for a before/after
 * comparison against the same-run baselines); the in-process small-file case always
 * uses this checkout's dist/ (run `npm run build:ts` first): the compiled package, as
 * `require('coral-native')` loads it. Not lib/*.ts through this script's TypeScript
 * loader, which adds its own cost to every dynamic import (the Repository methods load
 * their command modules that way: 3-7 ms per add + commit).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argFlag, emitJson, header, median, table } from './lib/harness';
import { trainedLike } from './lib/weights';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.resolve(
  process.argv.find((a) => a.startsWith('--bin='))?.slice(6) ?? path.join(ROOT, 'bin', 'coral.js'),
);
const MiB = 1 << 20;

interface Timed {
  seconds: number;
  maxRssBytes: number;
}

function timed(cmd: string, args: string[], cwd: string): Timed {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const last = r.stderr.trim().split('\n').pop()!.split(' ');
  return { seconds: Number(last[0]), maxRssBytes: Number(last[1]) * 1024 };
}

/** Several commands as one step: seconds add up, peak RSS is the largest. */
function seq(...steps: Timed[]): Timed {
  return {
    seconds: steps.reduce((s, t) => s + t.seconds, 0),
    maxRssBytes: Math.max(...steps.map((t) => t.maxRssBytes)),
  };
}

const coral = (cwd: string, ...args: string[]) => timed(process.execPath, [BIN, ...args], cwd);

/** One tensor of a generated checkpoint. */
interface Spec {
  name: string;
  dtype: 'F32' | 'I64';
  shape: number[];
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** `tensors` F32 tensors of `elems` elements each, named `layers.NNN.weight` (the default workload). */
function uniform(tensors: number, elems: number): Spec[] {
  return Array.from({ length: tensors }, (_, i) => ({
    name: `layers.${String(i).padStart(3, '0')}.weight`,
    dtype: 'F32' as const,
    shape: [1024, elems / 1024],
  }));
}

/** GPT-2 small's state dict (124M parameters, 148 tensors, the largest 147 MiB), transformers' names. */
function gpt2(): Spec[] {
  const f = (name: string, ...shape: number[]): Spec => ({ name, dtype: 'F32', shape });
  const ln = (n: string) => [f(`${n}.weight`, 768), f(`${n}.bias`, 768)];
  // transformers' Conv1D: weight [in, out], bias [out].
  const conv1d = (n: string, i: number, o: number) => [f(`${n}.weight`, i, o), f(`${n}.bias`, o)];
  const out = [f('wte.weight', 50257, 768), f('wpe.weight', 1024, 768)];
  for (let l = 0; l < 12; l++) {
    const p = `h.${l}.`;
    out.push(
      ...ln(p + 'ln_1'),
      ...conv1d(p + 'attn.c_attn', 768, 2304),
      ...conv1d(p + 'attn.c_proj', 768, 768),
      ...ln(p + 'ln_2'),
      ...conv1d(p + 'mlp.c_fc', 768, 3072),
      ...conv1d(p + 'mlp.c_proj', 3072, 768),
    );
  }
  out.push(...ln('ln_f'));
  return out;
}

/**
 * torchvision's ResNet-50 state dict (25.6M parameters, 320 tensors, most of them batch-norm
 * vectors and counters; the largest 8 MiB): many small tensors, as vision models have.
 */
function resnet50(): Spec[] {
  const out: Spec[] = [];
  const conv = (name: string, o: number, i: number, k: number) =>
    out.push({ name: `${name}.weight`, dtype: 'F32', shape: [o, i, k, k] });
  const bn = (name: string, c: number) => {
    for (const v of ['weight', 'bias', 'running_mean', 'running_var'])
      out.push({ name: `${name}.${v}`, dtype: 'F32', shape: [c] });
    out.push({ name: `${name}.num_batches_tracked`, dtype: 'I64', shape: [] });
  };
  conv('conv1', 64, 3, 7);
  bn('bn1', 64);
  let inC = 64;
  [3, 4, 6, 3].forEach((blocks, li) => {
    const w = 64 << li;
    for (let b = 0; b < blocks; b++) {
      const p = `layer${li + 1}.${b}`;
      conv(`${p}.conv1`, w, inC, 1);
      bn(`${p}.bn1`, w);
      conv(`${p}.conv2`, w, w, 3);
      bn(`${p}.bn2`, w);
      conv(`${p}.conv3`, 4 * w, w, 1);
      bn(`${p}.bn3`, 4 * w);
      if (b === 0) {
        conv(`${p}.downsample.0`, 4 * w, inC, 1);
        bn(`${p}.downsample.1`, 4 * w);
      }
      inC = 4 * w;
    }
  });
  out.push({ name: 'fc.weight', dtype: 'F32', shape: [1000, 2048] }, { name: 'fc.bias', dtype: 'F32', shape: [1000] });
  return out;
}

const specBytes = (t: Spec) => numel(t.shape) * (t.dtype === 'I64' ? 8 : 4);

function writeCheckpoint(file: string, specs: Spec[], seed: number, update: number): void {
  const rows = 1024;
  const most = Math.max(...specs.map((t) => numel(t.shape)));
  const block = trainedLike(rows, Math.ceil(most / rows), seed);
  const hdr: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const t of specs) {
    hdr[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + specBytes(t)] };
    off += specBytes(t);
  }
  let h = Buffer.from(JSON.stringify(hdr));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, len);
  fs.writeSync(fd, h);
  specs.forEach((spec, i) => {
    const elems = numel(spec.shape);
    if (spec.dtype === 'I64') {
      // A batch-norm step counter: the fine-tune trained on.
      fs.writeSync(fd, new Uint8Array(BigInt64Array.of(update ? 120_000n : 100_000n).buffer));
      return;
    }
    const t = new Float32Array(elems);
    const scale = 1 + 0.013 * i;
    for (let j = 0; j < elems; j++) t[j] = block[j] * scale;
    if (update) {
      // AdamW-like step: sign-ish updates of relative size `update` (of a typical weight of the row).
      for (let j = 0; j < elems; j++)
        t[j] += update * (((j * 2654435761) >>> 0) & 1 ? 1 : -1) * Math.abs(block[(j * 7) % elems]) * scale;
    }
    fs.writeSync(fd, new Uint8Array(t.buffer));
  });
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

/** The pack files under a repository's store, by name. */
function packs(repo: string): Set<string> {
  const dir = path.join(repo, '.coral', 'objects', 'packs');
  return new Set(
    fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.h5'))
      .map((f) => path.join(dir, f)),
  );
}

/** Seconds to write these files' bytes (in the page cache) to a new file and fsync it: the disk's share. */
function writeFloor(files: string[], work: string): number {
  const out = path.join(work, 'floor.bin');
  const list = files.map((f) => `"${f}"`).join(' ');
  spawnSync('sh', ['-c', `cat ${list} > /dev/null`]); // packs are written O_DIRECT: bring them into the cache first
  const s = timed('sh', ['-c', `cat ${list} > "${out}" && sync "${out}"`], work).seconds;
  fs.rmSync(out);
  return s;
}

/** Drops this file's pages from the page cache when possible (so reads hit the disk); best effort. */
function dropCache(file: string): void {
  spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

interface SizeResult {
  label: string;
  fileBytes: number;
  tensorBytes: number;
  limitBytes: number;
  rows: Array<Record<string, string | number>>;
  json: Record<string, number>;
}

function runSize(work: string, specs: Spec[], label: string, runs: number): SizeResult {
  const fileBytes = specs.reduce((a, t) => a + specBytes(t), 0);
  const tensorBytes = Math.max(...specs.map(specBytes));
  const limitBytes = 3 * tensorBytes + 256 * MiB;
  const f1 = path.join(work, 'base.safetensors');
  const f2 = path.join(work, 'tuned.safetensors');
  writeCheckpoint(f1, specs, 11, 0);
  writeCheckpoint(f2, specs, 11, 3e-3);

  const cp: number[] = [];
  const dd: number[] = [];
  const rd: number[] = [];
  const zc: number[] = [];
  const zd: number[] = [];
  const zFloor: number[] = [];
  const newFloor: number[] = [];
  const ftFloor: number[] = [];
  const sha: number[] = [];
  const boot: number[] = [];
  let zBytes = 0;
  const addNew: Timed[] = [];
  const addFt: Timed[] = [];
  const coNew: Timed[] = [];
  const coFt: Timed[] = [];
  let stored = 0;
  for (let r = 0; r < runs; r++) {
    const copy = path.join(work, 'copy.bin');
    cp.push(timed('cp', [f1, copy], work).seconds);
    fs.rmSync(copy);
    // The machine's fsync'd sequential write rate (of as many bytes as the file).
    dd.push(timed('dd', [`if=${f1}`, `of=${copy}`, 'bs=16M', 'conv=fsync', 'status=none'], work).seconds);
    dropCache(copy);
    rd.push(timed('dd', [`if=${copy}`, 'of=/dev/null', 'bs=16M', 'status=none'], work).seconds);
    fs.rmSync(copy);
    const zst = path.join(work, 'copy.zst');
    const zout = path.join(work, 'copy.out');
    zc.push(timed('sh', ['-c', `zstd -q -f -3 -T2 "${f2}" -o "${zst}" && sync "${zst}"`], work).seconds);
    zBytes = fs.statSync(zst).size;
    zd.push(timed('zstd', ['-q', '-f', '-d', zst, '-o', zout], work).seconds);
    fs.rmSync(zout);
    sha.push(timed('openssl', ['dgst', '-sha256', f2], work).seconds);
    boot.push(timed(process.execPath, [BIN, '--version'], work).seconds);

    const repo = path.join(work, `repo${r}`);
    fs.mkdirSync(repo);
    execFileSync(process.execPath, [BIN, 'init'], { cwd: repo });
    const model = path.join(repo, 'model.safetensors');
    fs.copyFileSync(f1, model);
    addNew.push(seq(coral(repo, 'add', 'model.safetensors'), coral(repo, 'commit', '-m', 'base')));
    const basePacks = packs(repo);
    fs.copyFileSync(f2, model);
    addFt.push(seq(coral(repo, 'add', 'model.safetensors'), coral(repo, 'commit', '-m', 'tuned')));
    const ftPacks = [...packs(repo)].filter((f) => !basePacks.has(f));
    // The three floors back to back, after the coral commands, so each meets the same disk state.
    zFloor.push(writeFloor([zst], work));
    newFloor.push(writeFloor([...basePacks], work));
    ftFloor.push(writeFloor(ftPacks, work));
    fs.rmSync(zst);
    fs.rmSync(model);
    coFt.push(coral(repo, 'checkout', '-f', 'main', '--', 'model.safetensors'));
    fs.rmSync(model);
    coNew.push(coral(repo, 'checkout', '-f', 'main~1', '--', 'model.safetensors'));
    const st = JSON.parse(execFileSync(process.execPath, [BIN, 'stats', '--json'], { cwd: repo, encoding: 'utf8' }));
    stored = st.storedBytes;
    fs.rmSync(repo, { recursive: true, force: true });
  }
  fs.rmSync(f1);
  fs.rmSync(f2);
  const gb = (s: number) => fileBytes / s / 1e9;
  const med = (xs: Timed[], k: keyof Timed) => median(xs.map((x) => x[k]));
  const zcS = median(zc);
  const zdS = median(zd);
  const cpuFloor = 2 * median(boot) + median(sha);
  const row = (op: string, s: number, rss: number, vs: string) => ({
    op,
    'median s': s,
    'GB/s': gb(s),
    'peak RSS MiB': rss / MiB,
    'RSS / limit': rss ? rss / limitBytes : NaN,
    ratio: vs,
  });
  const rows = [
    row('cp (baseline)', median(cp), 0, ''),
    row('dd conv=fsync write (machine)', median(dd), 0, ''),
    row('dd read, cache dropped (machine)', median(rd), 0, ''),
    row('zstd -3 -T2 + fsync (baseline)', zcS, 0, ''),
    row('zstd -d (baseline)', zdS, 0, ''),
    row('write floor: zstd output', median(zFloor), 0, `${(median(zFloor) / zcS).toFixed(2)} of zstd + fsync`),
    row('write floor: new-model packs', median(newFloor), 0, `at best ${(zcS / median(newFloor)).toFixed(2)}x zstd`),
    row('write floor: fine-tune packs', median(ftFloor), 0, `at best ${(zcS / median(ftFloor)).toFixed(2)}x zstd`),
    row('sha256 of the file (openssl)', median(sha), 0, ''),
    row('coral start-up (--version)', median(boot), 0, ''),
    row('CPU floor: 2 start-ups + sha256', cpuFloor, 0, `at best ${(zcS / cpuFloor).toFixed(2)}x zstd`),
    row(
      'coral add+commit, new model',
      med(addNew, 'seconds'),
      med(addNew, 'maxRssBytes'),
      `${(zcS / med(addNew, 'seconds')).toFixed(2)}x zstd (target 1.5x)`,
    ),
    row(
      'coral add+commit, fine-tune',
      med(addFt, 'seconds'),
      med(addFt, 'maxRssBytes'),
      `${(zcS / med(addFt, 'seconds')).toFixed(2)}x zstd (target 2x)`,
    ),
    row(
      'coral checkout, new model',
      med(coNew, 'seconds'),
      med(coNew, 'maxRssBytes'),
      `${(zdS / med(coNew, 'seconds')).toFixed(2)}x zstd -d (target 1x)`,
    ),
    row(
      'coral checkout, fine-tune',
      med(coFt, 'seconds'),
      med(coFt, 'maxRssBytes'),
      `${(zdS / med(coFt, 'seconds')).toFixed(2)}x zstd -d (target 1x)`,
    ),
  ];
  const peak = Math.max(
    med(addNew, 'maxRssBytes'),
    med(addFt, 'maxRssBytes'),
    med(coNew, 'maxRssBytes'),
    med(coFt, 'maxRssBytes'),
  );
  return {
    label,
    fileBytes,
    tensorBytes,
    limitBytes,
    rows,
    json: {
      fileBytes,
      tensorBytes,
      runs,
      cpGBps: gb(median(cp)),
      ddFsyncGBps: gb(median(dd)),
      readGBps: gb(median(rd)),
      zstdFsyncGBps: gb(zcS),
      zstdDecodeGBps: gb(zdS),
      zstdBytes: zBytes,
      writeFloorZstdS: median(zFloor),
      writeFloorNewS: median(newFloor),
      writeFloorFineTuneS: median(ftFloor),
      addNewBestOverZstd: zcS / median(newFloor),
      addFineTuneBestOverZstd: zcS / median(ftFloor),
      sha256S: median(sha),
      startupS: median(boot),
      addBestOverZstdCpu: zcS / cpuFloor,
      addNewGBps: gb(med(addNew, 'seconds')),
      addFineTuneGBps: gb(med(addFt, 'seconds')),
      checkoutNewGBps: gb(med(coNew, 'seconds')),
      checkoutFineTuneGBps: gb(med(coFt, 'seconds')),
      addNewOverZstd: zcS / med(addNew, 'seconds'),
      addFineTuneOverZstd: zcS / med(addFt, 'seconds'),
      checkoutNewOverZstdD: zdS / med(coNew, 'seconds'),
      checkoutFineTuneOverZstdD: zdS / med(coFt, 'seconds'),
      peakRssBytes: peak,
      rssLimitBytes: limitBytes,
      peakOverLimit: peak / limitBytes,
      storedBytes: stored,
      ratio: (2 * fileBytes) / stored,
    },
  };
}

/** add + commit of a 1 MiB checkpoint in-process (the fixed costs of a small ingest). */
async function smallFiles(work: string): Promise<{ medianMs: number; p90Ms: number }> {
  const { Repository } = await import(path.join(ROOT, 'dist', 'index.js'));
  const dir = path.join(work, 'small');
  const repo = await Repository.init(dir);
  const file = path.join(dir, 'ckpt.safetensors');
  const elems = 256 * 1024; // 1 MiB of F32 in 4 tensors
  const block = trainedLike(256, 1024, 5);
  // Every round's bytes are made before timing starts, so the garbage of making them is not
  // collected inside a timed add.
  const rounds = Array.from({ length: 18 }, (_, round) => {
    const hdr: Record<string, unknown> = {};
    for (let i = 0; i < 4; i++)
      hdr[`w${i}`] = { dtype: 'F32', shape: [64, 1024], data_offsets: [i * elems, (i + 1) * elems] };
    let h = Buffer.from(JSON.stringify(hdr));
    h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const t = Float32Array.from(block, (v, j) => v * (1 + 1e-3 * Math.sin(round + j)));
    return Buffer.concat([len, h, Buffer.from(t.buffer)]);
  });
  const times: number[] = [];
  for (let round = 0; round < rounds.length; round++) {
    fs.writeFileSync(file, rounds[round]);
    const t0 = process.hrtime.bigint();
    await repo.add([file]);
    await repo.commit({ message: `step ${round}` });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (round >= 3) times.push(ms);
  }
  await repo.close();
  const s = [...times].sort((a, b) => a - b);
  return { medianMs: median(times), p90Ms: s[Math.floor(s.length * 0.9)] };
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const sizeArg = process.argv.find((a) => a.startsWith('--size='))?.slice(7);
  const tensorMiB = Number(process.argv.find((a) => a.startsWith('--tensor-mib='))?.slice(13) ?? 0);
  if (!(tensorMiB >= 0)) throw new Error('--tensor-mib= takes a size in MiB');
  const model = process.argv.find((a) => a.startsWith('--model='))?.slice(8);
  if (model !== undefined && model !== 'gpt2' && model !== 'resnet50')
    throw new Error('--model= takes gpt2 or resnet50');
  const sizes = sizeArg ? sizeArg.split(',').map(Number) : quick ? [128] : [512, 2048];
  const runs = 3;
  header(
    `repo: ingest and checkout through the coral CLI (issue #13), ${model ? `model ${model}` : `sizes ${sizes.join(', ')} MiB`}, ${runs} runs`,
  );
  console.log(
    `# coral CLI: ${BIN}; load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-repo-'));
  try {
    if (!argFlag('small-only')) {
      const cases: Array<{ specs: Spec[]; label: string; json: Record<string, string | number> }> = [];
      if (model) {
        const specs = model === 'gpt2' ? gpt2() : resnet50();
        const bytes = specs.reduce((a, t) => a + specBytes(t), 0);
        cases.push({
          specs,
          label: `${model}: ${(bytes / MiB).toFixed(0)} MiB in ${specs.length} tensors`,
          json: { model, sizeMiB: bytes / MiB },
        });
      } else {
        for (const mib of sizes) {
          const tensors = tensorMiB ? Math.max(1, Math.round(mib / tensorMiB)) : mib === 128 ? 8 : 32;
          const elems = ((mib * MiB) / tensors / 4) | 0;
          const label = `${mib} MiB (${tensors} x ${(elems * 4) / MiB} MiB)`;
          cases.push({ specs: uniform(tensors, elems), label, json: { sizeMiB: mib } });
        }
      }
      for (const c of cases) {
        const r = runSize(work, c.specs, c.label, runs);
        console.log(
          `\n## ${r.label}; RSS limit 3 x ${(r.tensorBytes / MiB).toFixed(2)} MiB + 256 MiB = ${(r.limitBytes / MiB).toFixed(0)} MiB`,
        );
        table(r.rows);
        console.log(
          `stored ${(r.json.storedBytes / MiB).toFixed(0)} MiB for two versions; zstd -3 stores the fine-tune in ${(r.json.zstdBytes / MiB).toFixed(0)} MiB`,
        );
        emitJson('repo', { ...c.json, ...r.json });
      }
    }
    const small = await smallFiles(work);
    console.log(
      `\nadd + commit of a 1 MiB checkpoint in-process: median ${small.medianMs.toFixed(1)} ms, p90 ${small.p90Ms.toFixed(1)} ms (target <= 30 ms)`,
    );
    emitJson('repo-small', small);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
