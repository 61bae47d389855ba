// Shared helpers for the format tests: seeded data, temp dirs, the Debian python with torch/numpy.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DTYPES, DTYPE_NAMES, type DType } from '../../lib/tensor/dtype';
import type { Tensor } from '../../lib/tensor/tensor';

export const FIXTURES = path.resolve(__dirname, '..', 'fixtures', 'torch');
export const PYTHON = '/usr/bin/python3';

export const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;

/** Runs python code; returns stdout. Throws with stderr on failure. */
export function py(code: string, ...args: string[]): string {
  const r = spawnSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

export function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'coral-formats-'));
}

/** xorshift32 PRNG: deterministic bytes. */
export function rng(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      out[i] = s & 0xff;
    }
    return out;
  };
}

/** A random tensor; BOOL gets 0/1 bytes. */
export function randomTensor(dtype: DType, shape: number[], seed: number): Tensor {
  let n = DTYPES[dtype].size;
  for (const d of shape) n *= d;
  const data = rng(seed)(n);
  if (dtype === 'BOOL') for (let i = 0; i < data.length; i++) data[i] &= 1;
  return { dtype, shape, data };
}

/** One tensor of every dtype plus 0-d and zero-size ones, with awkward float bits. */
export function allDtypeTensors(): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  DTYPE_NAMES.forEach((d, i) => {
    out[`t_${d}`] = randomTensor(d, [3, 5], 100 + i);
    out[`scalar_${d}`] = randomTensor(d, [], 200 + i);
    out[`empty_${d}`] = randomTensor(d, [0, 4], 300 + i);
  });
  // NaN payload, -0.0, subnormal, inf in F32/F64
  out.special_f32 = {
    dtype: 'F32',
    shape: [4],
    data: new Uint8Array(new Uint32Array([0x7fc01234, 0x80000000, 0x00000001, 0x7f800000]).buffer),
  };
  out.special_f64 = {
    dtype: 'F64',
    shape: [2],
    data: new Uint8Array(new BigUint64Array([0x7ff0000000000abcn, 0x8000000000000000n]).buffer),
  };
  return out;
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<Error> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  if (!err) throw new Error(`expected an error with code ${code}, but nothing was thrown`);
  if ((err as { code?: string }).code !== code) {
    throw new Error(`expected code ${code}, got ${(err as { code?: string }).code}: ${(err as Error).message}`);
  }
  return err as Error;
}
