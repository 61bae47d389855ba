// Child of test/codec/cast.test.ts, started with CORAL_NO_AVX2=1: casts the
// inputs read as JSON from stdin with the portable kernels and prints the
// results (base64), so the test can compare them with the AVX2 path.
import { castTensorSync } from '../../lib/codec';
import type { DType } from '../../lib/tensor/dtype';

interface Job {
  from: DType;
  to: DType;
  rounding: 'RNE' | 'RTZ';
  data: string;
}
const chunks: Buffer[] = [];
process.stdin.on('data', (c: Buffer) => chunks.push(c));
process.stdin.on('end', () => {
  const jobs = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Job[];
  const out = jobs.map((j) => {
    const data = new Uint8Array(Buffer.from(j.data, 'base64'));
    const n = data.byteLength / { F64: 8, F32: 4, F16: 2, BF16: 2 }[j.from as 'F64'];
    const r = castTensorSync({ dtype: j.from, shape: [n], data }, j.to, j.rounding);
    return Buffer.from(r.data).toString('base64');
  });
  process.stdout.write(JSON.stringify(out));
});
