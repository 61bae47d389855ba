// Helpers for end-to-end tests: run the real `coral` bin in a temp directory,
// and make checkpoint files (safetensors from our writer, .pt from real torch).
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CORAL_BIN = path.join(ROOT, 'bin', 'coral.js');
export const TORCH_PYTHON = '/usr/bin/python3';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const baseEnv = {
  ...process.env,
  NO_COLOR: '1',
  CORAL_AUTHOR_NAME: 'Test User',
  CORAL_AUTHOR_EMAIL: 'test@example.com',
};

export function coral(cwd: string, args: string[], env: Record<string, string> = {}): RunResult {
  const r = spawnSync(process.execPath, [CORAL_BIN, ...args], { cwd, encoding: 'utf8', env: { ...baseEnv, ...env } });
  return { code: r.status ?? (r.signal ? 128 : 1), stdout: r.stdout, stderr: r.stderr };
}

/** Async variant, for running several CLI processes at once. */
export function coralAsync(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<RunResult & { signal: string | null }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CORAL_BIN, ...args], { cwd, env: { ...baseEnv, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code, signal) => resolve({ code: code ?? 128, stdout, stderr, signal }));
  });
}

/** Like coral() but fails the test with the command's stderr when it exits non-zero. */
export function ok(cwd: string, args: string[], env: Record<string, string> = {}): string {
  const r = coral(cwd, args, env);
  if (r.code !== 0) throw new Error(`coral ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export function tmpdir(prefix = 'coral-e2e-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Deterministic float32 "weights": N(0, 1/sqrt(fan_in)) via a seeded generator. */
export function weights(n: number, seed: number, scale = 0.05): Float32Array {
  const a = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i += 2) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const u = (x + 1) / 4294967297;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const v = x / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u));
    a[i] = r * Math.cos(2 * Math.PI * v) * scale;
    if (i + 1 < n) a[i + 1] = r * Math.sin(2 * Math.PI * v) * scale;
  }
  return a;
}

/** Adds a small perturbation to a fraction of the elements (a fine-tune step). */
export function perturb(a: Float32Array, seed: number, rel = 1e-3, fraction = 1): Float32Array {
  const b = new Float32Array(a);
  const noise = weights(a.length, seed, 1);
  const step = Math.max(1, Math.round(1 / fraction));
  for (let i = 0; i < b.length; i += step) b[i] += rel * 0.05 * noise[i];
  return b;
}

/** Writes a safetensors file by hand (independent of the library's writer). */
export function writeSafetensors(
  file: string,
  tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }>,
  metadata?: Record<string, string>,
): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  const names = Object.keys(tensors).sort();
  for (const n of names) {
    const t = tensors[n];
    header[n] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let h = Buffer.from(JSON.stringify(header));
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(
    file,
    Buffer.concat([
      len,
      h,
      ...names.map((n) => Buffer.from(tensors[n].data.buffer, tensors[n].data.byteOffset, tensors[n].data.byteLength)),
    ]),
  );
}

export function f32(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function hasTorch(): boolean {
  return spawnSync(TORCH_PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
}

/** Runs python with Debian's torch; throws with stderr on failure. */
export function python(script: string, args: string[] = []): string {
  const r = spawnSync(TORCH_PYTHON, ['-c', script, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}

/**
 * For a test file that makes temporary directories: returns the list to push
 * them on; every one is removed after the file's tests. `needDist` also fails
 * early, with the fix, when dist/ (which the CLI runs from) is missing.
 */
export function tempDirs(opts: { needDist?: boolean } = {}): string[] {
  const dirs: string[] = [];
  if (opts.needDist)
    beforeAll(() => {
      if (!fs.existsSync(path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js')))
        throw new Error('dist/ is missing: run `npm run build:ts` (npm test does it)');
    });
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  return dirs;
}

/** `coral <args> --json` in `cwd`, parsed (fails the test on a non-zero exit, as `ok` does). */
export function okJson<T = Record<string, unknown>>(cwd: string, args: string[], env: Record<string, string> = {}): T {
  return JSON.parse(ok(cwd, [...args, '--json'], env)) as T;
}

/** `coral commit -a -m <msg>` in `cwd`; the new commit's id. */
export function commitAll(cwd: string, msg: string): string {
  return okJson<{ id: string }>(cwd, ['commit', '-a', '-m', msg]).id;
}

/** sha256 of every top-level file of a worktree (not `.coral`), by name. */
export function worktreeSnapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const f of fs
    .readdirSync(dir)
    .filter((x) => x !== '.coral')
    .sort())
    files[f] = sha256(path.join(dir, f));
  return files;
}
