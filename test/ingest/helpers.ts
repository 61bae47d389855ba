// Helpers for the ingestion/similarity tests: seeded model files and a CLI
// runner that executes the TypeScript sources (lib/cli/main.ts) through tsx,
// so these tests never depend on a stale dist/.
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { f32, perturb, weights, writeSafetensors } from '../helpers/cli';

export { f32, perturb, weights, writeSafetensors };
export const ROOT = path.resolve(__dirname, '..', '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
const RUNNER = path.join(__dirname, 'cli-runner.ts');
const env = { ...process.env, NO_COLOR: '1', CORAL_AUTHOR_NAME: 'Test User', CORAL_AUTHOR_EMAIL: 'test@example.com' };

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(cwd: string, args: string[]): Run {
  const r = spawnSync(TSX, [RUNNER, ...args], { cwd, encoding: 'utf8', env });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

export function cliOk(cwd: string, args: string[]): string {
  const r = cli(cwd, args);
  if (r.code !== 0) throw new Error(`coral ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export function cliAsync(cwd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(TSX, [RUNNER, ...args], { cwd, env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

export type Model = Record<string, Float32Array>;

/** A small MLP-like model: three weight matrices and their biases. */
export function baseModel(seed: number): Model {
  return {
    'l1.weight': weights(128 * 96, seed * 10 + 1),
    'l1.bias': weights(128, seed * 10 + 2),
    'l2.weight': weights(96 * 64, seed * 10 + 3),
    'l2.bias': weights(96, seed * 10 + 4),
    'l3.weight': weights(64 * 64, seed * 10 + 5),
    'l3.bias': weights(64, seed * 10 + 6),
  };
}

const SHAPES: Record<string, number[]> = {
  weight1: [128, 96],
  bias1: [128],
  weight2: [96, 64],
  bias2: [96],
  weight3: [64, 64],
  bias3: [64],
};

function shapeOf(name: string, a: Float32Array): number[] {
  const m = /l(\d)\.(weight|bias)$/.exec(name);
  return m ? SHAPES[`${m[2]}${m[1]}`] : [a.length];
}

/** A fine-tune: every tensor nudged by seeded noise of relative size `rel`. */
export function fineTune(m: Model, seed: number, rel = 2e-3): Model {
  const out: Model = {};
  Object.entries(m).forEach(([k, v], i) => (out[k] = perturb(v, seed * 100 + i, rel)));
  return out;
}

/** Writes a model as safetensors; `prefix` renames every tensor (e.g. "model."). */
export function writeModel(file: string, m: Model, prefix = ''): void {
  const t: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [k, v] of Object.entries(m)) t[prefix + k] = { dtype: 'F32', shape: shapeOf(k, v), data: f32(v) };
  writeSafetensors(file, t);
}
