// Which stored tensors the writer keeps in the base cache for a later ingest in the same process
// (lib/odb/objects.ts REMEMBER_SHARE, PutOptions.remember): small ones of a file that fits the
// cache, and none of a file too large for it (it would only churn through its tensors).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ingestFile } from '../../../lib/ingest/ingest';
import { ObjectReader, ObjectWriter } from '../../../lib/odb/objects';
import { LocalPackStore } from '../../../lib/store/local';
import { tensor } from '../../../lib/tensor/tensor';
import { seeded, tmpDir } from '../../store/helpers';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const KiB = 1 << 10;
/** The base cache of these tests: it keeps stored tensors of at most 1/64 of it, 64 KiB. */
const CACHE = 4096 * KiB;

/** A store whose reads are counted, and a writer whose reader has a cache of CACHE bytes. */
async function setup() {
  const dir = tmpDir('remember');
  dirs.push(dir);
  const store = await LocalPackStore.open(dir, { fsync: false });
  let reads = 0;
  const get = store.get.bind(store);
  store.get = (id) => (reads++, get(id));
  const reader = new ObjectReader(store, CACHE);
  const writer = new ObjectWriter(store, reader, { level: 3, maxChainDepth: 8 });
  /** Store reads made by decoding `id` through the reader (0: the cache had it). */
  const readsFor = async (id: string) => {
    const before = reads;
    await reader.tensor(id);
    return reads - before;
  };
  return { dir, store, writer, readsFor };
}

/** A safetensors file of `n` F32 tensors of `bytes` each, different from each other (and from other seeds'). */
function safetensors(file: string, n: number, bytes: number, seed: number): void {
  const hdr: Record<string, unknown> = {};
  for (let i = 0; i < n; i++)
    hdr[`t${i}`] = { dtype: 'F32', shape: [bytes / 4], data_offsets: [i * bytes, (i + 1) * bytes] };
  let h = Buffer.from(JSON.stringify(hdr));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, ...Array.from({ length: n }, (_, i) => seeded(bytes, seed + i))]));
}

describe('tensors kept as delta bases after a put', () => {
  it('keeps a small tensor, but not a larger one nor one put with remember: false', async () => {
    const { store, writer, readsFor } = await setup();
    const small = await writer.put(tensor('U8', [64 * KiB], seeded(64 * KiB, 1)));
    const large = await writer.put(tensor('U8', [64 * KiB + 1], seeded(64 * KiB + 1, 2)));
    const declined = await writer.put(tensor('U8', [64 * KiB], seeded(64 * KiB, 3)), null, undefined, undefined, {
      remember: false,
    });
    await writer.flush();
    expect(await readsFor(small.id)).toBe(0);
    expect(await readsFor(large.id)).toBe(1);
    expect(await readsFor(declined.id)).toBe(1);
    await store.close();
  });

  it('an ingest keeps the tensors of a file that fits half the cache, and none of a larger one', async () => {
    const { dir, store, writer, readsFor } = await setup();
    const fits = path.join(dir, 'fits.safetensors');
    const big = path.join(dir, 'big.safetensors');
    safetensors(fits, 8, 64 * KiB, 100); // 512 KiB
    safetensors(big, 40, 64 * KiB, 200); // 2.5 MiB, more than half of the cache
    const a = await ingestFile(writer, fits, 'fits.safetensors', null);
    const b = await ingestFile(writer, big, 'big.safetensors', null);
    await writer.flush();
    for (const s of a.entry.segments) expect(await readsFor(s.object)).toBe(0);
    for (const s of b.entry.segments) expect(await readsFor(s.object)).toBe(1);
    await store.close();
  });
});
