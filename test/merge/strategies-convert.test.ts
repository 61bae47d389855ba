/**
 * The rounding that every numeric strategy ends with (kernels/convert.h),
 * checked against torch / numpy (Debian's /usr/bin/python3) where they offer
 * the same conversion, and against the value-level JS reference otherwise.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertTensor } from '../../lib/merge/numeric';
import { native } from '../../lib/native';
import { DTYPES } from '../../lib/tensor/dtype';
import { tensor } from '../../lib/tensor/tensor';
import { FORMATS, decodeBits, encodeBits, rng, roundTo } from './strategies-reference';

const PY = '/usr/bin/python3';
function pythonHas(mods: string): boolean {
  try {
    execFileSync(PY, ['-c', `import ${mods}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const HAS_TORCH = fs.existsSync(PY) && pythonHas('torch, numpy');

function conv(src: ArrayBufferView, from: keyof typeof DTYPES, to: keyof typeof DTYPES): Uint8Array {
  const b = native.convertDType(src, DTYPES[from].code, DTYPES[to].code) as Uint8Array;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
const u16 = (b: Uint8Array) => new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));

/** f32 bit patterns over every exponent, plus rounding ties, boundaries and specials. */
function f32Probe(): Float32Array {
  const r = rng(77);
  const bits: number[] = [];
  for (let i = 0; i < 200_000; i++) bits.push(Math.floor(r() * 2 ** 32) >>> 0);
  for (let e = 0; e < 256; e++) {
    for (const m of [0, 1, 0x7fff, 0x8000, 0x8001, 0x18000, 0xfff, 0x1000, 0x1001, 0x3000, 0x7fffff, 0x400000]) {
      bits.push(((e << 23) | m) >>> 0, ((1 << 31) | (e << 23) | m) >>> 0);
    }
  }
  const u = new Uint32Array(bits);
  return new Float32Array(u.buffer);
}

describe.runIf(HAS_TORCH)('conversion agrees with torch / numpy', () => {
  it('F32 -> BF16 / F16 (torch), F64 -> F16 (numpy, single rounding), BF16 / F16 -> F32 (torch, all 65536)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-convert-'));
    try {
      const f32 = f32Probe();
      const r = rng(5);
      const f64 = new Float64Array(100_000).map(() => (r() * 2 - 1) * 2 ** Math.floor(r() * 40 - 30));
      // exact f16 midpoints pushed off by one f64 ulp: double rounding through f32 would get these wrong
      for (let i = 0; i < 1000; i++) {
        const h = 0x3c00 + i;
        const mid = (decodeBits(FORMATS.F16, h) + decodeBits(FORMATS.F16, h + 1)) / 2;
        f64[i] = mid * (1 + 2 ** -52);
      }
      fs.writeFileSync(path.join(dir, 'f32.bin'), Buffer.from(f32.buffer));
      fs.writeFileSync(path.join(dir, 'f64.bin'), Buffer.from(f64.buffer));
      const script = `
import numpy as np, torch, sys
d = sys.argv[1]
x = torch.from_numpy(np.fromfile(d + '/f32.bin', dtype=np.float32))
x.to(torch.bfloat16).view(torch.int16).numpy().tofile(d + '/bf16.bin')
x.to(torch.float16).view(torch.int16).numpy().tofile(d + '/f16.bin')
np.fromfile(d + '/f64.bin', dtype=np.float64).astype(np.float16).tofile(d + '/f64_f16.bin')
allbits = torch.arange(65536, dtype=torch.int32).to(torch.int16)
allbits.view(torch.bfloat16).to(torch.float32).numpy().tofile(d + '/bf16_f32.bin')
allbits.view(torch.float16).to(torch.float32).numpy().tofile(d + '/f16_f32.bin')
`;
      execFileSync(PY, ['-c', script, dir], { stdio: ['ignore', 'ignore', 'inherit'] });
      const read16 = (f: string) => new Uint16Array(new Uint8Array(fs.readFileSync(path.join(dir, f))).buffer);
      const read32 = (f: string) => new Float32Array(new Uint8Array(fs.readFileSync(path.join(dir, f))).buffer);

      const check16 = (got: Uint16Array, want: Uint16Array, src: ArrayLike<number>, label: string) => {
        let bad = 0;
        let first = '';
        for (let i = 0; i < want.length; i++) {
          const isNaN = Number.isNaN(src[i]);
          const ok = isNaN ? (got[i] & 0x7fff) > (label.includes('BF16') ? 0x7f80 : 0x7c00) : got[i] === want[i];
          if (!ok && bad++ === 0)
            first = `${label} #${i} src=${src[i]} got=${got[i].toString(16)} want=${want[i].toString(16)}`;
        }
        expect(first).toBe('');
      };
      check16(u16(conv(f32, 'F32', 'BF16')), read16('bf16.bin'), f32, 'F32->BF16');
      check16(u16(conv(f32, 'F32', 'F16')), read16('f16.bin'), f32, 'F32->F16');
      check16(u16(conv(f64, 'F64', 'F16')), read16('f64_f16.bin'), f64, 'F64->F16');

      const all = new Uint16Array(65536).map((_, i) => i);
      for (const [dt, file] of [
        ['BF16', 'bf16_f32.bin'],
        ['F16', 'f16_f32.bin'],
      ] as const) {
        const got = new Float32Array(conv(all, dt, 'F32').slice().buffer);
        const want = read32(file);
        for (let i = 0; i < 65536; i++) {
          if (Number.isNaN(want[i])) expect(Number.isNaN(got[i])).toBe(true);
          else if (!Object.is(got[i], want[i])) expect(`${dt} ${i}: ${got[i]}`).toBe(`${dt} ${i}: ${want[i]}`);
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('conversion semantics', () => {
  it('F8 decode: all 256 patterns match the format definitions', () => {
    const all = new Uint8Array(256).map((_, i) => i);
    for (const dt of ['F8_E4M3', 'F8_E5M2'] as const) {
      const got = new Float64Array(conv(all, dt, 'F64').slice().buffer);
      for (let i = 0; i < 256; i++) {
        const want = decodeBits(FORMATS[dt], i);
        expect(Number.isNaN(got[i]) ? 'NaN' : Object.is(got[i], -0) ? '-0' : got[i], `${dt} 0x${i.toString(16)}`).toBe(
          Number.isNaN(want) ? 'NaN' : Object.is(want, -0) ? '-0' : want,
        );
      }
    }
  });

  it('F64 -> F8 / F16 / BF16 rounds once to nearest even (value-level reference)', () => {
    const r = rng(9);
    const xs = new Float64Array(60_000).map((_, i) => {
      const s = r() < 0.5 ? -1 : 1;
      if (i % 7 === 0) return (s * Math.floor(r() * 2000)) / 4; // many exact ties for F8
      return s * r() * 2 ** Math.floor(r() * 60 - 40);
    });
    for (const dt of ['F8_E4M3', 'F8_E5M2', 'F16', 'BF16'] as const) {
      const out = conv(xs, 'F64', dt);
      const size = DTYPES[dt].size;
      for (let i = 0; i < xs.length; i++) {
        const bits = size === 1 ? out[i] : out[2 * i] | (out[2 * i + 1] << 8);
        const v = roundTo(FORMATS[dt], xs[i]);
        // E4M3 overflow: NaN with the sign of x (torch: result |= sign)
        const want = Number.isNaN(v) ? (xs[i] < 0 ? 0xff : 0x7f) : encodeBits(FORMATS[dt], v);
        if (bits !== want)
          expect(`${dt} x=${xs[i]} bits=${bits.toString(16)}`).toBe(`${dt} x=${xs[i]} bits=${want.toString(16)}`);
      }
    }
  });

  it('F8_E4M3 follows torch float8_e4m3fn: |x| > 464 and Inf become NaN, 464 ties to 448, NaN keeps its sign', () => {
    const xs = new Float64Array([
      448,
      464,
      464.0001,
      479,
      480,
      1e9,
      Infinity,
      -Infinity,
      -464,
      -465,
      NaN,
      2 ** -9,
      2 ** -10,
      1.5 * 2 ** -9,
    ]);
    const got = Array.from(conv(xs, 'F64', 'F8_E4M3'));
    expect(got).toEqual([0x7e, 0x7e, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0xff, 0xfe, 0xff, 0x7f, 0x01, 0x00, 0x02]);
  });

  it('IEEE targets: overflow to Inf, -0 kept, NaN quiet with sign and payload top bits', () => {
    const xs = new Float64Array([65520, 65519.99, -1e6, -0, NaN, 2 ** -25, 2 ** -25 * 1.0001]);
    expect(Array.from(u16(conv(xs, 'F64', 'F16')))).toEqual([0x7c00, 0x7bff, 0xfc00, 0x8000, 0x7e00, 0x0000, 0x0001]);
    const nanBits = new Uint16Array([0x7e01, 0xfe55, 0x7c01 /* signalling: gets quieted */]);
    expect(Array.from(u16(conv(conv(nanBits, 'F16', 'F64'), 'F64', 'F16')))).toEqual([0x7e01, 0xfe55, 0x7e01]);
    // every non-NaN F16 and BF16 pattern survives F16 -> F64 -> F16 bit for bit
    const all = new Uint16Array(65536).map((_, i) => i);
    for (const dt of ['F16', 'BF16'] as const) {
      const back = u16(conv(conv(all, dt, 'F64'), 'F64', dt));
      const nanFloor = dt === 'F16' ? 0x7c00 : 0x7f80;
      for (let i = 0; i < 65536; i++) if ((i & 0x7fff) <= nanFloor && back[i] !== i) expect(back[i]).toBe(i);
    }
  });

  it('integers: nearest even, saturate, NaN -> 0; BOOL is 0/1', () => {
    const xs = new Float64Array([0.5, 1.5, 2.5, -0.5, -1.5, 127.4, 127.6, 1e9, -1e9, NaN, -129]);
    expect(Array.from(new Int8Array(conv(xs, 'F64', 'I8').buffer))).toEqual([
      0, 2, 2, 0, -2, 127, 127, 127, -128, 0, -128,
    ]);
    expect(Array.from(conv(xs, 'F64', 'U8'))).toEqual([0, 2, 2, 0, 0, 127, 128, 255, 0, 0, 0]);
    expect(Array.from(conv(xs, 'F64', 'BOOL'))).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const big = new Float64Array([2 ** 63, -(2 ** 63), 2 ** 64, 1e300]);
    expect(Array.from(new BigInt64Array(conv(big, 'F64', 'I64').slice().buffer))).toEqual([
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 63n - 1n,
      2n ** 63n - 1n,
    ]);
    expect(Array.from(new BigUint64Array(conv(big, 'F64', 'U64').slice().buffer))).toEqual([
      2n ** 63n,
      0n,
      2n ** 64n - 1n,
      2n ** 64n - 1n,
    ]);
  });

  it('same-dtype conversion is a bit-exact copy; the lib wrapper keeps shape', () => {
    const raw = new Uint8Array([0x01, 0x7f, 0xc0, 0xff, 0x00, 0x80]); // NaN payload bits included
    expect(Array.from(conv(raw, 'BF16', 'BF16'))).toEqual(Array.from(raw));
    const t = convertTensor(tensor('F32', [1, 3], new Float32Array([1, 1 / 3, -0])), 'BF16');
    expect(t.shape).toEqual([1, 3]);
    expect(Array.from(u16(t.data))).toEqual([0x3f80, 0x3eab, 0x8000]);
  });
});
