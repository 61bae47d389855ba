// A server whose successful ranged GET has no Content-Length (a chunked body): range-into does not read
// it and says so with its own error (isUnsupportedResponse), so the S3 store reads that range through
// the SDK's handler instead; the SDK reads the same response whole. A local HTTP server plays the
// server's part: this is about the HTTP framing, not S3 semantics (those run against Ceph).
import * as http from 'node:http';
import type * as net from 'node:net';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getRangeInto, isShortRead, isUnsupportedResponse } from '../../../lib/store/s3/range-into';

const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7) & 0xff));
let server: http.Server;
let client: S3Client;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const m = /bytes=(\d+)-(\d+)/.exec(String(req.headers.range));
    const [from, to] = m ? [Number(m[1]), Number(m[2])] : [0, data.length - 1];
    res.writeHead(206, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' });
    const body = data.subarray(from, to + 1);
    // Two chunks, so the chunked framing is really used.
    res.write(body.subarray(0, body.length >> 1));
    res.end(body.subarray(body.length >> 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  client = new S3Client({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  client?.destroy();
  await new Promise((r) => server?.close(r));
});

describe('range-into on a response it does not read', () => {
  it('rejects a chunked success as unsupported (not a short read), and the SDK reads the same range', async () => {
    const dst = Buffer.alloc(4096);
    const err = await getRangeInto(client, {
      bucket: 'b',
      key: 'k',
      offset: 1000,
      dst,
      connectTimeoutMs: 2000,
      requestTimeoutMs: 5000,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isUnsupportedResponse(err)).toBe(true);
    expect(isShortRead(err)).toBe(false);
    const out = await client.send(new GetObjectCommand({ Bucket: 'b', Key: 'k', Range: 'bytes=1000-5095' }));
    const got = Buffer.from(await out.Body!.transformToByteArray());
    expect(got.equals(data.subarray(1000, 5096))).toBe(true);
  });
});
