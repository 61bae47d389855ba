// lib/merge/try.ts: vetting try-and-vet candidates (the `--try --eval` scoring, as a library call),
// and lib/merge/registry.ts: every strategy name is registered.
import { describe, expect, it } from 'vitest';
import { MERGE_STRATEGIES, paramFlags, parseScore, vetCandidates, type MergeTryResult } from '../../../lib/index';
import { findStrategy, registeredStrategies } from '../../../lib/merge/registry';

function tried(): MergeTryResult {
  const c = (strategy: 'average' | 'ties' | 'dare', ok: boolean) => ({
    strategy,
    dir: `/tmp/cands/${strategy}`,
    ok,
    ...(ok ? {} : { error: 'boom (CORAL_MERGE_CONFLICT)' }),
    files: ok ? ['m.st'] : [],
    conflicts: 1,
    resolved: ok ? 1 : 0,
  });
  return {
    base: 'b',
    theirs: 't',
    ours: 'o',
    params: { alpha: 0.5, density: 0.2 },
    candidates: [c('average', true), c('ties', true), c('dare', false)],
  };
}

describe('vetCandidates', () => {
  it('without a command: no scores, no best', () => {
    const r = vetCandidates('feature', tried());
    expect(r.best).toBeNull();
    expect(r.next).toBeNull();
    expect(r.candidates.map((c) => [c.score, c.exitCode, 'output' in c ? c.output : 'absent'])).toEqual([
      [null, null, undefined],
      [null, null, undefined],
      [null, null, undefined],
    ]);
  });

  it('scores each good candidate with the command and picks the best (max, or min with minimize)', () => {
    const cmd = 'case "$CORAL_CANDIDATE_STRATEGY" in average) echo "loss 0.25";; ties) echo "loss 0.5";; esac';
    const hi = vetCandidates('feature', tried(), { command: cmd });
    expect(hi.candidates.map((c) => c.score)).toEqual([0.25, 0.5, null]);
    expect(hi.best).toEqual({ strategy: 'ties', score: 0.5, dir: '/tmp/cands/ties' });
    expect(hi.next).toBe('coral merge feature --strategy ties --alpha 0.5 --density 0.2');
    const lo = vetCandidates('feature', tried(), { command: cmd, minimize: true });
    expect(lo.best?.strategy).toBe('average');
    const failing = vetCandidates('feature', tried(), { command: 'echo oops >&2; exit 3' });
    expect(failing.candidates[0]).toMatchObject({ exitCode: 3, score: null, error: 'eval command exited 3: oops' });
  });

  it('parseScore takes the last number; paramFlags formats parameters', () => {
    expect(parseScore('epoch 3 acc 0.91\n')).toBe(0.91);
    expect(parseScore('-inf')).toBe(-Infinity);
    expect(parseScore('nan')).toBeNull();
    expect(parseScore('none')).toBeNull();
    expect(paramFlags({ alpha: 0.5, seed: '7' })).toBe('--alpha 0.5 --seed 7');
  });
});

describe('strategy registry', () => {
  it('registers every strategy name, in documentation order', () => {
    expect(registeredStrategies().map((s) => s.name)).toEqual([...MERGE_STRATEGIES]);
    for (const name of MERGE_STRATEGIES) expect(findStrategy(name)?.name).toBe(name);
    expect(findStrategy('nope')).toBeUndefined();
  });
});
