import { describe, expect, it } from 'vitest';
import { CorruptObjectError, InvalidArgumentError, LimitExceededError } from '../../../lib/errors';
import { canonicalJson, parseCanonical, sha256Hex } from '../../../lib/models';

describe('canonicalJson', () => {
  it('sorts keys recursively and drops whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });
  it('is independent of insertion order', () => {
    const a: Record<string, number> = {};
    const b: Record<string, number> = {};
    const keys = Array.from({ length: 50 }, (_, i) => `k${(i * 37) % 50}`);
    for (const k of keys) a[k] = 1;
    for (const k of [...keys].reverse()) b[k] = 1;
    expect(canonicalJson(a)).toBe(canonicalJson(b));
  });
  it('sorts by UTF-16 code units and escapes like JSON', () => {
    expect(canonicalJson({ é: 1, z: 2, A: 3, '\u{1F600}': 4, '\n': 5 })).toBe(
      '{"\\n":5,"A":3,"z":2,"é":1,"\u{1F600}":4}',
    );
  });
  it('normalises numbers', () => {
    expect(canonicalJson([-0, 1.5e300, 1e-7, 0.1 + 0.2, 10])).toBe('[0,1.5e+300,1e-7,0.30000000000000004,10]');
  });
  it('drops undefined object members', () => {
    expect(canonicalJson({ a: undefined, b: null })).toBe('{"b":null}');
  });
  it.each([
    ['NaN', NaN],
    ['Infinity', { x: Infinity }],
    ['-Infinity', [-Infinity]],
    ['bigint', { n: 1n }],
    ['function', { f: () => 1 }],
    ['symbol', [Symbol('s')]],
    ['undefined in array', [1, undefined]],
    ['Date', { d: new Date(0) }],
    ['Map', new Map()],
    ['Buffer', Buffer.from('x')],
    ['top-level undefined', undefined],
  ])('rejects %s', (_n, v) => {
    expect(() => canonicalJson(v)).toThrow(InvalidArgumentError);
  });
  it('rejects cycles but accepts shared subtrees', () => {
    const o: Record<string, unknown> = {};
    o.self = o;
    expect(() => canonicalJson(o)).toThrow(InvalidArgumentError);
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });
  it('limits depth', () => {
    let v: unknown = 1;
    for (let i = 0; i < 100; i++) v = [v];
    expect(() => canonicalJson(v)).toThrow(LimitExceededError);
  });
  it('keeps a "__proto__" key as data', () => {
    const o = JSON.parse('{"__proto__":{"x":1},"a":2}');
    expect(canonicalJson(o)).toBe('{"__proto__":{"x":1},"a":2}');
  });
});

describe('sha256Hex', () => {
  it('matches the FIPS vector', () => {
    expect(sha256Hex(Buffer.from('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('abc')).toBe(sha256Hex(new Uint8Array([0x61, 0x62, 0x63])));
  });
});

describe('parseCanonical', () => {
  const ok = (s: string) => parseCanonical(Buffer.from(s), 't');
  it('accepts canonical text', () => {
    expect(ok('{"a":[1,2],"b":"x"}')).toEqual({ a: [1, 2], b: 'x' });
  });
  it.each([
    ['whitespace', '{"a": 1}'],
    ['unsorted', '{"b":1,"a":2}'],
    ['duplicate keys', '{"a":1,"a":2}'],
    ['non-canonical number', '{"a":1.0}'],
    ['exponent form', '{"a":1E3}'],
    ['escaped letter', '{"a":"\\u0041"}'],
    ['trailing garbage', '{"a":1}x'],
    ['truncated', '{"a":'],
    ['BOM', '\ufeff{"a":1}'],
    ['empty', ''],
    ['overflowing number', '{"a":1e400}'],
    ['lone surrogate escape in other case', '{"a":"\\uD800"}'],
  ])('rejects %s with CorruptObjectError', (_n, s) => {
    expect(() => ok(s)).toThrow(CorruptObjectError);
  });
  it('rejects invalid UTF-8', () => {
    expect(() => parseCanonical(new Uint8Array([0x22, 0xff, 0x22]), 't')).toThrow(CorruptObjectError);
  });
  it('rejects hostile nesting without a stack overflow', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    expect(() => ok(deep)).toThrow(CorruptObjectError);
  });
});
