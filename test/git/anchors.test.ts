// anchorFor (lib/git/anchors.ts): the anchor of a group's previous version and which update since the
// last whole value the next version is. Chains stored before anchors (every version on the one before,
// no 'updates' attribute) count one update per link, by their depth attribute.
import { describe, expect, it } from 'vitest';
import { anchorFor, UPDATES_ATTR } from '../../lib/git/anchors';
import { MemoryStore } from '../../lib/store/memory';

async function storeWith(
  objs: Array<{ id: string; base?: string; dtype?: string; shape?: number[]; extra?: Record<string, string> }>,
) {
  const store = new MemoryStore();
  const tx = store.beginWrite();
  for (const o of objs)
    await tx.put(o.id, new Uint8Array([1, 2, 3]), {
      codec: o.base ? 'DELTA_ORDERED' : 'PLANES',
      dtype: o.dtype ?? 'F32',
      shape: o.shape ?? [4, 4],
      base: o.base ?? '',
      rawSize: 64,
      extra: o.extra ?? {},
    });
  await tx.commit();
  return store;
}

describe('anchorFor', () => {
  it('a chain stored version on version (no updates attribute): the root, one update per link', async () => {
    const store = await storeWith([
      { id: 'v0' },
      { id: 'v1', base: 'v0', extra: { depth: '1' } },
      { id: 'v2', base: 'v1', extra: { depth: '2' } },
      { id: 'v3', base: 'v2', extra: { depth: '3' } },
    ]);
    expect(await anchorFor(store, 'v3', 8)).toEqual({ id: 'v0', chain: ['v3', 'v2', 'v1', 'v0'], updates: 4 });
    expect(await anchorFor(store, 'v0', 8)).toEqual({ id: 'v0', chain: ['v0'], updates: 1 });
    // The 4th update would pass a bound of 3: stored whole.
    expect(await anchorFor(store, 'v3', 3)).toBeNull();
    expect(await anchorFor(store, 'v0', 0)).toBeNull();
  });

  it('updates on an anchor count by their attribute, not their depth', async () => {
    const store = await storeWith([
      { id: 'a' },
      { id: 'u5', base: 'a', extra: { depth: '1', [UPDATES_ATTR]: '5' } },
      { id: 's6', base: 'u5', extra: { depth: '2', [UPDATES_ATTR]: '6' } },
    ]);
    expect(await anchorFor(store, 'u5', 8)).toEqual({ id: 'a', chain: ['u5', 'a'], updates: 6 });
    expect(await anchorFor(store, 's6', 8)).toEqual({ id: 'a', chain: ['s6', 'u5', 'a'], updates: 7 });
    expect(await anchorFor(store, 's6', 6)).toBeNull();
  });

  it('the walk stops at a base of another dtype or shape (CAST, ROWS), and at a missing base', async () => {
    const store = await storeWith([
      { id: 'bf', dtype: 'BF16' },
      { id: 'c1', base: 'bf', extra: { depth: '1' } },
      { id: 'c2', base: 'c1', extra: { depth: '2' } },
      { id: 'r0', shape: [3, 4] },
      { id: 'r1', base: 'r0', extra: { depth: '1' } },
      { id: 'm1', base: 'gone', extra: { depth: '1' } },
    ]);
    expect((await anchorFor(store, 'c2', 8))!.chain).toEqual(['c2', 'c1']);
    expect((await anchorFor(store, 'r1', 8))!.chain).toEqual(['r1']);
    expect((await anchorFor(store, 'm1', 8))!.chain).toEqual(['m1']);
  });
});
