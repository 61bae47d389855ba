// Child of lifecycle.test.ts (run with --expose-gc): large encode and decode
// results come back to the buffer pool once their Buffers are collected, and a
// recycled buffer decodes exactly. Prints JSON.
import { decode, encode } from '../../lib/codec';
import { native } from '../../lib/native';
import { tensor } from '../../lib/tensor/tensor';

const gc = (globalThis as { gc?: () => void }).gc!;
const settle = () => new Promise((r) => setImmediate(r));

async function main(): Promise<void> {
  const n = 4 << 20; // 16 MiB of F32
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i) * 0.02;
  const t = tensor('F32', [n], new Uint8Array(a.buffer));
  const first = native.counters();
  let obj = (await encode(t)).bytes;
  for (let round = 0; round < 4; round++) {
    let out: Uint8Array | null = (await decode(obj)).data;
    if (Buffer.compare(Buffer.from(out), Buffer.from(t.data)) !== 0) throw new Error('decoded bytes differ');
    // eslint-disable-next-line no-useless-assignment -- drop the last reference so gc() can reclaim the decoded buffer
    out = null;
    obj = (await encode(t)).bytes; // the previous object becomes garbage too
    gc();
    await settle();
  }
  const last = native.counters();
  console.log(
    JSON.stringify({
      hits: last.poolHits - first.poolHits,
      misses: last.poolMisses - first.poolMisses,
      pooled: last.pooledBytes,
    }),
  );
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
