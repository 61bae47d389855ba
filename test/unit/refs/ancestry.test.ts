import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError, ObjectNotFoundError } from '../../../lib/errors';
import { isAncestor, mergeBase, walkCommits } from '../../../lib/refs';
import { makeRepo, type Repo } from './graph';

let r: Repo;
beforeEach(async () => {
  r = await makeRepo();
});
afterEach(() => r.cleanup());

const id = (n: string) => r.ids.get(n)!;
const names = (ids: string[]) => ids.map((x) => r.names.get(x));
async function walk(starts: string[], firstParent = false): Promise<string[]> {
  const out: string[] = [];
  for await (const { id: x, commit } of walkCommits(starts.map(id), r.meta, { firstParent })) {
    expect(commit.message).toBe(r.names.get(x));
    out.push(r.names.get(x)!);
  }
  return out;
}

describe('walkCommits', () => {
  it('orders by committer time, newest first, each commit once', async () => {
    await r.commit('A', [], 100);
    await r.commit('B', ['A'], 200);
    await r.commit('E', ['A'], 250);
    await r.commit('C', ['B'], 300);
    await r.commit('M', ['C', 'E'], 400);
    expect(await walk(['M'])).toEqual(['M', 'C', 'E', 'B', 'A']);
    expect(await walk(['M'], true)).toEqual(['M', 'C', 'B', 'A']);
    expect(await walk(['C', 'E'])).toEqual(['C', 'E', 'B', 'A']);
    expect(await walk(['E', 'E', 'A'])).toEqual(['E', 'A']);
  });

  it('breaks timestamp ties by discovery order (stable)', async () => {
    await r.commit('A', [], 100);
    await r.commit('P1', ['A'], 200);
    await r.commit('P2', ['A'], 200);
    await r.commit('P3', ['A'], 200);
    await r.commit('M', ['P2', 'P3', 'P1'], 300);
    expect(await walk(['M'])).toEqual(['M', 'P2', 'P3', 'P1', 'A']);
    expect(await walk(['P3', 'P1'])).toEqual(['P3', 'P1', 'A']);
  });

  it('lets callers stop early and fails on a missing commit', async () => {
    await r.commit('A', [], 100);
    await r.commit('B', ['A'], 200);
    const it1 = walkCommits(id('B'), r.meta)[Symbol.asyncIterator]();
    expect(r.names.get((await it1.next()).value.id)).toBe('B');
    await expect(async () => {
      for await (const _ of walkCommits('0'.repeat(64), r.meta)) void _;
    }).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(async () => {
      for await (const _ of walkCommits('nope', r.meta)) void _;
    }).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe('isAncestor', () => {
  it('follows all parents', async () => {
    await r.commit('A', [], 100);
    await r.commit('B', ['A'], 200);
    await r.commit('X', [], 150);
    await r.commit('M', ['B', 'X'], 300);
    expect(await isAncestor(id('A'), id('M'), r.meta)).toBe(true);
    expect(await isAncestor(id('X'), id('M'), r.meta)).toBe(true);
    expect(await isAncestor(id('M'), id('M'), r.meta)).toBe(true);
    expect(await isAncestor(id('M'), id('A'), r.meta)).toBe(false);
    expect(await isAncestor(id('X'), id('B'), r.meta)).toBe(false);
  });
});

describe('mergeBase', () => {
  it('linear, fork, same commit, unrelated', async () => {
    await r.commit('A', [], 100);
    await r.commit('B', ['A'], 200);
    await r.commit('C', ['B'], 300);
    await r.commit('D', ['B'], 310);
    await r.commit('Z', [], 50);
    expect(names(await mergeBase(id('A'), id('C'), r.meta))).toEqual(['A']);
    expect(names(await mergeBase(id('C'), id('A'), r.meta))).toEqual(['A']);
    expect(names(await mergeBase(id('C'), id('D'), r.meta))).toEqual(['B']);
    expect(names(await mergeBase(id('C'), id('C'), r.meta))).toEqual(['C']);
    expect(await mergeBase(id('C'), id('Z'), r.meta)).toEqual([]);
  });

  it('after a merge, the merged tip is the base', async () => {
    // A - B - M - N (main), A - F (feature) merged into M; feature continues to G
    await r.commit('A', [], 100);
    await r.commit('B', ['A'], 200);
    await r.commit('F', ['A'], 210);
    await r.commit('M', ['B', 'F'], 300);
    await r.commit('N', ['M'], 400);
    await r.commit('G', ['F'], 410);
    expect(names(await mergeBase(id('N'), id('G'), r.meta))).toEqual(['F']);
  });

  it('criss-cross: returns both best common ancestors', async () => {
    //   A
    //  / \
    // B   C
    // |\ /|
    // | X |
    // |/ \|
    // D   E
    await r.commit('A', [], 100);
    await r.commit('B', ['A'], 200);
    await r.commit('C', ['A'], 210);
    await r.commit('D', ['B', 'C'], 300);
    await r.commit('E', ['C', 'B'], 310);
    expect(names(await mergeBase(id('D'), id('E'), r.meta))).toEqual(['C', 'B']);
    // one more level on each side keeps the same bases
    await r.commit('D2', ['D'], 400);
    await r.commit('E2', ['E'], 410);
    expect(names(await mergeBase(id('D2'), id('E2'), r.meta))).toEqual(['C', 'B']);
  });

  it('clock skew cannot make a non-best ancestor survive', async () => {
    // B is a child of A but has an older timestamp; both sides reach A through B and directly.
    await r.commit('A', [], 1000);
    await r.commit('B', ['A'], 10); // skewed clock
    await r.commit('C', ['B'], 2000);
    await r.commit('D', ['B', 'A'], 2100);
    expect(names(await mergeBase(id('C'), id('D'), r.meta))).toEqual(['B']);
  });

  it('handles a long history without deep recursion', async () => {
    await r.commit('c0', [], 0);
    for (let i = 1; i < 300; i++) await r.commit(`c${i}`, [`c${i - 1}`], i);
    await r.commit('x', ['c150'], 1000);
    expect(names(await mergeBase(id('c299'), id('x'), r.meta))).toEqual(['c150']);
    expect(await isAncestor(id('c0'), id('c299'), r.meta)).toBe(true);
    expect((await walk(['c299'])).length).toBe(300);
  });
});
