import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, RefNotFoundError } from '../../../lib/errors';
import { encodeTag } from '../../../lib/models';
import { resolveRevision } from '../../../lib/refs';
import { makeRepo, type Repo } from './graph';

// History (oldest at the bottom):
//   M   merge of F into C  (main)
//   |\
//   C F                     F on branch feature
//   | |
//   B E
//   |/
//   A
let r: Repo;
const id = (n: string) => r.ids.get(n)!;
const rev = (e: string) => resolveRevision(e, r.refs, r.meta);

beforeAll(async () => {
  r = await makeRepo();
  await r.commit('A', [], 100);
  await r.commit('B', ['A'], 200);
  await r.commit('E', ['A'], 210);
  await r.commit('C', ['B'], 300);
  await r.commit('F', ['E'], 310);
  await r.commit('M', ['C', 'F'], 400);
  await r.refs.updateRef('refs/heads/main', id('M'), { expectedOld: null, message: 'x' });
  await r.refs.updateRef('refs/heads/feature', id('F'), { expectedOld: null, message: 'x' });
  await r.refs.updateRef('refs/tags/light', id('B'), { expectedOld: null, message: 'x' });
  const sig = { name: 'T', email: 't@x', timestamp: 500, tzOffset: 0 };
  const tagId = await r.meta.put(
    encodeTag({ object: id('C'), tag: 'v1', tagger: sig, message: 'release', metadata: { acc: 0.9 } }),
  );
  await r.refs.updateRef('refs/tags/v1', tagId, { expectedOld: null, message: 'x' });
  r.ids.set('tag:v1', tagId);
});
afterAll(() => r.cleanup());

describe('resolveRevision', () => {
  it.each([
    ['HEAD', 'M'],
    ['@', 'M'],
    ['main', 'M'],
    ['refs/heads/main', 'M'],
    ['heads/main', 'M'],
    ['HEAD^', 'C'],
    ['HEAD^1', 'C'],
    ['HEAD^2', 'F'],
    ['HEAD^0', 'M'],
    ['HEAD~', 'C'],
    ['HEAD~1', 'C'],
    ['HEAD~2', 'B'],
    ['HEAD~3', 'A'],
    ['main^2~1', 'E'],
    ['main^2^', 'E'],
    ['main~1^', 'B'],
    ['main^^', 'B'],
    ['main~0', 'M'],
    ['feature', 'F'],
    ['feature~2', 'A'],
    ['v1', 'C'],
    ['refs/tags/v1', 'C'],
    ['tags/v1', 'C'],
    ['v1~1', 'B'],
    ['v1^{}', 'C'],
    ['v1^{commit}', 'C'],
    ['light', 'B'],
    ['light^', 'A'],
  ])('%s -> %s', async (expr, want) => {
    expect(r.names.get(await rev(expr))).toBe(want);
  });

  it('resolves full ids and unique prefixes (>= 4 chars), peeling tag ids', async () => {
    expect(await rev(id('B'))).toBe(id('B'));
    expect(await rev(id('B').slice(0, 10))).toBe(id('B'));
    expect(await rev(id('B').slice(0, 10).toUpperCase())).toBe(id('B'));
    expect(await rev(`${id('M').slice(0, 12)}^2`)).toBe(id('F'));
    expect(await rev(id('tag:v1'))).toBe(id('C'));
  });

  it('prefers a ref over an abbreviated id of the same spelling', async () => {
    const prefix = id('A').slice(0, 8);
    await r.refs.updateRef(`refs/heads/${prefix}`, id('F'), { expectedOld: null, message: 'x' });
    expect(await rev(prefix)).toBe(id('F'));
    await r.refs.deleteRef(`refs/heads/${prefix}`);
    expect(await rev(prefix)).toBe(id('A'));
  });

  it.each([
    ['nope'],
    ['HEAD~4'],
    ['HEAD^3'],
    ['main~1^2'],
    ['A'.repeat(4) + 'zz'],
    ['f'.repeat(64)],
    ['0000'],
    ['refs/heads/nope'],
  ])('%s -> RefNotFoundError', async (expr) => {
    const err = await rev(expr).catch((e) => e);
    expect(err).toBeInstanceOf(RefNotFoundError);
    expect(err.code).toBe(RefNotFoundError.code);
  });

  it('gives clear messages', async () => {
    await expect(rev('HEAD~9')).rejects.toThrow(/history ends at root commit .* after 3 step/);
    await expect(rev('HEAD^3')).rejects.toThrow(/only 2 parent/);
    await expect(rev('nope')).rejects.toThrow(/unknown revision "nope"/);
    await expect(rev(r.treeId)).rejects.toThrow(/names a tree/);
  });

  it.each([['~1'], ['^'], ['main^{tree}'], ['main~x'], ['main@{1}'], ['main~99999999999']])(
    '%s -> InvalidArgumentError',
    async (expr) => {
      await expect(rev(expr)).rejects.toBeInstanceOf(InvalidArgumentError);
    },
  );

  it('unborn HEAD is RefNotFoundError', async () => {
    await r.refs.setHeadSymbolic('refs/heads/orphan');
    try {
      await expect(rev('HEAD')).rejects.toThrow(/refs\/heads\/orphan has no commits/);
      await expect(rev('HEAD')).rejects.toBeInstanceOf(RefNotFoundError);
    } finally {
      await r.refs.setHeadSymbolic('refs/heads/main');
    }
  });
});
