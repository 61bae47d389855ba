// Helpers for the git extension tests: a temp HOME with the real git binary,
// a repository with coral's filter installed, and seeded safetensors checkpoints.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { serializeSafetensors } from '../../lib/formats/safetensors';
import { tensor, type Tensor } from '../../lib/tensor/tensor';
import { xorshift32 } from '../store/helpers';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CORAL_BIN = path.join(ROOT, 'bin', 'coral.js');

export interface GitEnv {
  root: string;
  env: NodeJS.ProcessEnv;
  log: string;
}

/** A temp directory with its own HOME (git's global config) and GIT_CONFIG_NOSYSTEM. */
export function gitEnv(prefix = 'coral-git-'): GitEnv {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const home = path.join(root, 'home');
  fs.mkdirSync(home);
  const log = path.join(root, 'filter.log');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Test',
    GIT_AUTHOR_EMAIL: 't@example.com',
    GIT_COMMITTER_NAME: 'Test',
    GIT_COMMITTER_EMAIL: 't@example.com',
    GIT_TERMINAL_PROMPT: '0',
    NO_COLOR: '1',
    CORAL_GIT_LOG: log,
  };
  delete env.GIT_DIR;
  delete env.GIT_WORK_TREE;
  delete env.GIT_INDEX_FILE;
  return { root, env, log };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(e: GitEnv, cwd: string, cmd: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(cmd, args, { cwd, env: { ...e.env, ...extraEnv }, encoding: 'utf8', maxBuffer: 1 << 28 });
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

/** Runs git and fails with its output when it exits non-zero. */
export function git(e: GitEnv, cwd: string, ...args: string[]): string {
  const r = run(e, cwd, 'git', args);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export function coral(e: GitEnv, cwd: string, ...args: string[]): Run {
  return run(e, cwd, process.execPath, [CORAL_BIN, ...args]);
}

export function coralOk(e: GitEnv, cwd: string, ...args: string[]): string {
  const r = coral(e, cwd, ...args);
  if (r.code !== 0) throw new Error(`coral ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A fresh repository with coral installed (local config) tracking *.safetensors. */
export function initRepo(e: GitEnv, name = 'repo', patterns = ['*.safetensors']): string {
  const dir = path.join(e.root, name);
  git(e, e.root, 'init', '-q', '-b', 'main', dir);
  coralOk(e, dir, 'git', 'install', '--local');
  for (const p of patterns) coralOk(e, dir, 'git', 'track', p);
  if (!patterns.length) fs.writeFileSync(path.join(dir, '.gitattributes'), '');
  git(e, dir, 'add', '.gitattributes');
  git(e, dir, 'commit', '-q', '-m', 'track checkpoints');
  return dir;
}

/** Deterministic stream in [0, 1) (the store tests' xorshift32). */
export function rng(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() / 0x100000000;
}

export function randomF32(n: number, seed: number, scale = 0.05): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() + r() + r() - 1.5) * scale;
  return a;
}

export function f32(shape: number[], data: Float32Array): Tensor {
  return tensor('F32', shape, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

export type Weights = Record<string, { shape: number[]; data: Float32Array }>;

export function writeCheckpoint(file: string, w: Weights): void {
  const m = new Map<string, Tensor>();
  for (const k of Object.keys(w).sort()) m.set(k, f32(w[k].shape, w[k].data));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, serializeSafetensors(m));
}

export function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** A small model: two matrices and a bias. */
export function baseWeights(seed = 1, rows = 64, cols = 64): Weights {
  return {
    'layer0.weight': { shape: [rows, cols], data: randomF32(rows * cols, seed) },
    'layer0.bias': { shape: [rows], data: randomF32(rows, seed + 1) },
    'layer1.weight': { shape: [rows, cols], data: randomF32(rows * cols, seed + 2) },
  };
}

/** A copy with a dense fine-tune step on every tensor (small relative change). */
export function denseUpdate(w: Weights, seed: number, step = 1e-3): Weights {
  const out: Weights = {};
  for (const [k, v] of Object.entries(w)) {
    const d = randomF32(v.data.length, seed + k.length, step);
    out[k] = { shape: v.shape, data: v.data.map((x, i) => x + d[i]) };
  }
  return out;
}

/** A copy where `frac` of one tensor's elements change. */
export function sparseUpdate(w: Weights, name: string, frac: number, seed: number): Weights {
  const out: Weights = { ...w };
  const r = rng(seed);
  const d = w[name].data.slice();
  for (let i = 0; i < d.length; i++) if (r() < frac) d[i] += 0.01;
  out[name] = { shape: w[name].shape, data: d };
  return out;
}

/** A copy where one matrix gets a rank-1 update u v^T. */
export function lowRankUpdate(w: Weights, name: string, seed: number): Weights {
  const out: Weights = { ...w };
  const [rows, cols] = w[name].shape;
  const u = randomF32(rows, seed, 0.1);
  const v = randomF32(cols, seed + 1, 0.1);
  const d = w[name].data.slice();
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) d[i * cols + j] += u[i] * v[j];
  out[name] = { shape: w[name].shape, data: d };
  return out;
}
