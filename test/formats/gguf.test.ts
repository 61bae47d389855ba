// GGUF stored byte-exact (header, metadata in order with its value types, tensor infos, the actual
// padding bytes, trailing bytes), checked by an independent reader (@huggingface/gguf) on the files
// the fixture generator writes and on the round-trip output; quantized tensors are opaque U8 rows.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gguf } from '@huggingface/gguf';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError, LimitExceededError, UnsupportedFormatError } from '../../lib/errors';
import { BufferSource, scanCheckpoint, scanSource } from '../../lib/formats';
import { readGgufHeader } from '../../lib/formats/gguf';
import { Repository } from '../../lib/repository';
import { expectCode, tmpDir } from './helpers';
import { T, llamaLike, tensorBytes, writeGguf, type GgufSpec } from './gguf-fixture';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function dir(): string {
  const d = tmpDir();
  dirs.push(d);
  return d;
}
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** What the independent reader sees: metadata, tensor infos, data offset. */
async function independent(file: string) {
  const r = await gguf(file, { allowLocalFile: true });
  return {
    metadata: JSON.parse(JSON.stringify(r.metadata, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))) as Record<
      string,
      unknown
    >,
    tensors: r.tensorInfos.map((t) => ({
      name: t.name,
      shape: t.shape.map(Number),
      dtype: t.dtype,
      offset: Number(t.offset),
    })),
    dataOffset: Number(r.tensorDataOffset),
    littleEndian: r.littleEndian,
  };
}

describe('GGUF layout', () => {
  it('matches @huggingface/gguf on header, metadata, tensor infos and data offset', async () => {
    const d = dir();
    const file = path.join(d, 'tiny.gguf');
    fs.writeFileSync(
      file,
      writeGguf({ ...llamaLike({ alignment: 64, padByte: 0xa5 }), trailing: Buffer.from('trailer') }),
    );
    const ref = await independent(file);
    const h = await readGgufHeader(new BufferSource(fs.readFileSync(file), file));
    expect(h.version).toBe(3);
    expect(h.alignment).toBe(64);
    expect(h.dataStart).toBe(ref.dataOffset);
    expect(ref.metadata['general.alignment']).toBe(64);
    expect(ref.metadata['test.nested']).toEqual([
      [1, 2, 3],
      ['a', 'bc'],
    ]);
    expect(h.kv.map((e) => e.key)).toEqual(
      Object.keys(ref.metadata).filter((k) => !['version', 'tensor_count', 'kv_count'].includes(k)),
    );
    expect(h.tensors.map((t) => ({ name: t.name, shape: t.dims, dtype: t.type, offset: t.relOffset }))).toEqual(
      ref.tensors,
    );

    const layout = await scanCheckpoint(file);
    expect(layout.format).toBe('gguf');
    expect(layout.metadata).toMatchObject({
      'general.architecture': 'llama',
      'gguf.version': '3',
      'gguf.alignment': '64',
    });
    const byName = new Map(layout.tensors.map((t) => [t.name, t]));
    expect(byName.get('blk.0.attn_norm.weight')).toMatchObject({ dtype: 'F32', shape: [256] });
    expect(byName.get('blk.0.ffn_norm.weight')).toMatchObject({ dtype: 'F16', shape: [17] });
    expect(byName.get('output_norm.weight')).toMatchObject({ dtype: 'BF16', shape: [3, 5] });
    // Quantized: U8 rows of whole blocks (Q4_K 256 -> 144 bytes, Q8_0 32 -> 34, Q4_0 32 -> 18, Q6_K 256 -> 210).
    expect(byName.get('token_embd.weight')).toMatchObject({ dtype: 'U8', shape: [8, 144] });
    expect(byName.get('blk.0.attn_q.weight')).toMatchObject({ dtype: 'U8', shape: [4, 8 * 34] });
    expect(byName.get('blk.0.attn_k.weight')).toMatchObject({ dtype: 'U8', shape: [3, 2 * 18] });
    expect(byName.get('blk.0.ffn_up.weight')).toMatchObject({ dtype: 'U8', shape: [2, 210] });
    const bytes = fs.readFileSync(file);
    // The padding after the odd-sized F16 tensor is 0xa5 and is not inside any segment.
    const f16 = layout.segments[byName.get('blk.0.ffn_norm.weight')!.segment];
    expect(bytes[f16.offset + f16.length]).toBe(0xa5);
    expect(bytes.subarray(bytes.length - 7).toString()).toBe('trailer');
  });

  it('version 2 and the default alignment; a file with no tensors', async () => {
    const v2 = writeGguf({ ...llamaLike(), version: 2 });
    const l = await scanSource(new BufferSource(v2, 'v2.gguf'));
    expect(l.format).toBe('gguf');
    expect(l.metadata!['gguf.alignment']).toBe('32');
    const empty = await scanSource(new BufferSource(writeGguf({ kv: [['a', T.STRING, 'b']], tensors: [] })));
    expect(empty.segments).toEqual([]);
  });
});

describe('GGUF in a repository', () => {
  it('round-trips byte-exact; the independent reader sees the same file; a re-quantized sibling deduplicates and delta-encodes', async () => {
    const d = dir();
    const repo = await Repository.init(d);
    try {
      const spec = llamaLike({ alignment: 32, padByte: 0x5a });
      const file = path.join(d, 'model-Q4_K.gguf');
      fs.writeFileSync(file, writeGguf({ ...spec, trailing: Uint8Array.from([1, 2, 3]) }));
      const before = sha(file);
      const ref = await independent(file);
      await repo.add([file]);
      await repo.commit({ message: 'base gguf' });
      fs.rmSync(file);
      await repo.checkout('main', { force: true });
      expect(sha(file)).toBe(before);
      expect(await independent(file)).toEqual(ref);

      // A fine-tune: one quantized tensor has a few changed blocks, one norm changed, the rest identical.
      const tuned: GgufSpec = structuredClone(spec);
      const out = tuned.tensors.find((t) => t.name === 'output.weight')!;
      out.data = Uint8Array.from(out.data!);
      for (let i = 0; i < 40; i++) out.data[i * 13] ^= 1;
      const norm = tuned.tensors.find((t) => t.name === 'blk.0.attn_norm.weight')!;
      norm.data = Uint8Array.from(norm.data!);
      norm.data[3] ^= 0x10;
      fs.writeFileSync(file, writeGguf({ ...tuned, trailing: Uint8Array.from([1, 2, 3]) }));
      const report = await repo.add([file]);
      const f = report.files[0];
      expect(f.segments).toBe(8);
      expect(f.dedupedObjects).toBeGreaterThanOrEqual(6);
      expect(f.deltaObjects).toBeGreaterThanOrEqual(1);
      await repo.commit({ message: 'tuned' });
      const diff = await repo.diff('HEAD~1', 'HEAD');
      expect(diff[0].tensors.map((t) => t.name).sort()).toEqual(['blk.0.attn_norm.weight', 'output.weight']);
      const tunedSha = sha(file);
      fs.rmSync(file);
      await repo.checkout('main', { force: true });
      expect(sha(file)).toBe(tunedSha);
    } finally {
      await repo.close();
    }
  });
});

describe('hostile GGUF files get typed errors', () => {
  const scan = (b: Buffer) => scanSource(new BufferSource(b, 'bad.gguf'), { format: 'gguf' });
  const good = writeGguf(llamaLike());

  it('truncated anywhere', async () => {
    for (const cut of [10, 30, 200, 700, good.length - 1]) {
      const e = await expectCode(scan(good.subarray(0, cut)), FormatError.code);
      expect(e.message).toMatch(/past the end|too short|can hold/);
    }
  });

  it('big-endian files are refused with a clear error', async () => {
    const be = writeGguf({ ...llamaLike(), bigEndian: true });
    const e = await expectCode(scan(be), UnsupportedFormatError.code);
    expect(e.message).toMatch(/big-endian/);
  });

  it('unknown versions and ggml types', async () => {
    await expectCode(scan(writeGguf({ ...llamaLike(), version: 1 })), UnsupportedFormatError.code);
    await expectCode(scan(writeGguf({ ...llamaLike(), version: 7 })), UnsupportedFormatError.code);
    await expectCode(
      scan(writeGguf({ kv: [], tensors: [{ name: 'x', dims: [32], type: 4, data: new Uint8Array(32) }] })),
      UnsupportedFormatError.code,
    );
  });

  it('absurd counts, string lengths, dims and nesting', async () => {
    const b = Buffer.from(good);
    b.writeBigUInt64LE(2n ** 62n, 8); // tensor count
    await expectCode(scan(b), LimitExceededError.code);
    const c = Buffer.from(good);
    c.writeBigUInt64LE(1000n, 16); // kv count the file cannot hold
    await expectCode(scan(c), FormatError.code);
    const s = Buffer.from(good);
    s.writeBigUInt64LE(2n ** 50n, 24); // first key's length
    await expectCode(scan(s), LimitExceededError.code);
    await expectCode(
      scan(writeGguf({ kv: [], tensors: [{ name: 'x', dims: [2 ** 40, 2 ** 40], type: 0, data: new Uint8Array(4) }] })),
      LimitExceededError.code,
    );
    await expectCode(
      scan(writeGguf({ kv: [], tensors: [{ name: 'x', dims: [1, 1, 1, 1, 1], type: 0, data: new Uint8Array(4) }] })),
      FormatError.code,
    );
    let nested: { array: number; items: never[] } | { array: number; items: unknown[] } = { array: T.INT32, items: [] };
    for (let i = 0; i < 50; i++) nested = { array: T.ARRAY, items: [nested] };
    await expectCode(
      scan(writeGguf({ kv: [['bomb', T.ARRAY, nested as never]], tensors: [] })),
      LimitExceededError.code,
    );
    // An array of 2^40 strings in a small file.
    const arr = writeGguf({ kv: [['a', T.ARRAY, { array: T.STRING, items: ['x'] }]], tensors: [] });
    arr.writeBigUInt64LE(2n ** 40n, 24 + 8 + 1 + 4 + 4);
    await expectCode(scan(arr), FormatError.code);
  });

  it('quantized rows that are not whole blocks, misaligned and overlapping offsets, a tensor past the end', async () => {
    await expectCode(
      scan(writeGguf({ kv: [], tensors: [{ name: 'q', dims: [33], type: 2, data: new Uint8Array(18) }] })),
      FormatError.code,
    );
    const two = writeGguf({
      kv: [],
      tensors: [
        { name: 'a', dims: [8], type: 0 },
        { name: 'b', dims: [8], type: 0 },
      ],
    });
    // b's offset is the u64 right before the padding; offsets are 0 and 32.
    const at = two.indexOf(Buffer.from('b', 'latin1'), 40) + 1 + 4 + 8 + 4;
    const mis = Buffer.from(two);
    mis.writeBigUInt64LE(4n, at);
    await expectCode(scan(mis), FormatError.code);
    const over = Buffer.from(two);
    over.writeBigUInt64LE(0n, at);
    await expectCode(scan(over), FormatError.code);
    const past = Buffer.from(two);
    past.writeBigUInt64LE(BigInt(two.length), at);
    await expectCode(scan(past), FormatError.code);
    expect(tensorBytes(12, [512, 2])).toBe(4 * 144);
  });
});
