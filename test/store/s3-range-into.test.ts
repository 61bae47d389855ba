// Ranged reads into the caller's buffer (lib/store/s3/range-into.ts) against the real Ceph RADOS Gateway:
// the bytes, typed errors from the SDK for a missing key, a short object, kept-alive connections, and a
// connection cut in the middle of a body (by a TCP relay in front of the gateway): the retry asks only for
// the bytes that had not arrived.
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNoSuchKey, openS3Client, type S3Handle } from '../../lib/store/s3/client';
import { getRangeInto, isShortRead } from '../../lib/store/s3/range-into';
import { ceph, makeBucket, rawClient } from '../helpers/ceph';

const SIZE = 5 << 20;
let bucket = '';
let data: Buffer;

/** A TCP relay to the gateway: counts connections, sees the requests, and can cut a response. */
class Relay {
  readonly server: net.Server;
  connections = 0;
  requests: string[] = [];
  /** Cut the next response after this many bytes from the gateway (then stop cutting). */
  cutAfter = -1;
  constructor(private readonly target: URL) {
    this.server = net.createServer((client) => {
      this.connections++;
      const up = net.connect(Number(target.port), target.hostname);
      let cut = this.cutAfter;
      this.cutAfter = -1;
      client.on('data', (d) => {
        this.requests.push(d.toString('latin1'));
        up.write(d);
      });
      up.on('data', (d: Buffer) => {
        if (cut >= 0 && d.length >= cut) {
          client.end(d.subarray(0, cut));
          up.destroy();
          return;
        }
        if (cut >= 0) cut -= d.length;
        client.write(d);
      });
      client.on('close', () => up.destroy());
      up.on('close', () => client.end());
      client.on('error', () => undefined);
      up.on('error', () => undefined);
    });
  }
  listen(): Promise<string> {
    return new Promise((resolve) =>
      this.server.listen(0, '127.0.0.1', () => {
        resolve(`http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`);
      }),
    );
  }
}

let relay: Relay;
let s3: S3Handle;

beforeAll(async () => {
  const env = await ceph();
  bucket = await makeBucket('range');
  data = crypto.randomBytes(SIZE);
  const c = await rawClient();
  await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'o', Body: data }));
  c.destroy();
  relay = new Relay(new URL(env.endpoint));
  s3 = openS3Client({ endpoint: await relay.listen() });
});

afterAll(() => {
  s3?.client.destroy();
  relay?.server.close();
});

const read = (offset: number, length: number, progress?: (n: number) => void) => {
  const dst = Buffer.alloc(length);
  return getRangeInto(s3.client, {
    bucket,
    key: 'o',
    offset,
    dst,
    progress,
    connectTimeoutMs: 3000,
    requestTimeoutMs: 30_000,
  }).then(() => dst);
};

describe('getRangeInto', () => {
  it('reads ranges into the buffer, reporting progress, over kept-alive connections', async () => {
    const seen: number[] = [];
    expect((await read(12345, 2 << 20, (n) => seen.push(n))).equals(data.subarray(12345, 12345 + (2 << 20)))).toBe(
      true,
    );
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((n, i) => i === 0 || n > seen[i - 1])).toBe(true);
    expect(seen[seen.length - 1]).toBe(2 << 20);
    const before = relay.connections;
    for (let i = 0; i < 6; i++) {
      const off = i * 400_000;
      expect((await read(off, 100_000)).equals(data.subarray(off, off + 100_000))).toBe(true);
    }
    expect(relay.connections - before).toBeLessThanOrEqual(1);
    const all = await Promise.all([0, 1, 2, 3].map((i) => read(i << 20, 1 << 20)));
    expect(Buffer.concat(all).equals(data.subarray(0, 4 << 20))).toBe(true);
  });

  it('gives the SDK typed error for a missing key, and a short read for a range past the end', async () => {
    const dst = Buffer.alloc(10);
    const missing = await getRangeInto(s3.client, {
      bucket,
      key: 'nope',
      offset: 0,
      dst,
      connectTimeoutMs: 3000,
      requestTimeoutMs: 30_000,
    }).catch((e: unknown) => e);
    expect(isNoSuchKey(missing)).toBe(true);
    const short = await read(SIZE - 100, 1000).catch((e: unknown) => e);
    expect(isShortRead(short)).toBe(true);
    // The connection pool still serves good reads after the errors.
    expect((await read(5, 50)).equals(data.subarray(5, 55))).toBe(true);
  });

  it('resumes a response cut in the middle: the retry asks only for the missing bytes', async () => {
    relay.requests = [];
    // New connections only (the relay cuts a connection it accepts), so no kept-alive one is used.
    const fresh = openS3Client({ endpoint: `http://127.0.0.1:${(relay.server.address() as net.AddressInfo).port}` });
    relay.cutAfter = 700_000;
    const dst = Buffer.alloc(2 << 20);
    await getRangeInto(fresh.client, {
      bucket,
      key: 'o',
      offset: 1000,
      dst,
      connectTimeoutMs: 3000,
      requestTimeoutMs: 30_000,
    });
    fresh.client.destroy();
    expect(dst.equals(data.subarray(1000, 1000 + (2 << 20)))).toBe(true);
    const ranges = relay.requests.map((r) => /\nrange: bytes=(\d+)-(\d+)/i.exec(r)).filter((m) => m !== null);
    expect(ranges.length).toBe(2);
    expect(Number(ranges[0][1])).toBe(1000);
    const resumed = Number(ranges[1][1]);
    expect(resumed).toBeGreaterThan(1000 + 500_000);
    expect(resumed).toBeLessThan(1000 + 700_000);
    expect(Number(ranges[1][2])).toBe(1000 + (2 << 20) - 1);
  });
});
