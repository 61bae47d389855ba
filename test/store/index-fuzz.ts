// Seeded fuzz of .idx sidecars (shared by index-fuzz.test.ts and the larger
// index-fuzz.stress.ts): one flipped byte in the sidecar of an intact pack must
// never make an object unreadable or read back different bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LocalPackStore } from '../../lib/store/local';
import { seeded, tmpDir, xorshift32 } from './helpers';

export interface FuzzResult {
  runs: number;
  failures: string[];
  /** Objects read back with the right bytes but attributes the flip changed (the sidecar has no checksum). */
  attrFailures: string[];
}

export async function fuzzIndexFlips(runs: number, seed = 1): Promise<FuzzResult> {
  const dir = tmpDir('idxfuzz');
  try {
    // A bound below 40 000 bytes keeps the mix (by default objects below 1 MiB are all small).
    const s = await LocalPackStore.open(dir, { fsync: false, smallObjectMax: 16384 });
    const tx = s.beginWrite();
    const want = new Map<string, Buffer>();
    for (let i = 0; i < 12; i++) {
      const n = i % 3 === 0 ? 40_000 + i : 200 + 37 * i; // mix of datasets and /small objects
      const id = `obj${String(i).padStart(2, '0')}x${((i * 2654435761) >>> 0).toString(16)}`;
      const b = seeded(n, i + 1);
      want.set(id, b);
      await tx.put(id, b, { codec: 'raw', dtype: 'U8', shape: [n], rawSize: n, extra: { k: String(i) } });
    }
    const info = (await tx.commit())!;
    await s.close();
    const idxFile = path.join(dir, 'objects', 'packs', info.name.replace(/\.h5$/, '.idx'));
    const orig = fs.readFileSync(idxFile);
    const failures: string[] = [];
    const attrFailures: string[] = [];
    const rnd = xorshift32(seed);
    for (let r = 0; r < runs; r++) {
      const buf = Buffer.from(orig);
      const at = rnd() % buf.length;
      buf[at] ^= 1 << (rnd() % 8);
      fs.writeFileSync(idxFile, buf);
      const st = await LocalPackStore.open(dir, { fsync: false });
      try {
        for (const [id, b] of want) {
          try {
            const got = await st.get(id);
            if (!Buffer.from(got.bytes).equals(b)) failures.push(`run ${r} (byte ${at}): ${id} read different bytes`);
            const a = got.attrs;
            if (
              a.codec !== 'raw' ||
              a.dtype !== 'U8' ||
              a.rawSize !== b.length ||
              a.shape[0] !== b.length ||
              a.extra.k === undefined
            )
              attrFailures.push(`run ${r} (byte ${at}): ${id} attrs ${JSON.stringify(a).slice(0, 160)}`);
          } catch (e) {
            failures.push(`run ${r} (byte ${at}): ${id}: ${(e as Error).message.slice(0, 120)}`);
          }
        }
      } finally {
        await st.close();
      }
    }
    return { runs, failures, attrFailures };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
