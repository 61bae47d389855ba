// Shared helpers of the store tests: seeded data, temp dirs, external tools.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A seeded xorshift32 generator: each call returns the next unsigned 32-bit value. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Deterministic pseudo-random bytes (xorshift32, 4 bytes per step). */
export function seeded(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  const words = Math.floor(n / 4);
  const u32 = new Uint32Array(b.buffer, b.byteOffset, b.byteOffset % 4 === 0 ? words : 0);
  const step = xorshift32(seed);
  let i = 0;
  if (u32.length === words) for (; i < words; i++) u32[i] = step();
  for (let j = i * 4; j < n; j++) b[j] = step() & 0xff;
  return b;
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `coral-${prefix}-`));
}

export function hasTool(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** Debian's python with numpy/h5py (the python3 on PATH may lack them). */
export const PYTHON = '/usr/bin/python3';
export const HAS_H5PY = hasTool(PYTHON, ['-c', 'import h5py']);
export const HAS_H5DUMP = hasTool('h5dump', ['--version']);

export function python(code: string, args: string[] = []): string {
  return execFileSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
