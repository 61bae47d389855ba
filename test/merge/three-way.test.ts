// Three-way classification on synthetic trees and tensor maps: every row of
// the table in lib/merge/three-way.ts, at file and at tensor level.
import { describe, expect, it } from 'vitest';
import {
  classify3,
  classifyFiles,
  classifyTensors,
  isConflict,
  summarize,
  type MergeKind,
  type TensorVersion,
} from '../../lib/merge/three-way';

const T = (id: string, dtype = 'F32', shape: number[] = [4]): TensorVersion => ({ id, dtype, shape });
const F = (sha: string, size = 10) => ({ sha256: sha.padEnd(64, '0'), size });

// [base, ours, theirs, kind, take]
const CASES: Array<[string | undefined, string | undefined, string | undefined, MergeKind, string | null]> = [
  ['b', 'b', 'b', 'unchanged', 'base'],
  ['b', 'o', 'b', 'modified-ours', 'ours'],
  ['b', 'b', 't', 'modified-theirs', 'theirs'],
  [undefined, 'o', undefined, 'added-ours', 'ours'],
  [undefined, undefined, 't', 'added-theirs', 'theirs'],
  ['b', undefined, 'b', 'deleted-ours', 'none'],
  ['b', 'b', undefined, 'deleted-theirs', 'none'],
  ['b', 'x', 'x', 'modified-both-same', 'ours'],
  [undefined, 'x', 'x', 'added-both-same', 'ours'],
  ['b', undefined, undefined, 'deleted-both', 'none'],
  ['b', 'o', 't', 'conflict-modify-modify', null],
  [undefined, 'o', 't', 'conflict-add-add', null],
  ['b', undefined, 't', 'conflict-delete-modify', null],
  ['b', 'o', undefined, 'conflict-modify-delete', null],
];

describe('classify3', () => {
  it.each(CASES)('base=%s ours=%s theirs=%s -> %s', (b, o, t, kind, take) => {
    const c = classify3(b, o, t, (x, y) => x === y);
    expect(c).toEqual({ kind, take });
    expect(isConflict(c.kind)).toBe(take === null);
  });

  it('rejects an item that exists nowhere', () => {
    expect(() => classify3(undefined, undefined, undefined, () => true)).toThrow(TypeError);
  });
});

describe('classifyTensors', () => {
  it('classifies every case in one file, by name, sorted', () => {
    const base = new Map<string, TensorVersion>();
    const ours = new Map<string, TensorVersion>();
    const theirs = new Map<string, TensorVersion>();
    CASES.forEach(([b, o, t], i) => {
      const name = `t${String(i).padStart(2, '0')}`;
      if (b) base.set(name, T(b));
      if (o) ours.set(name, T(o));
      if (t) theirs.set(name, T(t));
    });
    const got = classifyTensors(base, ours, theirs);
    expect(got.map((g) => g.name)).toEqual(CASES.map((_, i) => `t${String(i).padStart(2, '0')}`));
    expect(got.map((g) => g.kind)).toEqual(CASES.map((c) => c[3]));
    expect(summarize(got)['conflict-modify-modify']).toBe(1);
  });

  it('a dtype or shape change with the same id is a change', () => {
    const base = new Map([['w', T('x', 'F32', [2, 2])]]);
    const reshaped = new Map([['w', T('x', 'F32', [4])]]);
    const recast = new Map([['w', T('x', 'F16', [2, 2])]]);
    expect(classifyTensors(base, reshaped, base)[0].kind).toBe('modified-ours');
    expect(classifyTensors(base, base, recast)[0].kind).toBe('modified-theirs');
    expect(classifyTensors(base, reshaped, recast)[0].kind).toBe('conflict-modify-modify');
    expect(classifyTensors(base, reshaped, new Map([['w', T('x', 'F32', [4])]]))[0].kind).toBe('modified-both-same');
  });

  it('both sides adding the same tensor is not a conflict; adding different ones is', () => {
    const empty = new Map<string, TensorVersion>();
    expect(classifyTensors(empty, new Map([['n', T('a')]]), new Map([['n', T('a')]]))[0]).toMatchObject({
      kind: 'added-both-same',
      take: 'ours',
    });
    expect(classifyTensors(empty, new Map([['n', T('a')]]), new Map([['n', T('b')]]))[0]).toMatchObject({
      kind: 'conflict-add-add',
      take: null,
    });
  });
});

describe('classifyFiles', () => {
  it('classifies files of three trees by sha256 and size', () => {
    const base = {
      keep: F('1'),
      ours: F('2'),
      theirs: F('3'),
      same: F('4'),
      both: F('5'),
      gone: F('6'),
      dm: F('7'),
      md: F('8'),
      dt: F('5a'),
    };
    const ours = {
      keep: F('1'),
      ours: F('a'),
      theirs: F('3'),
      same: F('b'),
      both: F('c'),
      dm: undefined,
      md: F('d'),
      newo: F('e'),
      addsame: F('f'),
      addadd: F('9'),
      dt: F('5a'),
    };
    const theirs = {
      keep: F('1'),
      ours: F('2'),
      theirs: F('aa'),
      same: F('b'),
      both: F('cc'),
      dm: F('77'),
      newt: F('e'),
      addsame: F('f'),
      addadd: F('99'),
    };
    const strip = <V>(r: Record<string, V | undefined>) =>
      Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as Record<string, V>;
    const got = Object.fromEntries(classifyFiles(base, strip(ours), strip(theirs)).map((c) => [c.name, c.kind]));
    expect(got).toEqual({
      keep: 'unchanged',
      ours: 'modified-ours',
      theirs: 'modified-theirs',
      same: 'modified-both-same',
      both: 'conflict-modify-modify',
      gone: 'deleted-both',
      dm: 'conflict-delete-modify',
      md: 'conflict-modify-delete',
      dt: 'deleted-theirs',
      newo: 'added-ours',
      newt: 'added-theirs',
      addsame: 'added-both-same',
      addadd: 'conflict-add-add',
    });
  });

  it('same sha256 but a different size is a change', () => {
    expect(classifyFiles({ f: F('1', 10) }, { f: F('1', 11) }, { f: F('1', 10) })[0].kind).toBe('modified-ours');
  });
});
