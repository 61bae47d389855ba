// Child of test/ingest/cast-ids.test.ts, started with CORAL_NO_AVX2=1: computes
// contentIdWithCasts of the tensors read as JSON from stdin with the portable
// kernels and prints the ids, so the test can compare them with the AVX2 path.
import { contentIdWithCasts } from '../../lib/hash';
import type { DType } from '../../lib/tensor/dtype';

const chunks: Buffer[] = [];
process.stdin.on('data', (c: Buffer) => chunks.push(c));
process.stdin.on('end', () => {
  const jobs = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Array<{
    dtype: DType;
    shape: number[];
    data: string;
  }>;
  void Promise.all(
    jobs.map((j) =>
      contentIdWithCasts({ dtype: j.dtype, shape: j.shape, data: new Uint8Array(Buffer.from(j.data, 'base64')) }),
    ),
  ).then((r) => process.stdout.write(JSON.stringify(r)));
});
