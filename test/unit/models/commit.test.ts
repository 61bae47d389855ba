import { describe, expect, it } from 'vitest';
import { CorruptObjectError, InvalidArgumentError } from '../../../lib/errors';
import {
  decodeCommit,
  decodeMeta,
  encodeCommit,
  formatSignatureDate,
  parseTzOffset,
  formatTzOffset,
  sha256Hex,
  signatureNow,
} from '../../../lib/models';
import { commit, H, SIG } from './fixtures';

const reencode = (o: Record<string, unknown>) => Buffer.from(JSON.stringify(o));
function stored(over: Record<string, unknown> = {}, drop: string[] = []): Buffer {
  const o: Record<string, unknown> = JSON.parse(encodeCommit(commit()).toString());
  Object.assign(o, over);
  for (const k of drop) delete o[k];
  // re-canonicalise so that only the semantic defect is tested
  const sorted = Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );
  return reencode(sorted);
}

describe('commit encoding', () => {
  it('is canonical, typed and stable (golden bytes)', () => {
    const bytes = encodeCommit(commit({ metadata: { step: 1000, metrics: { loss: 0.5 } } }));
    expect(bytes.toString()).toBe(
      '{"author":{"email":"ada@example.com","name":"Ada Lovelace","timestamp":1790000000,"tzOffset":60},' +
        '"committer":{"email":"ada@example.com","name":"Ada Lovelace","timestamp":1790000000,"tzOffset":60},' +
        '"message":"init","metadata":{"metrics":{"loss":0.5},"step":1000},"parents":[],' +
        `"tree":"${H('a')}","type":"commit","v":1}`,
    );
    expect(sha256Hex(bytes)).toBe(
      sha256Hex(encodeCommit(commit({ metadata: { metrics: { loss: 0.5 }, step: 1000 } }))),
    );
  });

  it('round-trips, keeping parent order (octopus)', () => {
    const c = commit({
      parents: [H('3'), H('1'), H('2')],
      message: 'merge\n\nbody ünïcode \u{1F600}',
      metadata: { a: [1, null, 'x'] },
    });
    const back = decodeCommit(encodeCommit(c));
    expect(back).toEqual(c);
    expect(back.parents).toEqual([H('3'), H('1'), H('2')]);
    expect(decodeMeta(encodeCommit(c))).toEqual({ type: 'commit', value: c });
  });

  it.each([
    ['tree not hex', { tree: 'xyz' }],
    ['uppercase id', { tree: H('A') }],
    ['parent short', { parents: ['abcd'] }],
    ['duplicate parents', { parents: [H('1'), H('1')] }],
    ['message not string', { message: 5 }],
    ['metadata array', { metadata: [] }],
    ['metadata NaN', { metadata: { x: NaN } }],
    ['author email with <', { author: { ...SIG, email: 'a<b' } }],
    ['fractional timestamp', { committer: { ...SIG, timestamp: 1.5 } }],
    ['tz out of range', { author: { ...SIG, tzOffset: 24 * 60 } }],
    ['unknown field', { extra: 1 }],
  ])('encode rejects %s with InvalidArgumentError', (_n, over) => {
    expect(() => encodeCommit({ ...commit(), ...over } as never)).toThrow(InvalidArgumentError);
  });

  it.each([
    ['wrong type', stored({ type: 'tree' })],
    ['future version', stored({ v: 2 })],
    ['missing tree', stored({}, ['tree'])],
    ['missing metadata', stored({}, ['metadata'])],
    ['parents not array', stored({ parents: H('1') })],
    ['bad signature', stored({ author: { name: 'x', email: 'y', timestamp: 'now', tzOffset: 0 } })],
    ['signature extra field', stored({ author: { ...SIG, extra: 1 } })],
    ['unknown field', stored({ zzz: 1 })],
    ['array', Buffer.from('[]')],
    ['null', Buffer.from('null')],
    ['not json', Buffer.from('commit abc')],
  ])('decode rejects %s with CorruptObjectError', (_n, bytes) => {
    expect(() => decodeCommit(bytes)).toThrow(CorruptObjectError);
  });

  it('metadata with a "__proto__" key stays data (no prototype pollution)', () => {
    const raw = encodeCommit(commit())
      .toString()
      .replace('"metadata":{}', '"metadata":{"__proto__":{"polluted":true}}');
    const c = decodeCommit(Buffer.from(raw));
    expect(Object.keys(c.metadata)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(encodeCommit(c).toString()).toBe(raw);
  });

  it('errors carry the stable code', () => {
    try {
      decodeCommit(Buffer.from('{'));
      expect.unreachable();
    } catch (e) {
      expect((e as CorruptObjectError).code).toBe(CorruptObjectError.code);
    }
  });
});

describe('signatures', () => {
  it('formats dates like git in the signer timezone', () => {
    // 2026-11-24T02:40:58Z
    const ts = Date.UTC(2026, 10, 24, 2, 40, 58) / 1000;
    expect(formatSignatureDate({ timestamp: ts, tzOffset: 0 })).toBe('Tue Nov 24 02:40:58 2026 +0000');
    expect(formatSignatureDate({ timestamp: ts, tzOffset: 60 })).toBe('Tue Nov 24 03:40:58 2026 +0100');
    expect(formatSignatureDate({ timestamp: ts, tzOffset: -330 })).toBe('Mon Nov 23 21:10:58 2026 -0530');
    expect(formatSignatureDate({ timestamp: 0, tzOffset: 0 })).toBe('Thu Jan 1 00:00:00 1970 +0000');
  });
  it('signatureNow takes the local offset and whole seconds', () => {
    const d = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    const s = signatureNow('A', 'a@b', d);
    expect(s.timestamp).toBe(Math.floor(d.getTime() / 1000));
    expect(s.tzOffset).toBe(-d.getTimezoneOffset() || 0);
    expect(() => signatureNow('A<', 'a@b')).toThrow(InvalidArgumentError);
  });
  it('tz offsets round-trip', () => {
    for (const m of [0, 60, -300, 330, 345, -720, 840]) expect(parseTzOffset(formatTzOffset(m))).toBe(m);
    expect(parseTzOffset('+0160')).toBeNull();
    expect(parseTzOffset('0100')).toBeNull();
  });
});
