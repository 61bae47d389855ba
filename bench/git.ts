/**
 * The git extension on a fine-tune history: a 256 MiB safetensors checkpoint
 * (16 F32 tensors of 16 MiB, trained-like values) committed 10 times (the
 * base, then 9 fine-tune steps: 2 tensors frozen, 1 embedding-like tensor
 * with 1% of its elements rewritten, the rest a dense AdamW-like step of
 * relative size 1e-3), in three repositories in the same run:
 *   - coral:   `coral git install --local` + `coral git track '*.safetensors'`
 *   - git-lfs: `git lfs install --local` + `git lfs track '*.safetensors'`
 *   - git:     plain git
 * Measured: `git add` + `git commit` per commit (median over the 9 fine-tune
 * commits, and the first commit alone), `git checkout` of the first commit
 * from the last and back (median of 3 round trips), and the repository size
 * (`.git`, which holds coral's payload store and git-lfs's objects) at the end.
 * Targets: size <= 0.6x git-lfs, add time <= git-lfs's.
 *
 *   npx tsx bench/git.ts [--quick] [--chain N]
 *     --quick: 64 MiB, 5 commits; --chain N: git config coral.maxChainLength N in the coral repository
 *     (the update-chain bound: each fine-tune add decodes the previous version through its chain)
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argFlag, emitJson, header, median, table } from './lib/harness';
import { fineTune, sparseUpdate, trainedLike } from './lib/weights';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'coral.js');

type Contender = 'coral' | 'git-lfs' | 'git';
const CONTENDERS: Contender[] = ['coral', 'git-lfs', 'git'];

/** CPU seconds (user + sys, the command and every child it waited for) of the last `run`. */
let lastCpu = 0;

/** Runs a command under /usr/bin/time; returns wall seconds (CPU seconds in `lastCpu`). */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', 'CPU %U %S', cmd, ...args], {
    cwd,
    env,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const m = /CPU ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  lastCpu = m ? Number(m[1]) + Number(m[2]) : NaN;
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function duBytes(p: string): number {
  let n = 0;
  for (const e of fs.readdirSync(p, { withFileTypes: true })) {
    const q = path.join(p, e.name);
    if (e.isDirectory()) n += duBytes(q);
    else if (e.isFile()) n += fs.statSync(q).size;
  }
  return n;
}

function writeSafetensors(file: string, names: string[], shape: [number, number], tensors: Float32Array[]): void {
  const hdr: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const bytes = shape[0] * shape[1] * 4;
  names.forEach((n, i) => {
    hdr[n] = { dtype: 'F32', shape, data_offsets: [i * bytes, (i + 1) * bytes] };
  });
  let h = Buffer.from(JSON.stringify(hdr));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, len);
  fs.writeSync(fd, h);
  for (const t of tensors) fs.writeSync(fd, new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  fs.closeSync(fd);
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const chainArg = process.argv.indexOf('--chain');
  const chain = chainArg > 0 ? Number(process.argv[chainArg + 1]) : undefined;
  if (chain !== undefined && !(Number.isInteger(chain) && chain >= 0)) throw new Error('--chain takes a chain length');
  const nTensors = 16;
  const shape: [number, number] = quick ? [512, 2048] : [1024, 4096];
  const commits = quick ? 5 : 10;
  const fileBytes = nTensors * shape[0] * shape[1] * 4;
  header(
    `git: ${commits}-commit fine-tune history of a ${(fileBytes / 2 ** 20).toFixed(0)} MiB checkpoint; coral vs git-lfs vs plain git`,
  );
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-git-'));
  const home = path.join(work, 'home');
  fs.mkdirSync(home);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'b',
    GIT_AUTHOR_EMAIL: 'b@b',
    GIT_COMMITTER_NAME: 'b',
    GIT_COMMITTER_EMAIL: 'b@b',
    NO_COLOR: '1',
  };
  try {
    const repos = new Map<Contender, string>();
    for (const c of CONTENDERS) {
      const dir = path.join(work, c);
      run('git', ['init', '-q', '-b', 'main', dir], work, env);
      if (c === 'coral') {
        run(process.execPath, [BIN, 'git', 'install', '--local'], dir, env);
        run(process.execPath, [BIN, 'git', 'track', '*.safetensors'], dir, env);
        if (chain !== undefined) run('git', ['config', 'coral.maxChainLength', String(chain)], dir, env);
      } else if (c === 'git-lfs') {
        run('git', ['lfs', 'install', '--local'], dir, env);
        run('git', ['lfs', 'track', '*.safetensors'], dir, env);
      }
      fs.writeFileSync(path.join(dir, 'README'), 'bench\n');
      run('git', ['add', '-A'], dir, env);
      run('git', ['commit', '-q', '-m', 'init'], dir, env);
      repos.set(c, dir);
    }
    const names = Array.from({ length: nTensors }, (_, i) => `layers.${String(i).padStart(2, '0')}.weight`);
    let w = names.map((_, i) => trainedLike(shape[0], shape[1], 1000 + i));
    const addTimes = new Map<Contender, number[]>(CONTENDERS.map((c) => [c, []]));
    const addCpu = new Map<Contender, number[]>(CONTENDERS.map((c) => [c, []]));
    const src = path.join(work, 'version.safetensors');
    for (let k = 0; k < commits; k++) {
      if (k > 0)
        w = w.map((t, i) =>
          i < 2 ? t : i === 2 ? sparseUpdate(t, 0.01, 50 * k + i) : fineTune(t, 1e-3, 100 * k + i, shape[1]),
        );
      writeSafetensors(src, names, shape, w);
      for (const c of CONTENDERS) {
        const dir = repos.get(c)!;
        fs.copyFileSync(src, path.join(dir, 'model.safetensors'));
        const tAdd = run('git', ['add', 'model.safetensors'], dir, env);
        let cpu = lastCpu;
        const t = tAdd + run('git', ['commit', '-q', '-m', `v${k}`], dir, env);
        cpu += lastCpu;
        addTimes.get(c)!.push(t);
        addCpu.get(c)!.push(cpu);
      }
      process.stderr.write(`commit ${k + 1}/${commits}\n`);
    }
    const rows: Array<Record<string, string | number>> = [];
    const result: Record<string, Record<string, number>> = {};
    for (const c of CONTENDERS) {
      const dir = repos.get(c)!;
      const co: number[] = [];
      for (let r = 0; r < 3; r++) {
        co.push(run('git', ['checkout', '-q', `HEAD~${commits - 1}`], dir, env));
        run('git', ['checkout', '-q', 'main'], dir, env);
      }
      const size = duBytes(path.join(dir, '.git'));
      const adds = addTimes.get(c)!;
      result[c] = {
        firstAddS: adds[0],
        addS: median(adds.slice(1)),
        addCpuS: median(addCpu.get(c)!.slice(1)),
        checkoutS: median(co),
        repoBytes: size,
      };
      rows.push({
        contender: c,
        'first add+commit s': adds[0],
        'fine-tune add+commit s (median)': median(adds.slice(1)),
        'its CPU s (median)': median(addCpu.get(c)!.slice(1)),
        'checkout old s (median)': median(co),
        'repo MiB': size / 2 ** 20,
      });
    }
    table(rows);
    const sizeRatio = result.coral.repoBytes / result['git-lfs'].repoBytes;
    const addRatio = result.coral.addS / result['git-lfs'].addS;
    console.log(
      `ratio repo size coral / git-lfs: ${sizeRatio.toFixed(3)}x (target <= 0.6); coral / git: ${(result.coral.repoBytes / result.git.repoBytes).toFixed(3)}x`,
    );
    console.log(`ratio fine-tune add+commit time coral / git-lfs: ${addRatio.toFixed(3)}x (target <= 1)`);
    console.log(
      `ratio fine-tune add+commit CPU time coral / git-lfs: ${(result.coral.addCpuS / result['git-lfs'].addCpuS).toFixed(3)}x`,
    );
    console.log(
      `ratio checkout time coral / git-lfs: ${(result.coral.checkoutS / result['git-lfs'].checkoutS).toFixed(3)}x`,
    );
    emitJson('git', {
      fileBytes,
      commits,
      quick,
      ...(chain !== undefined ? { maxChainLength: Number(chain) } : {}),
      ...Object.fromEntries(CONTENDERS.map((c) => [c, result[c]])),
      sizeRatioVsLfs: sizeRatio,
      addRatioVsLfs: addRatio,
    });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
