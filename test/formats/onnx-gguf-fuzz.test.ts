// Seeded mutation fuzz: corrupting bytes of valid ONNX and GGUF files gives a layout that still tiles the
// file, or a typed CoralError (never a TypeError/RangeError, never a hang).
import { describe, expect, it } from 'vitest';
import { CoralError } from '../../lib/errors';
import { BufferSource, scanSource, type CheckpointFormat } from '../../lib/formats';
import { llamaLike, writeGguf } from './gguf-fixture';
import { rng } from './helpers';
import { everywhereModel } from './onnx-fixture';

async function fuzz(
  good: Buffer,
  format: CheckpointFormat,
  seed: number,
  rounds: number,
): Promise<Record<string, number>> {
  const r = rng(seed);
  const outcomes: Record<string, number> = {};
  for (let i = 0; i < rounds; i++) {
    const b = Buffer.from(good);
    const [k, a, c] = r(3);
    const edits = 1 + (k % 4);
    for (let e = 0; e < edits; e++) {
      const [x0, x1, x2, v] = r(4);
      const at = ((x0 << 16) | (x1 << 8) | x2) % b.length;
      b[at] = v;
    }
    const cut = a % 5 === 0 ? b.subarray(0, (c * 997) % b.length) : b;
    try {
      const l = await scanSource(new BufferSource(cut, 'fuzz'), { format });
      let end = 0;
      for (const s of l.segments) {
        expect(s.offset).toBeGreaterThanOrEqual(end);
        end = s.offset + s.length;
      }
      expect(end).toBeLessThanOrEqual(cut.length);
      outcomes.ok = (outcomes.ok ?? 0) + 1;
    } catch (e) {
      if (!(e instanceof CoralError)) throw e;
      outcomes[e.code] = (outcomes[e.code] ?? 0) + 1;
    }
  }
  return outcomes;
}

describe('mutation fuzz', () => {
  it('ONNX', async () => {
    const o = await fuzz(everywhereModel(3), 'onnx', 7, 400);
    expect(Object.values(o).reduce((a, b) => a + b, 0)).toBe(400);
    expect(o.CORAL_FORMAT).toBeGreaterThan(0);
  });
  it('GGUF', async () => {
    const o = await fuzz(writeGguf({ ...llamaLike({ alignment: 64 }), trailing: Buffer.from('x') }), 'gguf', 11, 400);
    expect(Object.values(o).reduce((a, b) => a + b, 0)).toBe(400);
    expect(o.CORAL_FORMAT).toBeGreaterThan(0);
  });
});
