import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError, LimitExceededError, UnsafePickleError, UnsupportedFormatError } from '../../lib/errors';
import { MemorySink } from '../../lib/formats/io';
import { NumpyArray, NumpyScalar, PickleWriter, PyDict, PyTuple } from '../../lib/formats/pickle';
import {
  PyTorchFile,
  loadStateDict,
  picklePyTorch,
  readPyTorch,
  savePyTorch,
  serializePyTorch,
} from '../../lib/formats/pytorch';
import { ZipWriter } from '../../lib/formats/zip';
import type { Tensor } from '../../lib/tensor/tensor';
import { FIXTURES, expectCode, hasTorch, hex, py, randomTensor, tmpDir } from './helpers';

interface Expected {
  tensors: Record<string, { dtype: string; shape: number[]; hex: string }>;
  [k: string]: unknown;
}
const expected = (f: string): Expected =>
  JSON.parse(fs.readFileSync(path.join(FIXTURES, `${f}.expected.json`), 'utf8'));

function expectMatches(sd: Map<string, Tensor>, exp: Expected): void {
  expect([...sd.keys()].sort()).toEqual(Object.keys(exp.tensors).sort());
  for (const [k, e] of Object.entries(exp.tensors)) {
    const t = sd.get(k)!;
    expect(t.dtype, k).toBe(e.dtype);
    expect(t.shape, k).toEqual(e.shape);
    expect(hex(t.data), k).toBe(e.hex);
  }
}

async function buildPt(records: Record<string, Uint8Array>, prefix = 'archive'): Promise<Buffer> {
  const sink = new MemorySink();
  const zw = new ZipWriter(sink);
  for (const [k, v] of Object.entries(records)) await zw.add(`${prefix}/${k}`, v);
  await zw.finish();
  return sink.toBuffer();
}

describe('pytorch reader (torch.save fixtures)', () => {
  for (const f of ['model_state.pt', 'checkpoint.pt', 'dtypes.pt', 'views.pt']) {
    it(`${f}: every tensor matches what torch wrote`, async () => {
      expectMatches(await loadStateDict(path.join(FIXTURES, f)), expected(f));
    });
  }

  it('checkpoint.pt: plain python values (epoch, lr, big ints, nested lists, numpy values)', async () => {
    const exp = expected('checkpoint.pt');
    const { value, storages } = await readPyTorch(path.join(FIXTURES, 'checkpoint.pt'));
    const v = value as PyDict;
    expect(v.get('epoch')).toBe(exp.epoch);
    expect(v.get('lr')).toBe(exp.lr);
    expect(v.get('step')).toBe(exp.step);
    expect(v.get('big')).toBe(BigInt(exp.big as string));
    expect(v.get('name')).toBe(exp.name);
    const nested = v.get('nested') as unknown[];
    expect(nested[0]).toEqual([1, 2.5, 'x']);
    expect(nested[1]).toBeInstanceOf(PyTuple);
    expect(Buffer.from((nested[2] as PyDict).get('k') as Uint8Array).toString('latin1')).toBe('\x00\xffbytes');
    expect((nested[2] as PyDict).get(7)).toEqual([-1, -300, 70000]);
    expect((v.get('np_scalar') as NumpyScalar).value).toBe(0.75);
    expect((v.get('np_int') as NumpyScalar).value).toBe(-12n);
    const arr = v.get('np_array') as NumpyArray;
    expect([arr.dtype, arr.shape]).toEqual(['I32', [2, 3]]);
    expect([...new Int32Array(new Uint8Array(arr.data).buffer)]).toEqual([0, 1, 2, 3, 4, 5]);
    const groups = (v.get('optimizer') as PyDict).get('param_groups') as PyDict[];
    const g = Object.fromEntries([...groups[0].entries()].map(([k, x]) => [k, Array.isArray(x) ? Array.from(x) : x]));
    expect(g).toEqual((exp.param_groups as unknown[])[0]);
    const model = v.get('model') as PyDict;
    expect(model.kind).toBe('OrderedDict');
    expect(model.attrs?.has('_metadata')).toBe(true);
    expect(storages.size).toBe(28);
  });

  it('views.pt: shared storages, offsets, transposes, expands', async () => {
    const f = await PyTorchFile.open(path.join(FIXTURES, 'views.pt'));
    try {
      const by = new Map(f.tensors.map((t) => [t.name, t.tensor]));
      expect(by.get('offset_view')!.storageKey).toBe(by.get('base')!.storageKey);
      expect(by.get('offset_view')!.storageOffset).toBe(5);
      expect(by.get('transposed')!.strides).toEqual([1, 5]);
      expect(by.get('expanded')!.strides).toEqual([0, 1]);
      expect(by.get('param')!.isParameter).toBe(true);
      expect(by.get('scalar')!.shape).toEqual([]);
    } finally {
      await f.close();
    }
  });

  it('refuses legacy, TorchScript, big-endian and non-torch archives clearly', async () => {
    const e1 = await expectCode(loadStateDict(path.join(FIXTURES, 'legacy.pt')), UnsupportedFormatError.code);
    expect(e1.message).toMatch(/legacy/);
    const e2 = await expectCode(loadStateDict(path.join(FIXTURES, 'scripted.pt')), UnsupportedFormatError.code);
    expect(e2.message).toMatch(/TorchScript/);
    const { pkl } = picklePyTorch({});
    const big = await buildPt({ 'data.pkl': pkl, byteorder: Buffer.from('big'), version: Buffer.from('3\n') });
    const e3 = await expectCode(loadStateDict(big), UnsupportedFormatError.code);
    expect(e3.message).toMatch(/big/);
    await expectCode(loadStateDict(await buildPt({ 'x.npy': Uint8Array.of(1) })), UnsupportedFormatError.code);
    await expectCode(loadStateDict(Buffer.from('hello world, not a checkpoint')), FormatError.code);
  });

  it('rejects inconsistent archives with FormatError', async () => {
    const t = randomTensor('F32', [2, 3], 1);
    const { pkl } = picklePyTorch({ w: t });
    // storage record of the wrong size
    await expectCode(
      loadStateDict(await buildPt({ 'data.pkl': pkl, 'data/0': new Uint8Array(20), version: Buffer.from('3\n') })),
      FormatError.code,
    );
    // missing storage record
    await expectCode(loadStateDict(await buildPt({ 'data.pkl': pkl, version: Buffer.from('3\n') })), FormatError.code);
    // a view reaching past its storage: offset 5 into a 6-element storage with shape [2, 3]
    const w = new PickleWriter();
    w.global('torch._utils', '_rebuild_tensor_v2');
    w.mark();
    w.mark();
    w.str('storage');
    w.global('torch', 'FloatStorage');
    w.str('0');
    w.str('cpu');
    w.int(6);
    w.byte(0x74);
    w.binpersid();
    w.int(5);
    w.tuple([2, 3]);
    w.tuple([3, 1]);
    w.value(false);
    w.global('collections', 'OrderedDict');
    w.byte(0x29);
    w.reduce();
    w.byte(0x74);
    w.reduce();
    const bad = await buildPt({ 'data.pkl': w.finish(), 'data/0': t.data, version: Buffer.from('3\n') });
    const e = await expectCode(loadStateDict(bad), FormatError.code);
    expect(e.message).toMatch(/reaches element/);
    // truncations of a real checkpoint
    const good = fs.readFileSync(path.join(FIXTURES, 'model_state.pt'));
    for (const cut of [10, 100, good.byteLength >> 1, good.byteLength - 30, good.byteLength - 1]) {
      await expectCode(loadStateDict(good.subarray(0, cut)), FormatError.code);
    }
  });

  it('hostile data.pkl: unsafe globals and nesting bombs', async () => {
    const evil = Buffer.from('\x80\x02cos\nsystem\nX\x02\x00\x00\x00idx\x85R.', 'latin1');
    const e = await expectCode(
      loadStateDict(await buildPt({ 'data.pkl': evil, version: Buffer.from('3\n') })),
      UnsafePickleError.code,
    );
    expect(e.message).toContain('os.system');
    const n = 200_000;
    const bomb = Buffer.concat([
      Buffer.from('\x80\x02', 'latin1'),
      Buffer.alloc(n, 0x5d),
      Buffer.alloc(n - 1, 0x61),
      Buffer.from('.'),
    ]);
    const t0 = Date.now();
    await expectCode(
      loadStateDict(await buildPt({ 'data.pkl': bomb, version: Buffer.from('3\n') })),
      LimitExceededError.code,
    );
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe('pytorch writer', () => {
  const dtypes = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;

  it('round-trips through our own reader, including dtypes only torch >= 2.1 has (v3 rebuild)', async () => {
    const sd: Record<string, Tensor> = {};
    for (const [i, d] of [
      'F64',
      'F32',
      'F16',
      'BF16',
      'F8_E4M3',
      'F8_E5M2',
      'I64',
      'I32',
      'I16',
      'I8',
      'U64',
      'U32',
      'U16',
      'U8',
      'BOOL',
    ].entries()) {
      sd[`${d}.w`] = randomTensor(d as Tensor['dtype'], [3, 4], i + 1);
      sd[`${d}.s`] = randomTensor(d as Tensor['dtype'], [], i + 50);
      sd[`${d}.e`] = randomTensor(d as Tensor['dtype'], [0, 2], i + 90);
    }
    const back = await loadStateDict(await serializePyTorch(sd));
    for (const [k, t] of Object.entries(sd)) {
      expect(back.get(k)!.dtype).toBe(t.dtype);
      expect(back.get(k)!.shape).toEqual(t.shape);
      expect(hex(back.get(k)!.data)).toBe(hex(t.data));
    }
  });

  it('aligns every storage payload to 64 bytes like torch', async () => {
    const f = await PyTorchFile.open(
      await serializePyTorch({ a: randomTensor('F32', [7], 1), b: randomTensor('U8', [3], 2) }),
    );
    for (const s of f.storages.values()) expect(s.offset % 64).toBe(0);
    await f.close();
  });

  it.skipIf(!hasTorch)(
    'writes files torch.load opens (weights_only True and False) with identical values',
    async () => {
      const dir = tmpDir();
      const sd: Record<string, Tensor> = {};
      dtypes.forEach((d, i) => {
        sd[`layer.${d}.weight`] = randomTensor(d, [4, 3], 10 + i);
        sd[`scalar_${d}`] = randomTensor(d, [], 30 + i);
        sd[`empty_${d}`] = randomTensor(d, [2, 0], 50 + i);
      });
      sd.special = {
        dtype: 'F32',
        shape: [3],
        data: new Uint8Array(new Uint32Array([0x7fc01234, 0x80000000, 1]).buffer),
      };
      const weights = path.join(dir, 'weights.pt');
      await savePyTorch(weights, sd);
      const shared = randomTensor('F32', [2, 2], 99);
      const ckpt = path.join(dir, 'ckpt.pt');
      await savePyTorch(ckpt, {
        model: new Map(Object.entries(sd).slice(0, 4)),
        epoch: 7,
        lr: 0.0003,
        betas: PyTuple.make(0.9, 0.999),
        hist: [
          [1, 2],
          [3.5, 'x'],
        ],
        big: 2n ** 80n,
        note: 'héllo',
        none: null,
        flag: true,
        same1: shared,
        same2: shared,
      });
      // a real fixture loaded by us and re-saved must be equal to the original under torch.equal
      const resaved = path.join(dir, 'resaved.pt');
      await savePyTorch(resaved, await loadStateDict(path.join(FIXTURES, 'checkpoint.pt')));
      const out = py(
        `
import json, sys, torch
def tb(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16: t = t.view(torch.int16)
    return t.numpy().tobytes().hex()
w = torch.load(sys.argv[1], weights_only=True)
w2 = torch.load(sys.argv[1])
assert all(tb(w[k]) == tb(w2[k]) for k in w)
c = torch.load(sys.argv[2])
orig = torch.load(sys.argv[4])
flat = {}
def fl(p, v):
    if isinstance(v, torch.Tensor): flat[p] = v
    elif isinstance(v, dict):
        for k, x in v.items(): fl(f'{p}.{k}' if p else str(k), x)
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v): fl(f'{p}.{i}' if p else str(i), x)
fl('', orig)
r = torch.load(sys.argv[3])
same = all(tb(flat[k]) == tb(r[k]) and flat[k].shape == r[k].shape and flat[k].dtype == r[k].dtype for k in flat) and set(flat) == set(r)
print(json.dumps({
  'w': {k: [str(v.dtype), list(v.shape), tb(v)] for k, v in w.items()},
  'c': {'epoch': c['epoch'], 'lr': c['lr'], 'betas': list(c['betas']), 'hist': c['hist'], 'big': str(c['big']), 'note': c['note'],
        'none': c['none'], 'flag': c['flag'], 'model': sorted(c['model']), 'shared': c['same1'].data_ptr() == c['same2'].data_ptr(),
        'same1': c['same1'].tolist()},
  'resaved_equal': same,
}))
`,
        weights,
        ckpt,
        resaved,
        path.join(FIXTURES, 'checkpoint.pt'),
      );
      const r = JSON.parse(out);
      const torchName: Record<string, string> = {
        F64: 'torch.float64',
        F32: 'torch.float32',
        F16: 'torch.float16',
        BF16: 'torch.bfloat16',
        I64: 'torch.int64',
        I32: 'torch.int32',
        I16: 'torch.int16',
        I8: 'torch.int8',
        U8: 'torch.uint8',
        BOOL: 'torch.bool',
      };
      for (const [k, t] of Object.entries(sd)) {
        expect(r.w[k], k).toEqual([torchName[t.dtype], t.shape, hex(t.data)]);
      }
      expect(r.c).toMatchObject({
        epoch: 7,
        lr: 0.0003,
        betas: [0.9, 0.999],
        hist: [
          [1, 2],
          [3.5, 'x'],
        ],
        big: String(2n ** 80n),
        note: 'héllo',
        none: null,
        flag: true,
        shared: true,
      });
      expect(r.c.same1.flat()).toEqual([...new Float32Array(new Uint8Array(shared.data).buffer)]);
      expect(r.resaved_equal).toBe(true);
      fs.rmSync(dir, { recursive: true });
    },
  );
});
