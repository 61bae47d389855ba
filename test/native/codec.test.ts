// The raw codec binding (native/bindings/codec.cc), separately from lib/codec.
import { describe, expect, it } from 'vitest';
import { native } from '../../lib/native';
import { gaussian } from '../codec/helpers';

const F32 = 1;

describe('codec binding', () => {
  const a = gaussian(70000, 0.02, 3);
  const data = new Uint8Array(a.buffer);

  it('exports the codec table in id order', () => {
    expect(native.codecNames[0]).toBe('RAW');
    expect(native.codecNames[2]).toBe('PLANES');
    expect(native.codecNames[11]).toBe('LOW_RANK');
  });

  it('sync and async encode/decode agree; decode can fill a caller buffer', async () => {
    const s = native.codecEncode(data, F32, [70000], null, { codec: 2, chunkElems: 4096 });
    const p = await native.codecEncodeAsync(data, F32, [70000], null, { codec: 2, chunkElems: 4096 });
    expect(Buffer.compare(s.bytes, p.bytes)).toBe(0);
    const out = new Uint8Array(data.length);
    expect(native.codecDecode(s.bytes, null, out, 1)).toBe(out);
    expect(Buffer.compare(Buffer.from(out), Buffer.from(data))).toBe(0);
    const d = await native.codecDecodeAsync(s.bytes, null, null, 2);
    expect(Buffer.compare(d, Buffer.from(data))).toBe(0);
    expect(native.codecInspect(s.bytes).chunkElems).toBe(4096);
  });

  it('rejects bad arguments with CORAL_INVALID_ARGUMENT', async () => {
    const s = native.codecEncode(data, F32, [70000], null, { codec: 1 });
    expect(() => native.codecDecode(s.bytes, null, new Uint8Array(10))).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => native.codecEncode(data, F32, [3], null, {})).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => native.codecEncode(data, F32, [70000], null, { codec: 99 })).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => native.codecEncode(data, F32, [70000], null, { chunkElems: 2 ** 23 })).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    expect(() => native.codecEncode(data, F32, [70000], data.subarray(4), { codec: 3 })).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
    await expect(native.codecEncodeAsync(data, F32, [70000], null, { codec: 3 })).rejects.toMatchObject({ code: 'CORAL_INVALID_ARGUMENT' });
  });

  it('rejects garbage and truncated objects as corrupt', () => {
    for (const junk of [Buffer.alloc(0), Buffer.from('CRLO'), Buffer.alloc(200, 7)])
      expect(() => native.codecInspect(junk)).toThrow(expect.objectContaining({ code: 'CORAL_CORRUPT_OBJECT' }));
    const s = native.codecEncode(data, F32, [70000], null, { codec: 2 });
    for (let len = 0; len < s.bytes.length; len += 997)
      expect(() => native.codecDecode(s.bytes.subarray(0, len), null)).toThrow(expect.objectContaining({ code: 'CORAL_CORRUPT_OBJECT' }));
  });

  it('estimates every candidate', () => {
    const base = new Uint8Array(gaussian(70000, 0.02, 4).buffer);
    const est = native.codecEstimate(data, F32, [70000], base, {});
    expect(est.map((e) => native.codecNames[e.codec])).toEqual(
      ['RAW', 'ZSTD', 'PLANES', 'DELTA_XOR', 'DELTA_ORDERED', 'DELTA_EXPMANT', 'SPARSE_UPDATE']);
    expect(est[0].bytes).toBe(data.length);
  });
});
