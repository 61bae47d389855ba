import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError, LimitExceededError, UnsupportedFormatError } from '../../lib/errors';
import { BufferSource, type ByteSource } from '../../lib/formats/io';
import {
  parseSafetensorsHeader,
  SafetensorsFile,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from '../../lib/formats/safetensors';
import { allDtypeTensors, expectCode, hasTorch, hex, py, tmpDir } from './helpers';

function file(header: unknown, data: Uint8Array = new Uint8Array(0), rawHeader?: string): Buffer {
  const json = Buffer.from(rawHeader ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.byteLength));
  return Buffer.concat([len, json, data]);
}

describe('safetensors', () => {
  it('matches the reference crate byte for byte', () => {
    const data = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
    const out = serializeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data } });
    expect([...out]).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34,
      70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95,
      111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0,
      64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    // forced alignment: 7 spaces of padding
    const out2 = serializeSafetensors({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data } });
    expect(out2.readBigUInt64LE(0)).toBe(72n);
    expect(out2.subarray(8 + 65, 8 + 72).toString()).toBe('       ');
    expect([...serializeSafetensors({})]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect([...serializeSafetensors({}, { framework: 'pt' })]).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114,
      97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
  });

  it('orders tensors by descending dtype alignment, then name', async () => {
    const t = allDtypeTensors();
    const buf = serializeSafetensors(t);
    const f = await SafetensorsFile.open(buf);
    const order = f
      .names()
      .filter((n) => n.startsWith('t_'))
      .map((n) => n.slice(2));
    expect(order).toEqual([
      'U64',
      'I64',
      'F64',
      'F32',
      'U32',
      'I32',
      'BF16',
      'F16',
      'U16',
      'I16',
      'F8_E4M3',
      'F8_E5M2',
      'I8',
      'U8',
      'BOOL',
    ]);
    // every multi-byte tensor starts aligned to its element size
    for (const e of f.entries)
      expect(
        e.offset %
          (
            { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2 } as Record<
              string,
              number
            >
          )[e.dtype] || 0,
      ).toBe(0);
  });

  it('round-trips every dtype, 0-d and zero-size tensors, and metadata bit-exactly', async () => {
    const t = allDtypeTensors();
    const dir = tmpDir();
    const p = path.join(dir, 'all.safetensors');
    await writeSafetensors(p, t, { format: 'pt', note: 'é中' });
    expect(fs.readFileSync(p)).toEqual(serializeSafetensors(t, { format: 'pt', note: 'é中' }));
    const back = await readSafetensors(p);
    expect(back.metadata).toEqual({ format: 'pt', note: 'é中' });
    expect([...back.tensors.keys()].sort()).toEqual(Object.keys(t).sort());
    for (const [k, v] of Object.entries(t)) {
      const b = back.tensors.get(k)!;
      expect(b.dtype).toBe(v.dtype);
      expect(b.shape).toEqual(v.shape);
      expect(hex(b.data)).toBe(hex(v.data));
    }
    fs.rmSync(dir, { recursive: true });
  });

  it('reads only the header on open and one tensor range on demand', async () => {
    const buf = serializeSafetensors({
      a: { dtype: 'F32', shape: [1000], data: new Uint8Array(4000) },
      b: { dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) },
    });
    const inner = new BufferSource(buf);
    let bytesRead = 0;
    const counting: ByteSource = {
      size: inner.size,
      label: 'counting',
      read: async (o, l, w) => {
        bytesRead += l;
        return inner.read(o, l, w);
      },
    };
    const f = await SafetensorsFile.open(counting);
    const headerBytes = bytesRead;
    expect(headerBytes).toBeLessThan(200);
    const b = await f.tensor('b');
    expect([...b.data]).toEqual([1, 2, 3]);
    expect(bytesRead - headerBytes).toBe(3);
  });

  it.skipIf(!hasTorch)('interoperates with python (struct+json parser and writer)', () => {
    const dir = tmpDir();
    const p = path.join(dir, 'ours.safetensors');
    const t = {
      w: {
        dtype: 'F32' as const,
        shape: [2, 3],
        data: new Uint8Array(new Float32Array([1, -2, 3.5, 0, -0, 1e-40]).buffer),
      },
      h: { dtype: 'BF16' as const, shape: [2], data: Uint8Array.of(0x80, 0x3f, 0x00, 0xc0) },
      i: { dtype: 'I64' as const, shape: [], data: new Uint8Array(new BigInt64Array([-5n]).buffer) },
    };
    fs.writeFileSync(p, serializeSafetensors(t, { k: 'v' }));
    const out = py(
      `
import json, struct, sys, torch
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8+n])
m = {'F32': torch.float32, 'BF16': torch.bfloat16, 'I64': torch.int64}
res = {'meta': h.pop('__metadata__')}
for k, v in h.items():
    s, e = v['data_offsets']
    x = torch.frombuffer(bytearray(b[8+n+s:8+n+e]), dtype=m[v['dtype']]).reshape(v['shape'])
    res[k] = x.float().tolist()
print(json.dumps(res))
`,
      p,
    );
    const r = JSON.parse(out);
    expect(r.meta).toEqual({ k: 'v' });
    expect(r.w).toEqual([
      [1, -2, 3.5],
      [0, -0, Math.fround(1e-40)],
    ]);
    expect(r.h).toEqual([1, -2]);
    expect(r.i).toBe(-5);
    // python writes one by hand (unsorted offsets order in JSON, metadata last)
    const q = path.join(dir, 'py.safetensors');
    py(
      `
import json, struct, sys
a = struct.pack('<3f', 1.0, 2.0, 3.0); b = struct.pack('<2h', -1, 7)
h = {'b': {'dtype': 'I16', 'shape': [2], 'data_offsets': [12, 16]}, 'a': {'dtype': 'F32', 'shape': [3], 'data_offsets': [0, 12]}, '__metadata__': {'x': 'y'}}
j = json.dumps(h).encode()
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(j)) + j + a + b)
`,
      q,
    );
    return readSafetensors(q).then((back) => {
      expect(back.metadata).toEqual({ x: 'y' });
      expect([...new Float32Array(new Uint8Array(back.tensors.get('a')!.data).buffer)]).toEqual([1, 2, 3]);
      expect([...new Int16Array(new Uint8Array(back.tensors.get('b')!.data).buffer)]).toEqual([-1, 7]);
      fs.rmSync(dir, { recursive: true });
    });
  });

  describe('rejects bad input with typed errors', () => {
    const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
    const data8 = new Uint8Array(8);
    const cases: [string, Buffer, string][] = [
      ['file shorter than 8 bytes', Buffer.from([1, 2, 3]), FormatError.code],
      [
        'header length past EOF',
        (() => {
          const b = file(ok, data8);
          b.writeBigUInt64LE(10_000n);
          return b;
        })(),
        FormatError.code,
      ],
      [
        'header length > 100 MB',
        (() => {
          const b = Buffer.alloc(16);
          b.writeBigUInt64LE(200_000_000n);
          return b;
        })(),
        LimitExceededError.code,
      ],
      [
        'header length 2^63',
        (() => {
          const b = Buffer.alloc(16);
          b.writeBigUInt64LE(1n << 63n);
          return b;
        })(),
        LimitExceededError.code,
      ],
      ['invalid JSON', file(null, data8, '{"a": {'), FormatError.code],
      ['invalid UTF-8', file(null, data8, '{"a\udc00": 1}').fill(0xff, 10, 11), FormatError.code],
      ['header not an object', file([1, 2]), FormatError.code],
      [
        'unknown dtype',
        file({ a: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, data8),
        UnsupportedFormatError.code,
      ],
      ['missing dtype', file({ a: { shape: [2], data_offsets: [0, 8] } }, data8), FormatError.code],
      ['shape/byte mismatch', file({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data8), FormatError.code],
      [
        'offsets out of range',
        file({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data8),
        FormatError.code,
      ],
      ['end before start', file({ a: { dtype: 'U8', shape: [0], data_offsets: [8, 0] } }, data8), FormatError.code],
      [
        'overlapping tensors',
        file(
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
          },
          data8,
        ),
        FormatError.code,
      ],
      ['gap in the buffer', file({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, data8), FormatError.code],
      ['trailing bytes', file(ok, new Uint8Array(9)), FormatError.code],
      ['truncated data', file(ok, new Uint8Array(7)), FormatError.code],
      [
        'absurd shape [2^40, 2^40]',
        file({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, data8),
        LimitExceededError.code,
      ],
      [
        'dimension 2^64',
        file(null, data8, '{"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}}'),
        LimitExceededError.code,
      ],
      [
        'huge but < 2^53 shape',
        file({ a: { dtype: 'F32', shape: [2 ** 40], data_offsets: [0, 8] } }, data8),
        FormatError.code,
      ],
      ['negative dimension', file({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data8), FormatError.code],
      [
        'fractional dimension',
        file({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 8] } }, data8),
        FormatError.code,
      ],
      [
        'rank 1000',
        file({ a: { dtype: 'F32', shape: new Array(1000).fill(1), data_offsets: [0, 4] } }, new Uint8Array(4)),
        LimitExceededError.code,
      ],
      ['metadata value not a string', file({ __metadata__: { a: 1 } }), FormatError.code],
      ['bad data_offsets', file({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, data8), FormatError.code],
    ];
    for (const [name, bytes, code] of cases) {
      it(name, async () => {
        const t0 = Date.now();
        await expectCode(readSafetensors(bytes), code);
        expect(Date.now() - t0).toBeLessThan(1000);
      });
    }

    it('truncated file on disk', async () => {
      const dir = tmpDir();
      const p = path.join(dir, 'x.safetensors');
      const good = serializeSafetensors(allDtypeTensors());
      for (const cut of [1, 7, 8, 20, good.byteLength - 1]) {
        fs.writeFileSync(p, good.subarray(0, cut));
        await expectCode(readSafetensors(p), cut < 8 || cut < good.byteLength ? FormatError.code : '');
      }
      fs.rmSync(dir, { recursive: true });
    });
  });
});

describe('safetensors header of a stream of unknown length', () => {
  const header = (o: object) => new TextEncoder().encode(JSON.stringify(o));
  it('takes the size the header implies, and still refuses overlaps and gaps', () => {
    const h = parseSafetensorsHeader(
      header({
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'U8', shape: [3], data_offsets: [8, 11] },
      }),
      null,
    );
    expect(h.entries.map((e) => e.name)).toEqual(['a', 'b']);
    expect(h.dataStart + h.entries[1].dataOffsets[1]).toBe(h.dataStart + 11);
    expect(() =>
      parseSafetensorsHeader(
        header({
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        }),
        null,
      ),
    ).toThrow(FormatError);
    expect(() =>
      parseSafetensorsHeader(header({ a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), null),
    ).toThrow(FormatError);
    expect(() =>
      parseSafetensorsHeader(header({ a: { dtype: 'U8', shape: [1], data_offsets: [0, 2 ** 60] } }), null),
    ).toThrow(FormatError);
  });
});
