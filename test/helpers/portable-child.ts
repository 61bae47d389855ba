// Child process of test/helpers/portable.ts: runs codec jobs read as JSON from
// stdin and writes the results as JSON to stdout. The parent starts it with
// CORAL_NO_AVX2=1, so every kernel takes its portable path.
import { decodeSync, encodeSync, type CodecName } from '../../lib/codec';
import type { DType } from '../../lib/tensor/dtype';

interface Job {
  op: 'encode' | 'decode';
  dtype: DType;
  shape: number[];
  data: string; // base64: tensor bytes (encode) or object bytes (decode)
  base?: string; // base64 tensor bytes of the base, same dtype and shape
  codec?: CodecName;
}

const chunks: Buffer[] = [];
process.stdin.on('data', (c: Buffer) => chunks.push(c));
process.stdin.on('end', () => {
  const jobs = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Job[];
  const out = jobs.map((j) => {
    const tensor = (b64: string) => ({
      dtype: j.dtype,
      shape: j.shape,
      data: new Uint8Array(Buffer.from(b64, 'base64')),
    });
    const base = j.base === undefined ? null : { tensor: tensor(j.base) };
    if (j.op === 'encode') {
      const obj = encodeSync(tensor(j.data), { codec: j.codec ?? 'auto', ...(base ? { base } : {}) });
      return Buffer.from(obj.bytes).toString('base64');
    }
    return Buffer.from(decodeSync(new Uint8Array(Buffer.from(j.data, 'base64')), base).data).toString('base64');
  });
  process.stdout.write(JSON.stringify(out));
});
