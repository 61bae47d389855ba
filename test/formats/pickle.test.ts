import { describe, expect, it } from 'vitest';
import { FormatError, LimitExceededError, UnsafePickleError, UnsupportedFormatError } from '../../lib/errors';
import {
  PyDict,
  PyFloat,
  PyTuple,
  PySet,
  TorchStorage,
  TorchTensor,
  pickle,
  unpickle,
  walkPy,
  type PyValue,
} from '../../lib/formats/pickle';
import { expectCode, hasTorch, py } from './helpers';

const b = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/** PyValue -> JSON-able form that mirrors the python-side conversion below. */
function plain(v: PyValue): unknown {
  if (v instanceof PyDict) return { __dict__: [...v.entries()].map(([k, x]) => [plain(k), plain(x)]) };
  if (v instanceof PyTuple) return { __tuple__: Array.from(v, (x) => plain(x)) };
  if (v instanceof PySet) return { __set__: Array.from(v, (x) => plain(x)).sort() };
  if (Array.isArray(v)) return Array.from(v, (x) => plain(x));
  if (v instanceof Uint8Array) return { __bytes__: Buffer.from(v).toString('hex') };
  if (typeof v === 'bigint') return { __int__: v.toString() };
  if (typeof v === 'number' && !Number.isFinite(v)) return { __float__: String(v) };
  return v;
}
const PY_PLAIN = `
import math
def plain(v):
    if isinstance(v, bool) or v is None or isinstance(v, str): return v
    if isinstance(v, int): return v if abs(v) <= 2**53 - 1 else {'__int__': str(v)}
    if isinstance(v, float): return v if math.isfinite(v) else {'__float__': {'inf': 'Infinity', '-inf': '-Infinity', 'nan': 'NaN'}[repr(v)]}
    if isinstance(v, bytes): return {'__bytes__': v.hex()}
    if isinstance(v, dict): return {'__dict__': [[plain(k), plain(x)] for k, x in v.items()]}
    if isinstance(v, tuple): return {'__tuple__': [plain(x) for x in v]}
    if isinstance(v, (set, frozenset)): return {'__set__': sorted(plain(x) for x in v)}
    if isinstance(v, list): return [plain(x) for x in v]
    raise TypeError(type(v))
`;
const SAMPLE = `{'a': 1, 'neg': -7, 'big': 2**70, 'nbig': -(2**64) - 3, 'i32': 2**31, 'f': 0.1, 'inf': float('inf'), 'z': -0.0,
 's': 'h\\u00e9llo \\u4e2d \\U0001F600', 'by': b'\\x00\\x01\\xff', 'empty': b'', 't': (1, (2, 3), ()), 'l': [None, True, False, [], {}],
 7: 'int key', (1, 2): 'tuple key', 'set': {1, 2}, 'fs': frozenset([3]), 'long_list': list(range(2500)),
 'many': {str(i): i for i in range(1200)}}`;

describe('pickle reader', () => {
  it.skipIf(!hasTorch)('reads CPython pickles of protocols 0-5 identically', () => {
    const out = py(`
import pickle, json, sys
${PY_PLAIN}
v = ${SAMPLE}
print(json.dumps({'expected': plain(v), 'pickles': {p: pickle.dumps(v, protocol=p).hex() for p in range(0, 6)}}))
`);
    const r = JSON.parse(out);
    for (const [p, hexs] of Object.entries(r.pickles as Record<string, string>)) {
      const v = unpickle(Buffer.from(hexs, 'hex'));
      expect(plain(v), `protocol ${p}`).toEqual(r.expected);
    }
  });

  it.skipIf(!hasTorch)('writes pickles CPython loads identically', () => {
    const big = new PyDict();
    for (let i = 0; i < 1200; i++) big.set(String(i), i);
    const v = new PyDict([
      ['a', 1],
      ['neg', -7],
      ['big', 2n ** 70n],
      ['nbig', -(2n ** 64n) - 3n],
      ['i32', 2 ** 31],
      ['f', 0.1],
      ['one', new PyFloat(1)],
      ['z', -0],
      ['inf', Infinity],
      ['s', 'héllo 中 😀'],
      ['by', Uint8Array.of(0, 1, 255)],
      ['t', PyTuple.make(1, PyTuple.make(2, 3), new PyTuple())],
      ['l', [null, true, false, [], new PyDict()]],
      [7, 'int key'],
      ['long_list', Array.from({ length: 2500 }, (_, i) => i)],
      ['many', big],
    ] as [PyValue, PyValue][]);
    const bytes = pickle(v);
    const out = py(
      `
import pickle, json, sys
${PY_PLAIN}
print(json.dumps(plain(pickle.loads(bytes.fromhex(sys.argv[1])))))
`,
      bytes.toString('hex'),
    );
    const exp = plain(v) as { __dict__: unknown[][] };
    // -0 and PyFloat(1) come back as python floats
    exp.__dict__ = exp.__dict__.map(([k, x]) => [k, k === 'one' ? 1 : x]);
    const got = JSON.parse(out);
    expect(Object.is(got.__dict__.find((e: unknown[]) => e[0] === 'z')[1], -0)).toBe(true);
    expect(JSON.stringify(got)).toEqual(JSON.stringify(exp));
    // and our reader agrees
    expect(JSON.stringify(plain(unpickle(bytes)))).toEqual(JSON.stringify(exp));
  });

  it('builds torch tensors from rebuild calls and storage persistent ids', () => {
    // _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 6) PERSID, 1, (2, 2), (1, 2), True, OrderedDict())
    const p = b(
      '\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQK\x01K\x02K\x02\x86K\x01K\x02\x86\x88ccollections\nOrderedDict\n)RtR.',
    );
    const t = unpickle(p) as TorchTensor;
    expect(t).toBeInstanceOf(TorchTensor);
    expect(t.storage).toEqual(new TorchStorage('0', 'F32', 6, 'cpu'));
    expect([t.dtype, t.shape, t.strides, t.storageOffset, t.requiresGrad]).toEqual(['F32', [2, 2], [1, 2], 1, true]);
  });

  describe('refuses hostile pickles', () => {
    const unsafe: [string, Uint8Array, string][] = [
      ['os.system via GLOBAL+REDUCE', b("cos\nsystem\n(S'echo pwned'\ntR."), 'os.system'],
      ['posix.system', b('\x80\x02cposix\nsystem\nX\x02\x00\x00\x00idx\x85R.'), 'posix.system'],
      [
        'builtins.eval via STACK_GLOBAL',
        b('\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x031+1\x85R.'),
        'builtins.eval',
      ],
      ['__builtin__.eval (py2 name)', b("c__builtin__\neval\n(S'1'\ntR."), '__builtin__.eval'],
      ['subprocess.Popen', b('\x80\x02csubprocess\nPopen\n]\x85R.'), 'subprocess.Popen'],
      ['torch.load', b('\x80\x02ctorch\nload\n.'), 'torch.load'],
      ['builtins.getattr', b('\x80\x02cbuiltins\ngetattr\n.'), 'builtins.getattr'],
      ['nested inside a dict', b('\x80\x02}(X\x01\x00\x00\x00acos\nsystem\nu.'), 'os.system'],
    ];
    for (const [name, bytes, global] of unsafe) {
      it(name, async () => {
        const e = await expectCode(() => unpickle(bytes), UnsafePickleError.code);
        expect(e.message).toContain(global);
      });
    }
    it('REDUCE on a non-callable value', async () => {
      await expectCode(() => unpickle(b('\x80\x02X\x01\x00\x00\x00a)R.')), UnsafePickleError.code);
    });
    it('unsupported opcodes name themselves', async () => {
      for (const [bytes, name] of [
        [b('\x80\x02\x82\x01.'), 'EXT1'],
        [b('\x80\x05\x97.'), 'NEXT_BUFFER'],
        [b('(ios\nsystem\n.'), 'INST'],
        [b('(o.'), 'OBJ'],
        [b('\x80\x02\xff.'), '0xff'],
      ] as [Uint8Array, string][]) {
        const e = await expectCode(() => unpickle(bytes), UnsupportedFormatError.code);
        expect(e.message).toContain(name);
      }
    });
    it('known-but-unsupported torch constructs', async () => {
      await expectCode(() => unpickle(b('\x80\x02ctorch._utils\n_rebuild_qtensor\n.')), UnsupportedFormatError.code);
      await expectCode(() => unpickle(b('\x80\x02ctorch\nComplexFloatStorage\n.')), UnsupportedFormatError.code);
    });
    it('truncated and malformed input', async () => {
      for (const bytes of [
        b('\x80\x02X\x10\x00\x00\x00abc'),
        b('\x80\x02'),
        b('\x80\x02N'),
        b('\x80\x02h\x05.'),
        b('\x80\x02e.'),
        b('\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x0f.'),
        b('\x80\x02\x8b\xff\xff\xff\x7f'),
        b('\x80\x02t.'),
        b('\x80\x02N}N\x85u.'),
      ]) {
        const e = await expectCode(
          () => unpickle(bytes),
          (() => {
            try {
              unpickle(bytes);
            } catch (x) {
              return (x as { code: string }).code;
            }
            return '';
          })(),
        );
        expect([FormatError.code, LimitExceededError.code]).toContain((e as unknown as { code: string }).code);
      }
      await expectCode(() => unpickle(b('\x80\x02\x8a\x08\x00\x00\x00\x00')), FormatError.code);
      await expectCode(
        () => unpickle(Buffer.concat([b('\x80\x02\x8b'), Buffer.from([0, 0, 1, 0]), Buffer.alloc(65536), b('.')])),
        LimitExceededError.code,
      );
    });
    it('a 500k-deep nesting bomb parses in bounded time and the walker refuses it', async () => {
      const n = 500_000;
      const bytes = Buffer.concat([b('\x80\x02'), Buffer.alloc(n, 0x5d), Buffer.alloc(n - 1, 0x61), b('.')]);
      const t0 = Date.now();
      const v = unpickle(bytes);
      await expectCode(() => walkPy(v, () => {}), LimitExceededError.code);
      expect(Date.now() - t0).toBeLessThan(3000);
    });
    it('a shared-reference (billion laughs) bomb hits the visit budget', async () => {
      // l0 = [1]; l(k+1) = [lk] * 16 via memo: 16^8 leaves from a ~300-byte pickle
      const parts: Uint8Array[] = [b('\x80\x02]q\x00K\x01a')];
      for (let k = 1; k <= 8; k++)
        parts.push(
          Buffer.concat([
            b('('),
            ...Array.from({ length: 16 }, () => b(`h${String.fromCharCode(k - 1)}`)),
            b(`lq${String.fromCharCode(k)}`),
          ]),
        );
      parts.push(b('.'));
      const v = unpickle(Buffer.concat(parts));
      const t0 = Date.now();
      await expectCode(() => walkPy(v, () => {}, { maxVisits: 100_000 }), LimitExceededError.code);
      expect(Date.now() - t0).toBeLessThan(1000);
    });
    it('a cycle is reported, not followed forever', async () => {
      const v = unpickle(b('\x80\x02]q\x00h\x00a.'));
      await expectCode(() => walkPy(v, () => {}), FormatError.code);
    });
  });
});
