/**
 * Backward compatibility: objects written by an earlier encoder (format 1, before the
 * codec speed work) still decode bit-exactly, with 1 and N threads, and the current
 * encoder's output does not depend on the thread count.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../lib/native';
import { fixtureInputs } from './compat-inputs';

interface Fixture {
  name: string;
  codec: string;
  id: string;
  object: string;
}
const fixtures = (
  JSON.parse(readFileSync(path.join(__dirname, 'fixtures', 'v1-objects.json'), 'utf8')) as {
    objects: Fixture[];
  }
).objects;

describe('codec backward compatibility', () => {
  const inputs = fixtureInputs();
  it('has one fixture per input', () => {
    expect(fixtures.map((f) => f.name)).toEqual(inputs.map((i) => i.name));
  });
  for (const [k, f] of fixtures.entries()) {
    it(`decodes an earlier ${f.name} object bit-exactly`, () => {
      const inp = inputs[k];
      const obj = Buffer.from(f.object, 'base64');
      const info = native.codecInspect(obj);
      expect(native.codecNames[info.codec]).toBe(f.codec);
      expect(info.id).toBe(f.id);
      for (const threads of [1, 2]) {
        const out = native.codecDecode(obj, inp.base, null, threads);
        expect(Buffer.compare(out, inp.data)).toBe(0);
      }
    });
    it(`re-encodes ${f.name} identically with 1 and 2 threads`, () => {
      const inp = inputs[k];
      const a = native.codecEncode(inp.data, inp.dtype, inp.shape, inp.base, {
        codec: inp.codec,
        chunkElems: 512,
        threads: 1,
      });
      const b = native.codecEncode(inp.data, inp.dtype, inp.shape, inp.base, {
        codec: inp.codec,
        chunkElems: 512,
        threads: 2,
      });
      expect(Buffer.compare(a.bytes, b.bytes)).toBe(0);
      expect(a.id).toBe(f.id);
      expect(Buffer.compare(native.codecDecode(a.bytes, inp.base, null, 2), inp.data)).toBe(0);
    });
  }
});
