import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError, LimitExceededError, UnsupportedFormatError } from '../../lib/errors';
import { readNpy, readNpz, serializeNpy, serializeNpz, writeNpy, writeNpz } from '../../lib/formats/numpy';
import { DTYPE_NAMES } from '../../lib/tensor/dtype';
import { FIXTURES, allDtypeTensors, expectCode, hasTorch, hex, py, randomTensor, tmpDir } from './helpers';

const expected: Record<string, { descr: string; shape: number[]; hex: string }> = JSON.parse(
  fs.readFileSync(path.join(FIXTURES, 'arrays.expected.json'), 'utf8'),
);

function npy(header: string, data: Uint8Array = new Uint8Array(0), version = 1): Buffer {
  const h = Buffer.from(header, 'latin1');
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const len = version === 1 ? Buffer.alloc(2) : Buffer.alloc(4);
  if (version === 1) len.writeUInt16LE(h.byteLength);
  else len.writeUInt32LE(h.byteLength);
  return Buffer.concat([pre, len, h, data]);
}

describe('numpy .npy/.npz', () => {
  it('reads np.save fixtures (incl. Fortran order, 0-d, empty) and writes them back byte-identically', async () => {
    for (const [k, e] of Object.entries(expected)) {
      const file = path.join(FIXTURES, `${k}.npy`);
      const t = await readNpy(file);
      expect(t.shape, k).toEqual(e.shape);
      expect(hex(t.data), k).toBe(e.hex);
      if (k !== 'fortran') expect(serializeNpy(t).equals(fs.readFileSync(file)), k).toBe(true);
    }
  });

  it('reads np.savez and np.savez_compressed', async () => {
    for (const f of ['arrays.npz', 'arrays_compressed.npz']) {
      const m = await readNpz(path.join(FIXTURES, f));
      expect([...m.keys()].sort()).toEqual(Object.keys(expected).sort());
      for (const [k, e] of Object.entries(expected)) expect(hex(m.get(k)!.data), `${f}:${k}`).toBe(e.hex);
    }
  });

  it('round-trips every numpy-representable dtype; BF16/F8 are refused clearly', async () => {
    for (const [k, t] of Object.entries(allDtypeTensors())) {
      if (['BF16', 'F8_E4M3', 'F8_E5M2'].includes(t.dtype)) {
        const e = await expectCode(() => serializeNpy(t), UnsupportedFormatError.code);
        expect(e.message).toMatch(/no NumPy equivalent/);
        continue;
      }
      const back = await readNpy(serializeNpy(t));
      expect([back.dtype, back.shape, hex(back.data)], k).toEqual([t.dtype, t.shape, hex(t.data)]);
    }
    const npzIn = Object.fromEntries(
      DTYPE_NAMES.filter((d) => !/BF16|F8/.test(d)).map((d, i) => [d, randomTensor(d, [2, 3], i)]),
    );
    for (const compress of [false, true]) {
      const back = await readNpz(await serializeNpz(npzIn, { compress }));
      for (const [k, t] of Object.entries(npzIn)) expect(hex(back.get(k)!.data)).toBe(hex(t.data));
    }
  });

  it.skipIf(!hasTorch)('numpy loads what we write', async () => {
    const dir = tmpDir();
    const ts = Object.fromEntries(
      DTYPE_NAMES.filter((d) => !/BF16|F8/.test(d)).map((d, i) => [d, randomTensor(d, i % 2 ? [3, 2] : [], i)]),
    );
    await writeNpz(path.join(dir, 's.npz'), ts);
    await writeNpz(path.join(dir, 'c.npz'), ts, { compress: true });
    await writeNpy(path.join(dir, 'one.npy'), ts.F32);
    const out = py(
      `
import numpy as np, json, sys
d = sys.argv[1]
r = {}
for f in ['s.npz', 'c.npz']:
    with np.load(d + '/' + f) as z:
        r[f] = {k: [z[k].dtype.str, list(z[k].shape), z[k].tobytes().hex()] for k in z.files}
a = np.load(d + '/one.npy'); r['one'] = [a.dtype.str, list(a.shape), a.tobytes().hex()]
print(json.dumps(r))
`,
      dir,
    );
    const r = JSON.parse(out);
    const descr: Record<string, string> = {
      F64: '<f8',
      F32: '<f4',
      F16: '<f2',
      I64: '<i8',
      I32: '<i4',
      I16: '<i2',
      I8: '|i1',
      U64: '<u8',
      U32: '<u4',
      U16: '<u2',
      U8: '|u1',
      BOOL: '|b1',
    };
    for (const f of ['s.npz', 'c.npz'])
      for (const [k, t] of Object.entries(ts)) expect(r[f][k]).toEqual([descr[k], t.shape, hex(t.data)]);
    expect(r.one).toEqual(['<f4', ts.F32.shape, hex(ts.F32.data)]);
    fs.rmSync(dir, { recursive: true });
  });

  describe('rejects bad input', () => {
    const ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    const cases: [string, Buffer, string][] = [
      ['bad magic', Buffer.from('\x93NUMPX\x01\x00\x00\x00', 'latin1'), FormatError.code],
      ['too short', Buffer.from('\x93NUM', 'latin1'), FormatError.code],
      ['header length past EOF', npy(ok).subarray(0, 20), FormatError.code],
      ['truncated data', npy(ok, new Uint8Array(7)), FormatError.code],
      ['version 4', npy(ok, new Uint8Array(8), 4), UnsupportedFormatError.code],
      ['big-endian', npy(ok.replace('<f4', '>f4'), new Uint8Array(8)), UnsupportedFormatError.code],
      ['object dtype', npy(ok.replace('<f4', '|O'), new Uint8Array(16)), UnsupportedFormatError.code],
      ['complex dtype', npy(ok.replace('<f4', '<c8'), new Uint8Array(16)), UnsupportedFormatError.code],
      [
        'structured dtype',
        npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", new Uint8Array(8)),
        UnsupportedFormatError.code,
      ],
      [
        'absurd shape',
        npy(ok.replace('(2,)', '(1099511627776, 1099511627776)'), new Uint8Array(8)),
        LimitExceededError.code,
      ],
      [
        'malformed literal',
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,", new Uint8Array(8)),
        FormatError.code,
      ],
      ['code in header', npy("__import__('os').system('x')", new Uint8Array(8)), FormatError.code],
      [
        'huge v2 header length',
        (() => {
          const b = npy(ok, new Uint8Array(8), 2);
          b.writeUInt32LE(0xffffffff, 8);
          return b;
        })(),
        LimitExceededError.code,
      ],
      ['negative dimension', npy(ok.replace('(2,)', '(-2,)'), new Uint8Array(8)), FormatError.code],
    ];
    for (const [name, bytes, code] of cases)
      it(name, async () => {
        await expectCode(readNpy(bytes), code);
      });
    it('npz with a non-npy member or a lying stored member', async () => {
      const good = await serializeNpz({ a: randomTensor('F32', [4], 1) });
      const bad = Buffer.from(good);
      bad.write('a.npx', bad.indexOf('a.npy'), 'latin1');
      bad.write('a.npx', bad.lastIndexOf('a.npy'), 'latin1');
      await expectCode(readNpz(bad), UnsupportedFormatError.code);
      await expectCode(readNpz(good.subarray(0, good.byteLength - 40)), FormatError.code);
    });
  });
});
