import { describe, expect, it } from 'vitest';
import { CorruptObjectError, InvalidArgumentError } from '../../../lib/errors';
import { canonicalJson, decodeMeta, decodeTag, encodeTag } from '../../../lib/models';
import { tag } from './fixtures';

describe('annotated tags', () => {
  it('round-trip with metrics', () => {
    const t = tag({ metadata: { metrics: { acc: 0.912, loss: 0.25 }, dataset: 'val' } });
    const bytes = encodeTag(t);
    expect(decodeTag(bytes)).toEqual(t);
    expect(decodeMeta(bytes)).toEqual({ type: 'tag', value: t });
    expect(JSON.parse(bytes.toString())).toMatchObject({ type: 'tag', v: 1 });
  });
  it.each([['a..b'], ['-x'], ['x.lock'], ['a b'], ['a:b'], [''], ['@'], ['a/'], ['x^']])(
    'rejects tag name %j',
    (name) => {
      expect(() => encodeTag(tag({ tag: name }))).toThrow(InvalidArgumentError);
      const raw = JSON.parse(encodeTag(tag()).toString());
      raw.tag = name;
      expect(() => decodeTag(Buffer.from(canonicalJson(raw)))).toThrow(CorruptObjectError);
    },
  );
  it('accepts hierarchical names', () => {
    expect(decodeTag(encodeTag(tag({ tag: 'release/2026-11/v1.2.3' }))).tag).toBe('release/2026-11/v1.2.3');
  });
  it('rejects a commit as a tag', () => {
    const raw = JSON.parse(encodeTag(tag()).toString());
    raw.type = 'commit';
    expect(() => decodeTag(Buffer.from(canonicalJson(raw)))).toThrow(CorruptObjectError);
  });
});
