// readOrder (lib/remote/negotiate.ts): the order in which a fetch reads the spans of the whole packs it
// copies. Each pack's spans stay in file order; a span of deltas comes right after the spans holding its
// bases, so each decoded base is freed as soon as its deltas are checked.
import { describe, expect, it } from 'vitest';
import type { PackEntry } from '../../../binding';
import { readOrder } from '../../../lib/remote/negotiate';
import type { PackListing } from '../../../lib/store/pack-stream';

type Item = { pack: PackListing; spans: Array<{ offset: number; length: number; objects: PackEntry[] }> };

/** A pack whose spans are a gap, then one object each (ids given; `base` names each one's base or ''). */
function pack(name: string, objs: Array<[string, string]>, trailingGap = true): Item {
  const entries = objs.map(
    ([id, base], i) => ({ id, base: base || undefined, offset: 100 + i * 10, size: 10 }) as unknown as PackEntry,
  );
  const spans = [{ offset: 0, length: 100, objects: [] as PackEntry[] }];
  for (const e of entries) spans.push({ offset: e.offset!, length: 10, objects: [e] });
  if (trailingGap) spans.push({ offset: 100 + objs.length * 10, length: 5, objects: [] });
  return { pack: { name, size: 105 + objs.length * 10, entries }, spans };
}

const ids = (items: Item[], order: Array<[number, number]>) =>
  order.map(([p, s]) => items[p].spans[s].objects.map((e) => e.id).join(',') || `gap${p}`);

describe('readOrder', () => {
  it('reads each delta right after its base, every span once, each pack in file order', () => {
    const items = [
      pack('base', [
        ['a', ''],
        ['b', ''],
        ['c', ''],
      ]),
      pack('tune', [
        ['a1', 'a'],
        ['b1', 'b'],
        ['c1', 'c'],
      ]),
    ];
    const order = readOrder(items);
    expect(ids(items, order)).toEqual(['gap0', 'a', 'gap1', 'a1', 'b', 'b1', 'c', 'c1', 'gap0', 'gap1']);
    for (const p of [0, 1]) {
      const mine = order.filter(([q]) => q === p).map(([, s]) => s);
      expect(mine).toEqual(items[p].spans.map((_, s) => s));
    }
  });

  it('a chain of fine-tunes is read a tensor at a time through every pack', () => {
    const items = [
      pack('s0', [
        ['a', ''],
        ['b', ''],
      ]),
      pack('s1', [
        ['a1', 'a'],
        ['b1', 'b'],
      ]),
      pack('s2', [
        ['a2', 'a1'],
        ['b2', 'b1'],
      ]),
    ];
    const objects = ids(items, readOrder(items)).filter((x) => !x.startsWith('gap'));
    expect(objects).toEqual(['a', 'a1', 'a2', 'b', 'b1', 'b2']);
  });

  it('packs without deltas between them are read one after the other, as listed', () => {
    const items = [pack('x', [['x1', '']]), pack('y', [['y1', 'outside']]), pack('z', [['z1', '']])];
    expect(ids(items, readOrder(items))).toEqual(['gap0', 'x1', 'gap0', 'gap1', 'y1', 'gap1', 'gap2', 'z1', 'gap2']);
  });

  it('a delta before its base in the same pack, or a cycle between packs, still reads every span once', () => {
    const items = [
      pack('p', [
        ['d', 'e'],
        ['e', 'f'],
      ]),
      pack('q', [['f', 'd']]),
    ];
    const order = readOrder(items);
    expect(order.length).toBe(items[0].spans.length + items[1].spans.length);
    expect(new Set(order.map(([p, s]) => `${p}:${s}`)).size).toBe(order.length);
  });
});
