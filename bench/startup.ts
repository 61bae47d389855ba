/**
 * CLI start-up: whole `coral` processes (bin/coral.js over dist/) that do little work, against the
 * floor of the same run: `node -e 0` (a Node process that loads nothing) and `git status` in a git
 * repository of the same files.
 *   coral --version          no repository, no library
 *   coral status             a small repository (two files, a few commits)
 *   coral log -n 5           the same repository
 *   coral status, no cache   with the compile cache off (CORAL_COMPILE_CACHE=0; lib/cli/compile-cache.ts)
 *   coral status, 1st run    with an empty compile cache (its own, emptied before each run), which it writes
 * The compile caches of the runs live in the bench's temporary directory, not the user's.
 * Each command runs `runs` times (11; --quick 5), interleaved with the others, and the median wall
 * time is printed with its ratio to `node -e 0` (and, for status, to `git status`).
 *
 * A/B: `--against <checkout>` (another checkout with its own built dist/, e.g. a worktree of main)
 * runs every coral command of that checkout too, in alternating pairs with this one in the same
 * sitting, and prints both medians and this/that.
 *
 *   npm run build:ts && node --import tsx bench/startup.ts [--quick] [--against /path/to/checkout]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argFlag, emitJson, header, median, table } from './lib/harness';

const HERE = path.resolve(__dirname, '..');

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Wall seconds of one process run to completion (output discarded); throws when it fails. */
function wall(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}: ${String(r.stderr)}`);
  return s;
}

/** A small safetensors file: one F32 tensor of `n` elements. */
function smallModel(file: string, n: number, seed: number): void {
  const hdr = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] } }));
  const pad = Buffer.alloc((8 - (hdr.length % 8)) % 8, 0x20);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hdr.length + pad.length));
  const data = new Float32Array(n).map((_, i) => Math.sin(i * 0.01 + seed));
  fs.writeFileSync(file, Buffer.concat([len, hdr, pad, Buffer.from(data.buffer)]));
}

function main(): void {
  const quick = argFlag('quick');
  const runs = quick ? 5 : 11;
  const other = argValue('against');
  const bins: Array<{ name: string; bin: string }> = [{ name: 'this', bin: path.join(HERE, 'bin', 'coral.js') }];
  if (other) bins.push({ name: 'against', bin: path.join(path.resolve(other), 'bin', 'coral.js') });
  for (const b of bins)
    if (!fs.existsSync(path.join(path.dirname(b.bin), '..', 'dist', 'cli', 'main.js')))
      throw new Error(`${b.bin}: no dist/ next to it (npm run build:ts there first)`);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-startup-'));
  try {
    header(`startup: whole coral processes against node -e 0 and git status (${runs} runs each, medians)`);
    // The same small history in a coral and a git repository.
    const repo = path.join(work, 'coral');
    const gitRepo = path.join(work, 'git');
    const env = { ...process.env, CORAL_COMPILE_CACHE: path.join(work, 'compile-cache') };
    const coldDir = path.join(work, 'compile-cache-emptied');
    const coral = (...a: string[]) => execFileSync(process.execPath, [bins[0].bin, ...a], { cwd: repo, env });
    const git = (...a: string[]) =>
      execFileSync('git', ['-c', 'user.name=b', '-c', 'user.email=b@b', ...a], { cwd: gitRepo });
    fs.mkdirSync(repo);
    fs.mkdirSync(gitRepo);
    coral('init');
    git('init', '-q');
    for (let k = 0; k < 6; k++) {
      for (const d of [repo, gitRepo]) {
        smallModel(path.join(d, 'model.safetensors'), 4096, k);
        fs.writeFileSync(path.join(d, 'notes.txt'), `step ${k}\n`);
      }
      coral('add', 'model.safetensors', 'notes.txt');
      coral('commit', '-m', `step ${k}`);
      git('add', '-A');
      git('commit', '-q', '-m', `step ${k}`);
    }

    const cases: Array<{ label: string; key: string; args: string[]; env?: NodeJS.ProcessEnv; cold?: boolean }> = [
      { label: 'coral --version', key: 'version', args: ['--version'] },
      { label: 'coral status', key: 'status', args: ['status'] },
      { label: 'coral log -n 5', key: 'log', args: ['log', '-n', '5'] },
      {
        label: 'coral status, no cache',
        key: 'statusNoCache',
        args: ['status'],
        env: { ...env, CORAL_COMPILE_CACHE: '0' },
      },
      {
        label: 'coral status, 1st run',
        key: 'statusFirstRun',
        args: ['status'],
        env: { ...env, CORAL_COMPILE_CACHE: coldDir },
        cold: true,
      },
    ];
    const runCase = (bin: string, c: (typeof cases)[number]): number => {
      if (c.cold) fs.rmSync(coldDir, { recursive: true, force: true });
      return wall(process.execPath, [bin, ...c.args], repo, c.env ?? env);
    };
    const times = new Map<string, number[]>();
    const push = (k: string, s: number) => (times.get(k) ?? times.set(k, []).get(k)!).push(s);
    // Warm the page cache and the compile caches once, unmeasured.
    wall(process.execPath, ['-e', '0'], repo);
    wall('git', ['status'], gitRepo);
    for (const b of bins) for (const c of cases) runCase(b.bin, c);
    for (let r = 0; r < runs; r++) {
      push('node -e 0', wall(process.execPath, ['-e', '0'], repo));
      push('git status', wall('git', ['status'], gitRepo));
      for (const c of cases) {
        // Alternate which checkout goes first, so neither always runs right after the other.
        const order = r % 2 ? [...bins].reverse() : bins;
        for (const b of order) push(`${b.name}:${c.label}`, runCase(b.bin, c));
      }
    }

    const node0 = median(times.get('node -e 0')!);
    const gitStatus = median(times.get('git status')!);
    const rows: Array<Record<string, string | number>> = [
      {
        command: 'node -e 0',
        ms: node0 * 1e3,
        'vs node': 1,
        'vs git status': NaN,
        against_ms: NaN,
        'this/against': NaN,
      },
      {
        command: 'git status',
        ms: gitStatus * 1e3,
        'vs node': gitStatus / node0,
        'vs git status': 1,
        against_ms: NaN,
        'this/against': NaN,
      },
    ];
    const json: Record<string, unknown> = { runs, nodeMs: node0 * 1e3, gitStatusMs: gitStatus * 1e3 };
    for (const c of cases) {
      const mine = median(times.get(`this:${c.label}`)!);
      const theirs = other ? median(times.get(`against:${c.label}`)!) : NaN;
      rows.push({
        command: c.label,
        ms: mine * 1e3,
        'vs node': mine / node0,
        'vs git status': c.args[0] === 'status' ? mine / gitStatus : NaN,
        against_ms: theirs * 1e3,
        'this/against': mine / theirs,
      });
      json[c.key] = {
        ms: mine * 1e3,
        vsNode: mine / node0,
        ...(other ? { againstMs: theirs * 1e3, vsAgainst: mine / theirs } : {}),
      };
    }
    table(rows);
    if (other) console.log(`against: ${path.resolve(other)}`);
    emitJson('startup', json);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main();
