// The diff heatmap's layout (ui/src/heatmap.ts) and colour helpers (ui/src/colors.ts), without a browser.
import { describe, expect, it } from 'vitest';
import { contrast, textOn, viridis } from '../../ui/src/colors';
import { domainMax, layoutGrids } from '../../ui/src/heatmap';

const t = (name: string, relL2: number | null = 0, extra: Record<string, unknown> = {}) => ({
  name,
  status: 'modified' as const,
  dtype: 'F32',
  shape: [2],
  layer: null,
  kind: name,
  relL2,
  fracChanged: relL2 === null ? null : Math.min(1, relL2 * 10),
  maxAbs: 0,
  nonFinite: 0,
  ...extra,
});

describe('layoutGrids', () => {
  it('puts layers in rows (numeric order) and kinds in columns, other tensors in a grid of their own', () => {
    const grids = layoutGrids({
      a: 'a',
      b: 'b',
      files: [
        {
          path: 'm.safetensors',
          status: 'modified',
          tensors: [
            t('lm_head.weight'),
            t('model.layers.10.mlp.weight', 0.5),
            t('model.layers.2.attn.weight', 0.1),
            t('model.layers.2.mlp.weight'),
          ],
        },
      ],
    });
    expect(grids.map((g) => g.id)).toEqual(['all-layers', 'all-other']);
    expect(grids[0].rows).toEqual(['model.layers.2', 'model.layers.10']);
    expect(grids[0].cols).toEqual(['mlp.weight', 'attn.weight']);
    expect(grids[0].cells[1][1]).toBeNull(); // layer 10 has no attn tensor
    expect(grids[0].cells[1][0]!.t.name).toBe('model.layers.10.mlp.weight');
    expect(grids[1].cols).toEqual(['lm_head.weight']);
    expect(domainMax(grids, 'relL2')).toBe(0.5);
    expect(domainMax(grids, 'fracChanged')).toBe(1);
  });

  it('keeps an encoder and a decoder layer apart, and gives each file its grids when names repeat', () => {
    const enc = layoutGrids({
      a: 'a',
      b: 'b',
      files: [{ path: 'x', status: 'modified', tensors: [t('encoder.layer.3.w'), t('decoder.layer.3.w')] }],
    });
    expect(enc[0].rows).toEqual(['encoder.layer.3', 'decoder.layer.3']);
    const two = layoutGrids({
      a: 'a',
      b: 'b',
      files: [
        { path: 'a.safetensors', status: 'modified', tensors: [t('h.0.w')] },
        { path: 'b.safetensors', status: 'modified', tensors: [t('h.0.w')] },
      ],
    });
    expect(two.map((g) => g.title)).toEqual(['a.safetensors: layers', 'b.safetensors: layers']);
  });

  it('has no colour domain of zero width', () => {
    const grids = layoutGrids({ a: 'a', b: 'b', files: [{ path: 'x', status: 'unchanged', tensors: [t('w.0.k')] }] });
    expect(domainMax(grids, 'relL2')).toBe(1);
  });
});

describe('colours', () => {
  it('viridis runs from dark purple to yellow, clamped, and cell text keeps AA contrast on every step', () => {
    expect(viridis(0)).toEqual([68, 1, 84]);
    expect(viridis(1)).toEqual([253, 231, 37]);
    expect(viridis(-3)).toEqual(viridis(0));
    expect(viridis(Number.NaN)).toEqual(viridis(0));
    for (let i = 0; i <= 100; i++) {
      const bg = viridis(i / 100);
      const fg = textOn(bg) === '#000' ? ([0, 0, 0] as const) : ([255, 255, 255] as const);
      expect(contrast(bg, [...fg])).toBeGreaterThanOrEqual(4.5);
    }
  });
});
