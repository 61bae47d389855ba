// decode's `verify: false` (DecodeOptions): the content id check, and only it, is skipped, for
// callers that verify the bytes another way (checkout's file sha256); and the checkout path names
// a bad object after a file mismatch (lib/worktree/materialize.ts verifySegments).
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { decode, encode, inspectObject } from '../../lib/codec';
import { ChecksumMismatchError, InvalidArgumentError } from '../../lib/errors';
import { ObjectReader } from '../../lib/odb/objects';
import { LocalPackStore } from '../../lib/store/local';
import { tensor } from '../../lib/tensor/tensor';
import { fileChunks, verifySegments } from '../../lib/worktree/materialize';
import { tmpDir } from '../store/helpers';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A RAW object's bytes with one payload byte flipped: it decodes to other bytes than its id says. */
function flipped(bytes: Uint8Array): Buffer {
  const b = Buffer.from(bytes);
  b[inspectObject(bytes).headerSize + 5] ^= 0x40;
  return b;
}

const sample = (n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37) * 0.05;
  return tensor('F32', [n], new Uint8Array(a.buffer));
};

describe('decode verify: false', () => {
  for (const n of [1000, (2 << 20) / 4])
    it(`skips only the content id check (${n * 4} bytes, ${n * 4 >= 1 << 20 ? 'async' : 'sync'} path)`, async () => {
      const x = sample(n);
      const enc = await encode(x, { codec: 'RAW' });
      const bad = flipped(enc.bytes);
      await expect(decode(bad)).rejects.toMatchObject({ code: ChecksumMismatchError.code });
      const got = await decode(bad, null, { verify: false });
      const want = Buffer.from(x.data);
      want[5] ^= 0x40;
      expect(Buffer.from(got.data).equals(want)).toBe(true);
      expect(Buffer.from((await decode(enc.bytes, null, { verify: false })).data).equals(Buffer.from(x.data))).toBe(
        true,
      );
      await expect(decode(enc.bytes, null, { verify: 'no' as never })).rejects.toBeInstanceOf(InvalidArgumentError);
    });
});

describe('checkout of an object that decodes to other bytes than its id says', () => {
  it('streams without the id check, and verifySegments names the object', async () => {
    const d = tmpDir('verify');
    dirs.push(d);
    const store = await LocalPackStore.open(d, { fsync: false });
    const x = sample((6 << 20) / 4);
    const enc = await encode(x, { codec: 'RAW' });
    const skel = tensor('U8', [8], new Uint8Array(8));
    const skEnc = await encode(skel, { codec: 'RAW' });
    const tx = store.beginWrite();
    const attrs = (id: string, codec: string, dtype: string, shape: number[], raw: number, stored: number) => ({
      id,
      codec,
      dtype,
      shape,
      base: '',
      rawSize: raw,
      storedSize: stored,
      extra: { depth: '0' },
    });
    const bad = flipped(enc.bytes);
    await tx.put(enc.id, bad, attrs(enc.id, enc.codec, 'F32', [...x.shape], x.data.byteLength, bad.byteLength));
    await tx.put(skEnc.id, skEnc.bytes, attrs(skEnc.id, 'RAW', 'U8', [8], 8, skEnc.bytes.byteLength));
    await tx.commit();
    const reader = new ObjectReader(store);
    const entry = {
      format: 'safetensors',
      size: 8 + x.data.byteLength,
      sha256: '0'.repeat(64),
      skeleton: skEnc.id,
      segments: [{ offset: 8, length: x.data.byteLength, object: enc.id, dtype: 'F32', shape: x.shape }],
      tensors: [],
    } as never;
    // With the file's sha256 checked by the consumer, the segment is not checked on its own
    // (the consumer's sha256 check is what refuses these bytes).
    const parts: Buffer[] = [];
    for await (const c of fileChunks(reader, entry, undefined, { release: true, checkedBySha256: true }))
      parts.push(Buffer.from(c));
    const want = Buffer.from(x.data);
    want[5] ^= 0x40;
    expect(Buffer.concat(parts).subarray(8).equals(want)).toBe(true);
    // Without it, the decode refuses; and verifySegments names the object.
    await expect(async () => {
      for await (const c of fileChunks(reader, entry, undefined, { release: true })) void c;
    }).rejects.toMatchObject({ code: ChecksumMismatchError.code });
    await expect(verifySegments(reader, entry)).rejects.toMatchObject({ code: ChecksumMismatchError.code });
    await store.close();
  });
});
