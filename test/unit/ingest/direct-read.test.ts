// DirectFile (lib/ingest/direct-read.ts) and the git clean's spool (lib/git/spool.ts): a file
// written with O_DIRECT and read back with O_DIRECT is byte-exact at any offset and length (ranges
// across the staging buffer's edges, the unaligned tail), its SHA-256 is the content's, a read past
// the end is a FormatError, and the same holds with direct I/O turned off (CORAL_NO_DIRECT_IO=1).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FormatError } from '../../../lib/errors';
import { createSpool } from '../../../lib/git/spool';
import { DirectFile } from '../../../lib/ingest/direct-read';

const dirs: string[] = [];
const saved = process.env.CORAL_NO_DIRECT_IO;
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  if (saved === undefined) delete process.env.CORAL_NO_DIRECT_IO;
  else process.env.CORAL_NO_DIRECT_IO = saved;
});

const MiB = 1 << 20;

function content(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    b[i] = s >>> 24;
  }
  return b;
}

async function spoolAndRead(noDirect: boolean): Promise<void> {
  if (noDirect) process.env.CORAL_NO_DIRECT_IO = '1';
  else delete process.env.CORAL_NO_DIRECT_IO;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-direct-'));
  dirs.push(dir);
  const file = path.join(dir, 'spool');
  // Not a multiple of the block size, and more than two staging buffers.
  const data = content(19 * MiB + 12345, noDirect ? 2 : 1);
  const sw = createSpool(file);
  // Appends of odd sizes, as a clean's batches end wherever git's packets do.
  for (let o = 0, k = 0; o < data.length; k++) {
    const n = Math.min(data.length - o, [4 * MiB, 65516, 3 * MiB + 7][k % 3]);
    await sw.append(data.subarray(o, o + n));
    o += n;
  }
  expect(await sw.finish()).toBe(crypto.createHash('sha256').update(data).digest('hex'));
  expect(fs.statSync(file).size).toBe(data.length);
  expect(fs.readFileSync(file).equals(data)).toBe(true);

  const df = DirectFile.open(file);
  try {
    if (noDirect) expect(df.isDirect).toBe(false);
    expect((await df.stat()).size).toBe(data.length);
    // In order, as an ingest reads (a header, segments, gaps), then backwards and across edges.
    const ranges: Array<[number, number]> = [
      [0, 8],
      [8, 1000],
      [1008, 16 * MiB],
      [16 * MiB + 1008, 3 * MiB],
      [19 * MiB + 1008, data.length - (19 * MiB + 1008)],
      [8 * MiB - 3, 6],
      [5, 8 * MiB + 4096],
      [data.length - 1, 1],
    ];
    for (const [pos, len] of ranges) {
      const dst = Buffer.alloc(len);
      await df.read(dst, pos);
      expect(dst.equals(data.subarray(pos, pos + len))).toBe(true);
    }
    await expect(df.read(Buffer.alloc(10), data.length - 5)).rejects.toBeInstanceOf(FormatError);
    await expect(df.read(Buffer.alloc(1), data.length)).rejects.toBeInstanceOf(FormatError);
  } finally {
    df.close();
    df.close();
  }
}

describe('DirectFile and the spool writer', () => {
  it('write and read back byte for byte with direct I/O', () => spoolAndRead(false));
  it('write and read back byte for byte with CORAL_NO_DIRECT_IO=1', () => spoolAndRead(true));

  it('a spool refuses an existing file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-direct-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'x'), 'x');
    expect(() => createSpool(path.join(dir, 'x'))).toThrow();
  });
});
