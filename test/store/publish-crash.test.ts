// Publishing a small pack (issue #18: the fixed cost of a small `add`) is crash-safe at each step:
// a `coral add` killed with SIGKILL before the pack's rename, between the rename and its index, or
// between the index and the directory fsync leaves a repository that fsck finds clean, whose
// history is unchanged, and in which the same add then succeeds. (A SIGKILL keeps the page cache;
// what the fsyncs add for a power cut is argued in docs/store.md, "Crash safety".)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { castTensorSync } from '../../lib/codec';
import type { Tensor } from '../../lib/tensor/tensor';
import { coralAsync, f32, ok, tempDirs, tmpdir, weights, writeSafetensors } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });

type Tensors = Record<string, { dtype: string; shape: number[]; data: Uint8Array }>;

function model(seed: number): Tensors {
  return {
    'a.weight': { dtype: 'F32', shape: [256, 128], data: f32(weights(256 * 128, seed)) },
    'b.weight': { dtype: 'F32', shape: [128, 64], data: f32(weights(128 * 64, seed + 1)) },
  };
}

describe('a crash while a pack is published', () => {
  for (const point of ['pack:before-rename', 'pack:after-rename', 'pack:after-index']) {
    it(`${point}: fsck-clean, history unchanged, for a new model and for a cast`, async () => {
      const d = tmpdir();
      dirs.push(d);
      ok(d, ['init']);
      const fp32 = model(1);
      writeSafetensors(path.join(d, 'fp32.safetensors'), fp32);
      ok(d, ['add', 'fp32.safetensors']);
      ok(d, ['commit', '-m', 'fp32']);
      const before = ok(d, ['log', '--json']);
      const bf16: Tensors = {};
      for (const [k, t] of Object.entries(fp32)) {
        const c = castTensorSync(t as Tensor, 'BF16');
        bf16[k] = { dtype: c.dtype, shape: t.shape, data: c.data };
      }
      for (const [file, tensors] of [
        ['new.safetensors', model(2)],
        ['bf16.safetensors', bf16],
      ] as const) {
        writeSafetensors(path.join(d, file), tensors);
        const r = await coralAsync(d, ['add', file], { CORAL_CRASH_AT: point });
        expect(r.signal, `${file}: ${r.stderr}`).toBe('SIGKILL');
        const f = JSON.parse(ok(d, ['fsck', '--json'])) as { ok: boolean; problems: unknown[] };
        expect(f.ok, `${file}: ${JSON.stringify(f.problems)}`).toBe(true);
        expect(ok(d, ['log', '--json'])).toBe(before);
        const st = JSON.parse(ok(d, ['status', '--json'])) as { files: Array<{ path: string; staged: unknown }> };
        expect(st.files.filter((x) => x.staged !== null).map((x) => x.path)).toEqual([]);
      }
      // Added again and committed: fsck clean (every object read), every file checks out byte-exact.
      ok(d, ['add', 'new.safetensors', 'bf16.safetensors']);
      ok(d, ['commit', '-m', 'after the crash']);
      expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
      const files = ['fp32.safetensors', 'new.safetensors', 'bf16.safetensors'];
      const want = new Map(files.map((f) => [f, fs.readFileSync(path.join(d, f))]));
      for (const f of files) fs.rmSync(path.join(d, f));
      ok(d, ['checkout', 'HEAD', '--', '.']);
      for (const f of files) expect(fs.readFileSync(path.join(d, f)).equals(want.get(f)!), f).toBe(true);
    });
  }
});
