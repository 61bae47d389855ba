import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, MergeConflictError } from '../../lib/errors';
import { native } from '../../lib/native';
import { mergeLinear, mergeTaskVectors } from '../../lib/merge/numeric';
import {
  parseResolveRules,
  pickStrategy,
  resolveTensor,
  globToRegExp,
  type MergeStrategyName,
} from '../../lib/merge/strategies';
import { tensor, type Tensor } from '../../lib/tensor/tensor';
import {
  F32,
  fromValues,
  firstMismatch,
  keepCount,
  randomValues,
  refDare,
  refLinear,
  refTask,
  refTies,
  roundInto,
  values,
  dareU,
  type FloatDType,
} from './strategies-reference';

const DTYPES4: FloatDType[] = ['F64', 'F32', 'BF16', 'F16'];

function expectValues(got: Tensor, want: number[], dtype: FloatDType) {
  expect(got.dtype).toBe(dtype);
  expect(
    firstMismatch(
      values(got),
      want.map((v) => roundInto(dtype, v)),
    ),
  ).toBeNull();
}

function bytesEqual(a: Tensor, b: Tensor): boolean {
  return Buffer.from(a.data).equals(Buffer.from(b.data));
}

async function withThreads<T>(n: number, fn: () => Promise<T>): Promise<T> {
  const before = native.threads();
  native.setThreads(n);
  try {
    return await fn();
  } finally {
    native.setThreads(before);
  }
}

/** base, ours, theirs (+ one extra head) with values exact in dtype. */
function fixture(dtype: FloatDType, n: number, seed: number) {
  const base = randomValues(dtype, n, seed);
  const rows = [1, 2, 3].map((k) => {
    const d = randomValues(dtype, n, seed * 10 + k, 0.25);
    return base.map((b, j) => roundInto(dtype, b + d[j]));
  });
  return {
    vals: { base, ours: rows[0], theirs: rows[1], other: rows[2] },
    t: {
      base: fromValues(dtype, base),
      ours: fromValues(dtype, rows[0]),
      theirs: fromValues(dtype, rows[1]),
      other: fromValues(dtype, rows[2]),
    },
  };
}

describe('numeric strategies against the JS reference', () => {
  for (const dtype of DTYPES4) {
    describe(dtype, () => {
      const n = 3001;
      const { vals, t } = fixture(dtype, n, 7);

      it('average and weighted', async () => {
        const avg = await resolveTensor('average', t);
        expectValues(avg, refLinear([vals.ours, vals.theirs], [0.5, 0.5]), dtype);
        for (const alpha of [0, 0.1, 0.3, 0.75, 1]) {
          const w = await resolveTensor('weighted', t, { alpha });
          expectValues(w, refLinear([vals.ours, vals.theirs], [alpha, 1 - alpha]), dtype);
        }
        const w5 = await resolveTensor('weighted', t, { alpha: 0.5 });
        expect(bytesEqual(w5, avg)).toBe(true);
      });

      it('average of three heads is the mean with weights 1/3', async () => {
        const avg = await resolveTensor('average', { ...t, others: [t.other] });
        expectValues(avg, refLinear([vals.ours, vals.theirs, vals.other], [1 / 3, 1 / 3, 1 / 3]), dtype);
      });

      it('task arithmetic', async () => {
        for (const lambda of [1, 0.5, -0.3]) {
          const r = await resolveTensor('task-arithmetic', { ...t, others: [t.other] }, { lambda });
          expectValues(r, refTask(vals.base, [vals.ours, vals.theirs, vals.other], lambda), dtype);
        }
      });

      it('ties', async () => {
        for (const [density, lambda] of [
          [0.2, 1],
          [0.5, 0.7],
          [1, 1],
          [0.0001, 1],
        ] as const) {
          const r = await resolveTensor('ties', { ...t, others: [t.other] }, { density, lambda });
          expectValues(r, refTies(vals.base, [vals.ours, vals.theirs, vals.other], density, lambda), dtype);
        }
      });

      it('dare and dare+ties', async () => {
        for (const [drop, seed, lambda] of [
          [0.3, 1, 1],
          [0.9, 12345, 0.5],
          [0, 5, 1],
        ] as const) {
          const r = await resolveTensor('dare', t, { drop, seed, lambda });
          expectValues(r, refDare(vals.base, [vals.ours, vals.theirs], drop, BigInt(seed), lambda), dtype);
          const rt = await resolveTensor('dare', t, { drop, seed, lambda, dareTies: true });
          expectValues(rt, refDare(vals.base, [vals.ours, vals.theirs], drop, BigInt(seed), lambda, true), dtype);
        }
      });
    });
  }

  it('f32 accumulation matches an f32 reference (BF16 and F32 inputs)', async () => {
    for (const dtype of ['BF16', 'F32', 'F16'] as const) {
      const { vals, t } = fixture(dtype, 2000, 11);
      const r = await resolveTensor('weighted', t, { alpha: 0.3, precision: 'f32' });
      expectValues(r, refLinear([vals.ours, vals.theirs], [0.3, 0.7], F32), dtype);
      const ta = await resolveTensor('task-arithmetic', t, { lambda: 0.7, precision: 'f32' });
      expectValues(ta, refTask(vals.base, [vals.ours, vals.theirs], 0.7, F32), dtype);
      const ti = await resolveTensor('ties', t, { density: 0.3, precision: 'f32' });
      expectValues(ti, refTies(vals.base, [vals.ours, vals.theirs], 0.3, 1, F32), dtype);
      const da = await resolveTensor('dare', t, { drop: 0.4, seed: 3, precision: 'f32' });
      expectValues(da, refDare(vals.base, [vals.ours, vals.theirs], 0.4, 3n, 1, false, F32), dtype);
    }
  });

  it('weighted alpha 0.5 equals average bit for bit on every float dtype, NaN and Inf included', async () => {
    for (const dtype of ['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2'] as const) {
      const size = { F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1 }[dtype];
      const a = new Uint8Array(4096 * size),
        b = new Uint8Array(4096 * size);
      let x = 99;
      for (let i = 0; i < a.length; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        a[i] = x >>> 24;
        x = (x * 1103515245 + 12345) >>> 0;
        b[i] = x >>> 24;
      }
      const ours = tensor(dtype, [64, 64], a),
        theirs = tensor(dtype, [64, 64], b);
      const avg = await resolveTensor('average', { ours, theirs });
      const w = await resolveTensor('weighted', { ours, theirs }, { alpha: 0.5 });
      expect(bytesEqual(avg, w)).toBe(true);
      // and equals the reference mean: 0.5*x + 0.5*y, one rounding
      const va = values(ours),
        vb = values(theirs);
      expect(
        firstMismatch(
          values(avg),
          va.map((v, i) => roundInto(dtype, 0.5 * v + 0.5 * vb[i])),
        ),
      ).toBeNull();
    }
  });

  it('large tensors: async path equals sync path and the reference', async () => {
    const n = 1 << 19; // 2 MiB of F32: async
    const { vals, t } = fixture('F32', n, 21);
    const got = await resolveTensor('ties', t, { density: 0.1 });
    expectValues(got, refTies(vals.base, [vals.ours, vals.theirs], 0.1, 1), 'F32');
    const sync = await mergeTaskVectors('ties', t.base, [t.ours, t.theirs], { density: 0.1, async: false });
    expect(bytesEqual(sync, got)).toBe(true);
  });
});

describe('special values', () => {
  const f32 = (xs: number[]) => tensor('F32', [xs.length], new Float32Array(xs));

  it('average: -0, NaN, Inf per IEEE', async () => {
    const ours = f32([-0, -0, NaN, Infinity, Infinity, 1, -Infinity]);
    const theirs = f32([-0, 0, 1, 1, -Infinity, NaN, -Infinity]);
    const r = values(await resolveTensor('average', { ours, theirs }));
    expect(firstMismatch(r, [-0, 0, NaN, Infinity, NaN, NaN, -Infinity])).toBeNull();
  });

  it('weighted alpha 1 / 0 returns one side exactly, ignoring NaN/Inf on the other', async () => {
    const ours = f32([-0, 1.5, 3, -7]);
    const theirs = f32([NaN, Infinity, 0, 2]);
    expect(
      firstMismatch(values(await resolveTensor('weighted', { ours, theirs }, { alpha: 1 })), [-0, 1.5, 3, -7]),
    ).toBeNull();
    expect(
      firstMismatch(
        values(await resolveTensor('weighted', { ours: theirs, theirs: ours }, { alpha: 0 })),
        [-0, 1.5, 3, -7],
      ),
    ).toBeNull();
  });

  it('base-relative strategies keep the base (even -0) where the update is zero; NaN propagates', async () => {
    const base = f32([-0, 2, NaN, 1, -0]);
    const ours = f32([-0, 2, 5, 1, 3]);
    const theirs = f32([-0, 2, 5, NaN, -3]);
    for (const s of ['task-arithmetic', 'ties', 'dare'] as MergeStrategyName[]) {
      const r = values(await resolveTensor(s, { base, ours, theirs }, { density: 1, drop: 0 }));
      expect(Object.is(r[0], -0)).toBe(true);
      expect(r[1]).toBe(2);
      expect(Number.isNaN(r[2])).toBe(true);
      expect(Number.isNaN(r[3])).toBe(true);
      // element 4: +3 and -3 cancel (task arithmetic) / no majority (ties): base -0 stays
      expect(Object.is(r[4], -0)).toBe(true);
    }
  });

  it('overflow: F16/BF16 to Inf, F8_E4M3 to NaN (torch float8_e4m3fn), E5M2 to Inf', async () => {
    const cases: Array<[FloatDType, number, number]> = [
      ['F16', 65504, Infinity],
      ['BF16', 3e38, Infinity],
      ['F8_E4M3', 448, NaN],
      ['F8_E5M2', 57344, Infinity],
    ];
    for (const [dtype, big, want] of cases) {
      const base = fromValues(dtype, [0, 0]);
      const m = fromValues(dtype, [big, -big]);
      const r = values(await resolveTensor('task-arithmetic', { base, ours: m, theirs: m }));
      expect(firstMismatch(r, [want, Number.isNaN(want) ? NaN : -want])).toBeNull();
      // average of max values does not overflow: 0.5x + 0.5x = x
      expect(firstMismatch(values(await resolveTensor('average', { ours: m, theirs: m })), values(m))).toBeNull();
    }
  });

  it('subnormal results round correctly (F16, BF16)', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const tiny = dtype === 'F16' ? 2 ** -24 : 2 ** -133;
      const ours = fromValues(dtype, [tiny, tiny * 3, tiny * 2, tiny * 5]);
      const theirs = fromValues(dtype, [0, 0, tiny, tiny * 2]);
      // means: 0.5 tiny (tie -> 0), 1.5 tiny (tie -> 2 tiny), 1.5 tiny -> 2, 3.5 -> 4
      const r = values(await resolveTensor('average', { ours, theirs }));
      expect(firstMismatch(r, [0, 2 * tiny, 2 * tiny, 4 * tiny])).toBeNull();
    }
  });
});

describe('TIES hand-worked example', () => {
  it('trims, elects signs, takes the disjoint mean (ties at the threshold kept in index order)', async () => {
    const base = [1, 1, 1, 1, 1, 1];
    const taus = [
      [3, -1, 2, 0.5, -4, 1],
      [-2, 2, 1, -3, -1, 1],
      [1, 1, -5, 0.5, 2, -1],
    ];
    // density 0.5 keeps 3 of 6 per task vector:
    //   m1 -> [3, 0, 2, 0, -4, 0]; m2 -> [-2, 2, 0, -3, 0, 0] (2 at index 0 and 1 both kept)
    //   m3 -> [1, 0, -5, 0, 2, 0]  (three 1s tie at the threshold: index 0 wins)
    // elected signs: + + - - - 0 ; disjoint means: 2, 2, -5, -3, -4, 0
    const [ours, theirs, other] = taus.map((t) =>
      fromValues(
        'F32',
        t.map((x, j) => base[j] + x),
      ),
    );
    const r = await resolveTensor(
      'ties',
      { base: fromValues('F32', base), ours, theirs, others: [other] },
      { density: 0.5 },
    );
    expect(values(r)).toEqual([3, 3, -4, -2, -3, 1]);
    const half = await resolveTensor(
      'ties',
      { base: fromValues('F32', base), ours, theirs, others: [other] },
      { density: 0.5, lambda: 0.5 },
    );
    expect(values(half)).toEqual([2, 2, -1.5, -0.5, -1, 1]);
  });

  it('keep count is the largest K with K/n <= density, at least 1', () => {
    for (const [n, d] of [
      [100, 0.29],
      [10, 0.7],
      [10, 0.3],
      [7, 0.5],
      [3, 0.01],
      [1000, 0.001],
      [5, 1],
    ] as const) {
      expect(native.tiesKeepCount(n, d)).toBe(keepCount(n, d));
    }
    expect(native.tiesKeepCount(100, 0.29)).toBe(29);
  });
});

describe('determinism', () => {
  it('bit-identical results for 1, 2 and 4 threads (average, ties, dare; sync and async)', async () => {
    const n = (1 << 20) + 77;
    const { t } = fixture('BF16', n, 5);
    const runs: Record<string, string[]> = {};
    for (const threads of [1, 2, 4]) {
      await withThreads(threads, async () => {
        const outs: Array<[string, Tensor]> = [
          ['average', await resolveTensor('average', t)],
          ['ties', await resolveTensor('ties', { ...t, others: [t.other] }, { density: 0.2 })],
          ['dare', await resolveTensor('dare', t, { drop: 0.5, seed: 9 })],
          ['ties-sync', await mergeTaskVectors('ties', t.base, [t.ours, t.theirs], { density: 0.37, async: false })],
        ];
        for (const [k, v] of outs) (runs[k] ??= []).push(Buffer.from(v.data).toString('base64'));
      });
    }
    for (const k of Object.keys(runs)) expect(new Set(runs[k]).size, k).toBe(1);
  });

  it('DARE: same seed same result, different seed different result, drop rate near p', async () => {
    const { t, vals } = fixture('F32', 20000, 3);
    const a = await resolveTensor('dare', t, { drop: 0.6, seed: 42 });
    const b = await resolveTensor('dare', t, { drop: 0.6, seed: 42 });
    const c = await resolveTensor('dare', t, { drop: 0.6, seed: 43 });
    const big = await resolveTensor('dare', t, { drop: 0.6, seed: 2n ** 64n - 1n });
    expect(bytesEqual(a, b)).toBe(true);
    expect(bytesEqual(a, c)).toBe(false);
    expectValues(big, refDare(vals.base, [vals.ours, vals.theirs], 0.6, 2n ** 64n - 1n, 1), 'F32');
    let dropped = 0;
    for (let j = 0; j < 20000; j++) if (dareU(42n, 0, j) < 0.6) dropped++;
    expect(Math.abs(dropped / 20000 - 0.6)).toBeLessThan(0.02);
    expect(native.dareUniform(42n, 1n, 17n)).toBe(dareU(42n, 1, 17));
  });
});

describe('integers', () => {
  it('average rounds half to even; task arithmetic saturates', async () => {
    const i32 = (xs: number[]) => tensor('I32', [xs.length], new Int32Array(xs));
    const r = values(
      await resolveTensor('average', { ours: i32([1, 3, -1, 7, 2147483647]), theirs: i32([2, 4, -2, 7, 2147483646]) }),
    );
    expect(r).toEqual([2, 4, -2, 7, 2147483646]);
    const u8 = (xs: number[]) => tensor('U8', [xs.length], new Uint8Array(xs));
    const t = values(
      await resolveTensor('task-arithmetic', { base: u8([100, 100]), ours: u8([200, 0]), theirs: u8([250, 0]) }),
    );
    expect(t).toEqual([255, 0]);
  });

  it('I64 within 2^53 merges; beyond is a conflict a numeric strategy cannot resolve', async () => {
    const i64 = (xs: bigint[]) => tensor('I64', [xs.length], new BigInt64Array(xs));
    const r = values(await resolveTensor('average', { ours: i64([10n, 2n ** 53n]), theirs: i64([13n, 2n ** 53n]) }));
    expect(r).toEqual([12, 2 ** 53]);
    await expect(resolveTensor('average', { ours: i64([2n ** 60n]), theirs: i64([1n]) })).rejects.toMatchObject({
      code: MergeConflictError.code,
    });
  });

  it('BOOL is refused', async () => {
    const b = tensor('BOOL', [2], new Uint8Array([0, 1]));
    await expect(resolveTensor('average', { ours: b, theirs: b })).rejects.toMatchObject({
      code: MergeConflictError.code,
    });
  });
});

describe('errors', () => {
  const a = fromValues('F32', [1, 2, 3, 4], [2, 2]);
  const b = fromValues('F32', [1, 2, 3, 4], [4]);
  const c = fromValues('BF16', [1, 2, 3, 4], [2, 2]);

  it('ours / theirs / fail', async () => {
    expect(await resolveTensor('ours', { ours: a, theirs: b })).toBe(a);
    expect(await resolveTensor('theirs', { ours: a, theirs: b })).toBe(b);
    await expect(resolveTensor('fail', { ours: a, theirs: a }, { name: 'w' })).rejects.toMatchObject({
      code: MergeConflictError.code,
    });
  });

  it('shape and dtype mismatches say a numeric strategy cannot resolve them', async () => {
    for (const s of ['average', 'weighted', 'task-arithmetic', 'ties', 'dare'] as MergeStrategyName[]) {
      for (const other of [b, c]) {
        const p = resolveTensor(
          s,
          { base: a, ours: a, theirs: other },
          { alpha: 0.5, density: 0.5, drop: 0.5, name: 'enc.w' },
        );
        await expect(p).rejects.toBeInstanceOf(MergeConflictError);
        await expect(p).rejects.toThrow(/numeric strategy .* cannot resolve/);
      }
    }
    await expect(resolveTensor('ties', { base: b, ours: a, theirs: a }, { density: 0.5 })).rejects.toMatchObject({
      code: MergeConflictError.code,
      data: { reason: 'base-mismatch' },
    });
    await expect(resolveTensor('ties', { ours: a, theirs: a }, { density: 0.5 })).rejects.toMatchObject({
      code: MergeConflictError.code,
      data: { reason: 'no-base' },
    });
  });

  it('the native layer rejects mismatches and bad specs with typed errors', async () => {
    await expect(mergeLinear([a, c], [0.5, 0.5])).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(mergeLinear([a, b], [0.5, 0.5])).rejects.toThrow(/shape mismatch/);
    await expect(mergeLinear([a, a], [0.5])).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(mergeTaskVectors('ties', a, [a], { density: 0, async: true })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    expect(() =>
      native.mergeTensors({
        op: 'ties',
        models: [{ data: a.data, dtype: 1, shape: [2, 2] }],
        density: 2,
        base: { data: a.data, dtype: 1, shape: [2, 2] },
      }),
    ).toThrow(/density/);
    expect(() => native.mergeTensors({ op: 'dare', models: [{ data: a.data, dtype: 1, shape: [2, 2] }] })).toThrow(
      /base/,
    );
    expect(() =>
      native.mergeTensors({ op: 'linear', models: [{ data: a.data, dtype: 1, shape: [3] }], weights: [1] }),
    ).toThrow(/bytes/);
    expect(() =>
      native.mergeTensors({
        op: 'linear',
        models: [{ data: a.data, dtype: 1, shape: [2, 2] }],
        weights: [1],
        out: new Uint8Array(3),
      }),
    ).toThrow(/out/);
  });

  it('parameter ranges', async () => {
    const t = { base: a, ours: a, theirs: a };
    const bad: Array<[MergeStrategyName, object]> = [
      ['weighted', {}],
      ['weighted', { alpha: 1.5 }],
      ['weighted', { alpha: -0.1 }],
      ['weighted', { alpha: NaN }],
      ['ties', {}],
      ['ties', { density: 0 }],
      ['ties', { density: 1.01 }],
      ['dare', {}],
      ['dare', { drop: 1 }],
      ['dare', { drop: -0.1 }],
      ['dare', { drop: 0.5, seed: -1 }],
      ['dare', { drop: 0.5, seed: 1.5 }],
      ['task-arithmetic', { lambda: Infinity }],
    ];
    for (const [s, p] of bad)
      await expect(resolveTensor(s, t, p), `${s} ${JSON.stringify(p)}`).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(resolveTensor('bogus' as MergeStrategyName, t)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('zero-size and 0-d tensors', async () => {
    const z = fromValues('F32', [], [0, 3]);
    expect((await resolveTensor('ties', { base: z, ours: z, theirs: z }, { density: 0.5 })).data.byteLength).toBe(0);
    const s0 = fromValues('BF16', [1.5], []);
    const s1 = fromValues('BF16', [2.5], []);
    const r = await resolveTensor('average', { ours: s0, theirs: s1 });
    expect(r.shape).toEqual([]);
    expect(values(r)).toEqual([2]);
  });

  it('caller-provided output buffer (may alias an input)', async () => {
    const x = fromValues('F32', [1, 2, 3, 4]);
    const y = fromValues('F32', [3, 4, 5, 6]);
    const out = new Uint8Array(16);
    const r = await mergeLinear([x, y], [0.5, 0.5], { out });
    expect(r.data).toBe(out);
    expect(values(r)).toEqual([2, 3, 4, 5]);
    await mergeLinear([x, y], [0.5, 0.5], { out: x.data });
    expect(values(x)).toEqual([2, 3, 4, 5]);
  });
});

describe('--resolve rules', () => {
  it('parses GLOB=STRATEGY and picks the last matching rule', () => {
    const rules = parseResolveRules(['encoder.*=ours', '*.bias=average', 'decoder.layer?.weight=theirs']);
    expect(pickStrategy('encoder.layer.0.weight', rules, 'fail')).toBe('ours');
    expect(pickStrategy('encoder.layer.0.bias', rules, 'fail')).toBe('average');
    expect(pickStrategy('decoder.layer1.weight', rules, 'fail')).toBe('theirs');
    expect(pickStrategy('decoder.layer12.weight', rules, 'fail')).toBe('fail');
    expect(pickStrategy('lm_head.weight', rules, 'ties')).toBe('ties');
    expect(pickStrategy('encoder', rules, 'fail')).toBe('fail'); // 'encoder.*' needs the dot
  });

  it('glob syntax: * crosses dots, ? is one char, classes, escapes, anchoring', () => {
    expect(globToRegExp('a*z').test('a.b.c.z')).toBe(true);
    expect(globToRegExp('a?c').test('a.c')).toBe(true);
    expect(globToRegExp('a?c').test('ac')).toBe(false);
    expect(globToRegExp('layer[0-2].w').test('layer1.w')).toBe(true);
    expect(globToRegExp('layer[!0-2].w').test('layer1.w')).toBe(false);
    expect(globToRegExp('layer[!0-2].w').test('layer7.w')).toBe(true);
    expect(globToRegExp('a\\*b').test('a*b')).toBe(true);
    expect(globToRegExp('a\\*b').test('axb')).toBe(false);
    expect(globToRegExp('w').test('xw')).toBe(false);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
    expect(globToRegExp('x=y*').test('x=y1')).toBe(true);
    expect(parseResolveRules(['x=y*=ours'])[0]).toMatchObject({ pattern: 'x=y*', strategy: 'ours' });
  });

  it('rejects malformed rules', () => {
    for (const bad of ['encoder.*', '=ours', 'encoder.*=bogus', 'a[b=ours', 'a\\=ours', 'x=']) {
      expect(() => parseResolveRules([bad]), bad).toThrow(InvalidArgumentError);
    }
  });
});
