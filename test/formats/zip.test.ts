import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError, LimitExceededError, UnsupportedFormatError } from '../../lib/errors';
import { BufferSource, MemorySink } from '../../lib/formats/io';
import { ZipWriter, readZipDirectory, readZipEntry } from '../../lib/formats/zip';
import { expectCode, hasTorch, py, rng, tmpDir } from './helpers';

async function makeZip(opts: { forceZip64?: boolean } = {}): Promise<Buffer> {
  const sink = new MemorySink();
  const zw = new ZipWriter(sink, opts);
  const r = rng(5);
  await zw.add('a/data.pkl', r(100));
  await zw.add('a/data/0', r(1000));
  await zw.add('a/deflated.txt', Buffer.from('hello '.repeat(100)), { method: 'deflate' });
  await zw.add('a/empty', new Uint8Array(0));
  await zw.add('a/ünï.bin', r(3));
  await zw.finish();
  return sink.toBuffer();
}

describe('zip', () => {
  it('round-trips stored/deflated members with 64-byte aligned payloads (and ZIP64 records)', async () => {
    for (const forceZip64 of [false, true]) {
      const z = await makeZip({ forceZip64 });
      const src = new BufferSource(z);
      const dir = await readZipDirectory(src);
      expect(dir.zip64).toBe(forceZip64);
      expect(dir.entries.map((e) => e.name)).toEqual([
        'a/data.pkl',
        'a/data/0',
        'a/deflated.txt',
        'a/empty',
        'a/ünï.bin',
      ]);
      for (const e of dir.entries) if (e.method === 0) expect(e.dataOffset % 64).toBe(0);
      const r = rng(5);
      expect(Buffer.from(await readZipEntry(src, dir.entries[0]))).toEqual(Buffer.from(r(100)));
      expect(Buffer.from(await readZipEntry(src, dir.entries[1]))).toEqual(Buffer.from(r(1000)));
      expect(Buffer.from(await readZipEntry(src, dir.entries[2])).toString()).toBe('hello '.repeat(100));
      expect((await readZipEntry(src, dir.entries[3])).byteLength).toBe(0);
    }
  });

  it.skipIf(!hasTorch)('interoperates with python zipfile both ways (incl. ZIP64 and comments)', async () => {
    const dir = tmpDir();
    const ours = path.join(dir, 'ours.zip');
    fs.writeFileSync(ours, await makeZip({ forceZip64: true }));
    const theirs = path.join(dir, 'theirs.zip');
    const out = py(
      `
import zipfile, sys, json, hashlib
z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None
names = [i.filename for i in z.infolist()]
with zipfile.ZipFile(sys.argv[2], 'w') as w:
    w.comment = b'a comment'
    with w.open('big.npy', 'w', force_zip64=True) as f: f.write(b'x' * 5000)
    w.writestr('d.txt', b'deflate me ' * 50, compress_type=zipfile.ZIP_DEFLATED)
print(json.dumps(names))
`,
      ours,
      theirs,
    );
    expect(JSON.parse(out)).toEqual(['a/data.pkl', 'a/data/0', 'a/deflated.txt', 'a/empty', 'a/ünï.bin']);
    const src = new BufferSource(fs.readFileSync(theirs));
    const d = await readZipDirectory(src);
    expect(d.entries.map((e) => [e.name, e.uncompressedSize])).toEqual([
      ['big.npy', 5000],
      ['d.txt', 550],
    ]);
    expect(Buffer.from(await readZipEntry(src, d.entries[1])).toString()).toBe('deflate me '.repeat(50));
    fs.rmSync(dir, { recursive: true });
  });

  describe('rejects damaged archives', () => {
    it('truncation anywhere', async () => {
      const z = await makeZip();
      for (const cut of [0, 10, 200, z.byteLength - 30, z.byteLength - 1]) {
        await expectCode(readZipDirectory(new BufferSource(z.subarray(0, cut))), FormatError.code);
      }
    });
    it('central directory offset out of range', async () => {
      const z = await makeZip();
      z.writeUInt32LE(z.byteLength + 100, z.byteLength - 6);
      await expectCode(readZipDirectory(new BufferSource(z)), FormatError.code);
    });
    it('overlapping members', async () => {
      const z = await makeZip();
      const cd = z.indexOf(Buffer.from([0x50, 0x4b, 1, 2]));
      z.writeUInt32LE(5000, cd + 20); // first member's compressed size now covers the next one
      z.writeUInt32LE(5000, cd + 24);
      await expectCode(readZipDirectory(new BufferSource(z)), FormatError.code);
    });
    it('CRC mismatch, unknown method, encryption, inflate bombs, size limits', async () => {
      const z = await makeZip();
      const src = new BufferSource(z);
      const dir = await readZipDirectory(src);
      await expectCode(readZipEntry(src, { ...dir.entries[1], crc32: 1234 }), FormatError.code);
      await expectCode(readZipEntry(src, { ...dir.entries[1], method: 12 }), UnsupportedFormatError.code);
      await expectCode(readZipEntry(src, { ...dir.entries[2], uncompressedSize: 10 }), FormatError.code);
      await expectCode(readZipEntry(src, dir.entries[1], { maxBytes: 10 }), LimitExceededError.code);
      await expectCode(readZipEntry(src, { ...dir.entries[2], compressedSize: 5 }), FormatError.code);
      const enc = Buffer.from(z);
      const cd = enc.indexOf(Buffer.from([0x50, 0x4b, 1, 2]));
      enc.writeUInt16LE(1, cd + 8);
      await expectCode(readZipDirectory(new BufferSource(enc)), UnsupportedFormatError.code);
    });
    it('entry counts the directory cannot hold', async () => {
      const z = await makeZip();
      z.writeUInt16LE(60000, z.byteLength - 12);
      z.writeUInt16LE(60000, z.byteLength - 14);
      await expectCode(readZipDirectory(new BufferSource(z)), FormatError.code);
    });
  });
});
