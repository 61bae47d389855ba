// Runs codec work in a child process with the portable kernels
// (CORAL_NO_AVX2=1), so tests can check that the AVX2 and portable paths
// write the same bytes and read each other's objects.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import type { CodecName } from '../../lib/codec';
import type { Tensor } from '../../lib/tensor/tensor';

const CHILD = path.join(__dirname, 'portable-child.ts');

export type PortableJob =
  | { op: 'encode'; tensor: Tensor; base?: Tensor; codec?: CodecName }
  | { op: 'decode'; bytes: Uint8Array; like: Tensor; base?: Tensor };

const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** Runs a TS script with the portable kernels (stdin from `input`) and returns its stdout. */
export function runPortableScript(script: string, input = ''): string {
  return execFileSync(process.execPath, ['--import', 'tsx', script], {
    input,
    cwd: path.resolve(__dirname, '..', '..'),
    env: { ...process.env, CORAL_NO_AVX2: '1' },
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
}

/** Runs the jobs in one portable child; returns encoded objects or decoded tensor bytes, in order. */
export function runPortable(jobs: PortableJob[]): Uint8Array[] {
  const wire = jobs.map((j) => {
    const t = j.op === 'encode' ? j.tensor : j.like;
    return {
      op: j.op,
      dtype: t.dtype,
      shape: t.shape,
      data: b64(j.op === 'encode' ? j.tensor.data : j.bytes),
      ...(j.base ? { base: b64(j.base.data) } : {}),
      ...(j.op === 'encode' && j.codec ? { codec: j.codec } : {}),
    };
  });
  const out = runPortableScript(CHILD, JSON.stringify(wire));
  return (JSON.parse(out) as string[]).map((s) => new Uint8Array(Buffer.from(s, 'base64')));
}
