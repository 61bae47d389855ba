// Lifecycle of the native addon: worker threads, exit with async work in
// flight, and error stacks that point at the caller.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { contentId } from '../../lib/hash';
import { decode, encode } from '../../lib/codec';
import {
  ASYNC_THRESHOLD_BYTES,
  DECODE_ASYNC_BYTES,
  DEFAULT_BUFFER_POOL_BYTES,
  ENCODE_ASYNC_BYTES,
  FINGERPRINT_ASYNC_WORK,
  allocLarge,
  callSync,
  native,
  recycleLarge,
  setBufferPoolLimit,
} from '../../lib/native';
import { fingerprint } from '../../lib/similarity/fingerprint';
import { tensor } from '../../lib/tensor/tensor';
import { InvalidArgumentError } from '../../lib/errors';

const root = path.resolve(__dirname, '..', '..');

describe('native lifecycle', () => {
  it('loads in a worker thread and computes the same ids', async () => {
    const data = Buffer.alloc(3 << 20, 3);
    const expected = native.contentId(data, 13, [data.length]);
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const b = require('node-gyp-build')(workerData.root);
      b.contentIdAsync(Buffer.alloc(3 << 20, 3), 13, [3 << 20]).then((id) => parentPort.postMessage(id));
    `;
    const w = new Worker(code, { eval: true, workerData: { root } });
    const id = await new Promise<string>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await w.terminate();
    expect(id).toBe(expected);
  });

  it('exits cleanly while async native work is still running', () => {
    const script = `
      const b = require('node-gyp-build')(${JSON.stringify(root)});
      const big = Buffer.alloc(256 << 20, 1);
      for (let i = 0; i < 4; i++) b.contentIdAsync(big, 13, [big.length]);
      setImmediate(() => process.exit(0));
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.signal).toBeNull();
  });

  it('terminating a worker with pending async work does not crash the process', async () => {
    const code = `
      const b = require('node-gyp-build')(require('node:worker_threads').workerData.root);
      const big = Buffer.alloc(64 << 20, 1);
      b.contentIdAsync(big, 13, [big.length]);
      require('node:worker_threads').parentPort.postMessage('started');
    `;
    const w = new Worker(code, { eval: true, workerData: { root } });
    await new Promise((r) => w.once('message', r));
    await w.terminate();
    expect(native.counters().running).toBeGreaterThanOrEqual(0);
  });

  it('native errors from async calls carry a stack through the caller', async () => {
    const bad = { dtype: 'F32' as const, shape: [5], data: Buffer.alloc(4 << 20) };
    const err = (await contentId(bad).then(
      () => null,
      (e: unknown) => e as Error,
    ))!;
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).code).toBe(InvalidArgumentError.code);
    expect(err.stack).toContain('lifecycle.test.ts');
  });

  it('encodes, decodes and fingerprints on the pool from their own sizes, far below ASYNC_THRESHOLD_BYTES', async () => {
    // An inline call's promise is settled before any event-loop turn; a pool job's is not (its
    // completion is delivered by the loop), so a few microtask turns tell the two apart.
    const settlesInline = async (p: Promise<unknown>): Promise<boolean> => {
      let done = false;
      void p.then(() => (done = true));
      for (let i = 0; i < 5; i++) await Promise.resolve();
      const early = done;
      await p;
      return early;
    };
    const f32 = (n: number) => {
      const a = new Float32Array(n).map((_, i) => Math.sin(i) * 0.02);
      return tensor('F32', [n], Buffer.from(a.buffer));
    };
    const below = f32((ENCODE_ASYNC_BYTES - 4) / 4);
    const at = f32(ENCODE_ASYNC_BYTES / 4);
    expect(ENCODE_ASYNC_BYTES).toBeLessThan(ASYNC_THRESHOLD_BYTES);
    expect(await settlesInline(encode(below))).toBe(true);
    expect(await settlesInline(encode(at))).toBe(false);
    const big = f32(DECODE_ASYNC_BYTES / 4);
    const small = f32(DECODE_ASYNC_BYTES / 8);
    const bigObj = (await encode(big)).bytes;
    const smallObj = (await encode(small)).bytes;
    expect(await settlesInline(decode(smallObj))).toBe(true);
    expect(await settlesInline(decode(bigObj))).toBe(false);
    expect(Buffer.from((await decode(bigObj)).data).equals(Buffer.from(big.data))).toBe(true);
    // 256-bit signatures: 4 words, so 1024 sampled elements are FINGERPRINT_ASYNC_WORK.
    expect(await settlesInline(fingerprint(f32(FINGERPRINT_ASYNC_WORK / 4 - 16)))).toBe(true);
    expect(await settlesInline(fingerprint(f32(FINGERPRINT_ASYNC_WORK / 4)))).toBe(false);
  });

  it('reports queued and running async work', async () => {
    // One shared 128 MiB input, 8 jobs: more than the default pool of 4, so some
    // are still queued when we look (tens of ms of work even on a fast machine).
    const big = Buffer.alloc(128 << 20, 2);
    const ps = Array.from({ length: 8 }, () => contentId(tensor('U8', [big.length], big)));
    const c = native.counters();
    expect(c.queued + c.running).toBeGreaterThan(0);
    await Promise.all(ps);
    expect(native.counters()).toMatchObject({ queued: 0, running: 0 });
  });

  it('hands out pooled buffers for big reads and small ones from the JS heap, and rejects bad sizes', () => {
    const before = native.counters();
    const big = allocLarge(8 << 20);
    big.fill(7);
    expect(big.length).toBe(8 << 20);
    expect(big[(8 << 20) - 1]).toBe(7);
    const after = native.counters();
    expect(after.poolHits + after.poolMisses).toBe(before.poolHits + before.poolMisses + 1);
    expect(allocLarge(1000).length).toBe(1000);
    expect(native.allocBuffer(0).length).toBe(0);
    for (const bad of [-1, 1.5, NaN, '8' as unknown as number])
      expect(() => callSync(() => native.allocBuffer(bad))).toThrow(InvalidArgumentError);
  });

  it('keeps the buffer pool within the bound setBufferPoolLimit sets, unmapping the surplus at once', () => {
    const prev = setBufferPoolLimit(12 << 20);
    try {
      expect(prev).toBe(DEFAULT_BUFFER_POOL_BYTES);
      // Three 5 MiB buffers (each a 2 MiB-aligned mapping of 8 MiB): only one fits under 12 MiB.
      const bufs = [0, 1, 2].map(() => allocLarge(5 << 20));
      for (const b of bufs) recycleLarge(b);
      const held = native.counters().pooledBytes;
      expect(held).toBeGreaterThan(0);
      expect(held).toBeLessThanOrEqual(12 << 20);
      expect(setBufferPoolLimit(0)).toBe(12 << 20);
      expect(native.counters().pooledBytes).toBe(0);
      const again = allocLarge(5 << 20);
      again.fill(1);
      recycleLarge(again);
      expect(native.counters().pooledBytes).toBe(0);
      for (const bad of [-1, 1.5, NaN, '8' as unknown as number])
        expect(() => callSync(() => native.setPoolLimit(bad))).toThrow(InvalidArgumentError);
    } finally {
      setBufferPoolLimit(DEFAULT_BUFFER_POOL_BYTES);
    }
  });

  it('recycles large result buffers once JavaScript drops them, and recycled buffers decode exactly', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(__dirname, 'pool-child.ts')], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    const { hits, misses, pooled } = JSON.parse(r.stdout) as { hits: number; misses: number; pooled: number };
    expect(hits).toBeGreaterThan(0);
    expect(hits + misses).toBe(9); // 5 encodes + 4 decodes of 16 MiB
    expect(pooled).toBeLessThanOrEqual(256 << 20);
  });
});
