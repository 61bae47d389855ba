// logGraph / topoOrder (lib/commands/log.ts): the ASCII graph of `coral log --graph`, on synthetic histories.
import { describe, expect, it } from 'vitest';
import type { Commit } from '../../lib/models/commit';
import { logGraph, topoOrder, type HistoryEntry } from '../../lib/commands/log';

const e = (id: string, ...parents: string[]): HistoryEntry => ({ id, commit: { parents } as unknown as Commit });
const render = (entries: HistoryEntry[]) => logGraph(entries).flatMap((r) => [`${r.graph} ${r.id}`, ...r.after]);

describe('logGraph', () => {
  it('draws a linear history as one column', () => {
    expect(render([e('c', 'b'), e('b', 'a'), e('a')])).toEqual(['* c', '* b', '* a']);
  });

  it('draws a merge fork and the join of its two lines', () => {
    expect(render(topoOrder([e('m', 'x', 'y'), e('x', 'b'), e('y', 'b'), e('b')]))).toEqual([
      '* m',
      '|\\',
      '| * y',
      '* | x',
      '|/',
      '* b',
    ]);
  });

  it('keeps unrelated lines apart and closes a root that has lines to its right', () => {
    // two branch tips shown together (log --all style), with separate roots
    const rows = render([e('p', 'r1'), e('q', 'r2'), e('r1'), e('r2')]);
    expect(rows).toEqual(['* p', '| * q', '* | r1', ' /', '* r2']);
  });

  it('draws an octopus merge with one fork mark per extra parent', () => {
    const rows = logGraph(topoOrder([e('m', 'a', 'b', 'c'), e('c', 'z'), e('b', 'z'), e('a', 'z'), e('z')]));
    expect(rows[0].after[0]).toBe('|\\ \\');
    expect(rows[rows.length - 1].graph).toBe('*');
    expect(rows.every((r) => /^[*|\\/ ]*$/.test(r.graph))).toBe(true);
  });

  it('only draws edges to listed commits (a..b, -n, paths)', () => {
    expect(render([e('c', 'b'), e('b', 'a')])).toEqual(['* c', '* b']);
  });
});

describe('topoOrder', () => {
  it('puts children before parents and finishes a line before switching', () => {
    const out = topoOrder([e('m', 'x', 'y'), e('x', 'b'), e('y', 'y0'), e('y0', 'b'), e('b')]).map((x) => x.id);
    expect(out).toEqual(['m', 'y', 'y0', 'x', 'b']);
  });
});
