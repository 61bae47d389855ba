// lib/cli/main.ts: the command table is a Map, so names that an object literal inherits from
// Object.prototype (`constructor`, `__proto__`, `toString`) are unknown commands, not crashes.
import { describe, expect, it } from 'vitest';
import { main } from '../../../lib/cli/main';
import type { Io } from '../../../lib/cli/output';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s), color: false, progress: false };
  const code = await main(argv, io, process.cwd());
  return { code, out, err };
}

describe('coral dispatcher', () => {
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty'])
    it(`'coral ${name}' is an unknown command (CORAL_USAGE, exit 2)`, async () => {
      const r = await run([name]);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toBe(`coral: '${name}' is not a coral command; see \`coral help\` (CORAL_USAGE)\n`);
    });

  it('lists every command once in help, sorted', async () => {
    const r = await run(['help']);
    expect(r.code).toBe(0);
    const names = [...r.out.matchAll(/^ {2}(\S+) /gm)].map((m) => m[1]);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['compare', 'merge', 'similar', 'show', 'fsck', 'config']));
    expect(names).not.toContain('constructor');
  });
});
