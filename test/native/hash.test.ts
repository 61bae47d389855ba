import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../lib/native';
import { contentId, contentIds, contentIdSync, xxh3 } from '../../lib/hash';
import { tensor } from '../../lib/tensor/tensor';
import { DTYPE_NAMES, DTYPES } from '../../lib/tensor/dtype';
import { InvalidArgumentError } from '../../lib/errors';

function seeded(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

describe('content ids', () => {
  it('does not depend on the thread count', async () => {
    const data = seeded(9 * (1 << 20) + 123);
    const t = tensor('U8', [data.length], data);
    const ids = new Set<string>();
    const before = native.threads();
    try {
      for (const n of [1, 2, 3, 8]) {
        native.setThreads(n);
        ids.add(contentIdSync(t));
        ids.add(await contentId(t));
      }
    } finally {
      native.setThreads(before);
    }
    expect(ids.size).toBe(1);
  });

  it('covers dtype and shape in the id', () => {
    const data = seeded(64);
    const a = contentIdSync(tensor('F32', [16], data));
    expect(contentIdSync(tensor('I32', [16], data))).not.toBe(a);
    expect(contentIdSync(tensor('F32', [4, 4], data))).not.toBe(a);
    expect(contentIdSync(tensor('F32', [16], seeded(64)))).toBe(a);
  });

  it('hashes every dtype, 0-d scalars and zero-size tensors', () => {
    const seen = new Set<string>();
    for (const name of DTYPE_NAMES) {
      const size = DTYPES[name].size;
      seen.add(contentIdSync(tensor(name, [], seeded(size))));
      seen.add(contentIdSync(tensor(name, [0, 3], new Uint8Array(0))));
      seen.add(contentIdSync(tensor(name, [3], seeded(3 * size))));
    }
    expect(seen.size).toBe(DTYPE_NAMES.length * 3);
  });

  it('honours byteOffset of views (zero-copy)', () => {
    const big = seeded(1000);
    const view = new Uint8Array(big.buffer, big.byteOffset + 13, 400);
    const copy = Buffer.from(view);
    expect(contentIdSync(tensor('F32', [100], view))).toBe(contentIdSync(tensor('F32', [100], copy)));
    expect(native.xxh3_128(new DataView(big.buffer, big.byteOffset + 13, 400))).toBe(native.xxh3_128(copy));
  });

  it('batch ids equal single ids', async () => {
    const ts = [1, 1000, 3 << 20].map((n, i) => tensor('U8', [n], seeded(n, i + 7)));
    expect(await contentIds(ts)).toEqual(ts.map((t) => contentIdSync(t)));
  });

  it('rejects byte-count mismatches and bad dtype codes with typed errors', async () => {
    expect(() => native.contentId(Buffer.alloc(10), 1, [3])).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => native.contentId(Buffer.alloc(10), 99, [10])).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => native.contentId(Buffer.alloc(8), 1, [2 ** 40, 2 ** 40])).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    await expect(native.contentIdAsync(Buffer.alloc(10), 1, [3])).rejects.toMatchObject({ code: 'CORAL_INVALID_ARGUMENT' });
    expect(() => tensor('F32', [3], Buffer.alloc(10))).toThrow(InvalidArgumentError);
  });

  it('plain xxh3 matches xxhsum -H2', async () => {
    const data = seeded(5 << 20, 42);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-xxh-'));
    try {
      const f = path.join(dir, 'blob');
      fs.writeFileSync(f, data);
      let out: string;
      try {
        out = execFileSync('xxhsum', ['-H2', f], { encoding: 'utf8' });
      } catch {
        return; // xxhsum not installed: nothing to compare against
      }
      expect(await xxh3(data)).toBe(out.trim().split(/\s+/)[0].replace(/^XXH128_/, ''));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
