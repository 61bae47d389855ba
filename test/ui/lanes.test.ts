// The commit graph's lane layout (ui/src/lanes.ts), on hand-made histories.
import { describe, expect, it } from 'vitest';
import { layoutLanes } from '../../ui/src/lanes';

const c = (id: string, ...parents: string[]) => ({ id, parents });

describe('layoutLanes', () => {
  it('keeps a linear history in one lane', () => {
    const { rows, lanes } = layoutLanes([c('c', 'b'), c('b', 'a'), c('a')]);
    expect(lanes).toBe(1);
    expect(rows.map((r) => r.lane)).toEqual([0, 0, 0]);
    expect(rows[0].top).toEqual([]);
    expect(rows[0].bottom).toEqual([{ from: 0, to: 0, color: 0 }]);
    expect(rows[2].bottom).toEqual([]);
  });

  it('draws a merge to both parents and joins the lanes at the fork', () => {
    // m merges f (branch) into x (main); both come from a.
    const { rows, lanes } = layoutLanes([c('m', 'x', 'f'), c('f', 'a'), c('x', 'a'), c('a')]);
    expect(lanes).toBe(2);
    const [m, f, x, a] = rows;
    expect(m.bottom).toEqual([
      { from: 0, to: 0, color: 0 },
      { from: 0, to: 1, color: 1 },
    ]);
    expect(f.lane).toBe(1);
    // f's line continues to a in its lane while x's lane passes by.
    expect(f.bottom).toContainEqual({ from: 0, to: 0, color: 0 });
    expect(x.lane).toBe(0);
    // Both lanes end in a's node.
    expect(a.lane).toBe(0);
    expect(a.top).toEqual([
      { from: 0, to: 0, color: 0 },
      { from: 1, to: 0, color: 1 },
    ]);
  });

  it('gives each tip its own lane and keeps parents that are not loaded open', () => {
    const { rows } = layoutLanes([c('t1', 'p'), c('t2', 'q')]);
    expect(rows.map((r) => r.lane)).toEqual([0, 1]);
    expect(rows[1].bottom).toContainEqual({ from: 0, to: 0, color: 0 });
    expect(rows[1].bottom).toContainEqual({ from: 1, to: 1, color: 1 });
  });

  it('segments of consecutive rows meet: what leaves a row at the bottom enters the next at the top', () => {
    const hist = [c('m2', 'm1', 'g'), c('g', 'e'), c('m1', 'd', 'e'), c('e', 'b'), c('d', 'b'), c('b', 'a'), c('a')];
    const { rows } = layoutLanes(hist);
    for (let i = 0; i + 1 < rows.length; i++) {
      const out = [...new Set(rows[i].bottom.map((s) => s.to))].sort();
      const into = [...new Set(rows[i + 1].top.map((s) => s.from))].sort();
      expect(into).toEqual(out);
    }
  });
});
