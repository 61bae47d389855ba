// ObjectWriter against a stale view of the store: an object (or delta base)
// that another process's repack removed must be written again, never trusted.
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ObjectReader, ObjectWriter } from '../../lib/odb/objects';
import { LocalPackStore } from '../../lib/store/local';
import { tensor } from '../../lib/tensor/tensor';
import { seeded, tmpDir } from '../store/helpers';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function writerOn(store: LocalPackStore): ObjectWriter {
  return new ObjectWriter(store, new ObjectReader(store), { level: 3, maxChainDepth: 8 });
}

describe('ObjectWriter and a concurrent repack', () => {
  it('rewrites an object whose reuse() fails, and never deltas against a vanished base', async () => {
    const d = tmpDir('objw');
    dirs.push(d);
    const a = await LocalPackStore.open(d, { fsync: false });
    const t1 = tensor('U8', [65536], seeded(65536, 1));
    const near = Buffer.from(seeded(65536, 1));
    near[100] ^= 1;
    const t2 = tensor('U8', [65536], near);
    const w0 = writerOn(a);
    const r1 = await w0.put(t1);
    await w0.flush();
    expect(r1.stored).toBe(true);

    // Another process drops everything; `a` still lists t1.
    const b = await LocalPackStore.open(d, { fsync: false });
    expect((await b.repack(() => false)).dropped).toBe(1);
    expect(await a.has(r1.id)).toBe(true);

    const w = writerOn(a);
    const again = await w.put(t1);
    expect(again.stored).toBe(true);
    const r2 = await w.put(t2, { id: r1.id });
    expect(r2.stored).toBe(true);
    await w.flush();

    await b.refresh();
    expect(await b.has(r1.id)).toBe(true);
    expect((await b.stat(r2.id)).base === '' || (await b.has((await b.stat(r2.id)).base))).toBe(true);
    expect(Buffer.from((await new ObjectReader(b).tensor(r2.id)).data).equals(near)).toBe(true);
    await a.close();
    await b.close();
  });
});
