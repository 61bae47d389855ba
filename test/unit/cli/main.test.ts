// lib/cli/main.ts: the command table is a Map, so names that an object literal inherits from
// Object.prototype (`constructor`, `__proto__`, `toString`) are unknown commands, not crashes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../lib/cli/main';
import type { Io } from '../../../lib/cli/output';

async function run(argv: string[], cwd = process.cwd()): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s), color: false, progress: false };
  const code = await main(argv, io, cwd);
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

describe('-q/--quiet', () => {
  it('runs the git-like commands with nothing on stdout; errors still reach stderr', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-quiet-'));
    try {
      const steps: string[][] = [
        ['init', '-q'],
        ['add', '--quiet', 'notes.txt'],
        ['commit', '-q', '-m', 'one'],
        ['checkout', '-q', '-b', 'dev'],
        ['checkout', '--quiet', 'main'],
        ['rm', '-q', '--cached', 'notes.txt'],
        ['reset', '-q'],
        ['gc', '-q'],
      ];
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello\n');
      for (const argv of steps) {
        const r = await run(argv, dir);
        expect({ argv, ...r }).toEqual({ argv, code: 0, out: '', err: '' });
      }
      // The same commands without -q do print (so the checks above are not vacuous).
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello again\n');
      await run(['add', 'notes.txt'], dir);
      expect((await run(['commit', '-m', 'two'], dir)).out).toMatch(/two/);
      expect((await run(['log', '--oneline'], dir)).out.split('\n').filter(Boolean)).toHaveLength(2);
      const bad = await run(['checkout', '-q', 'no-such-branch'], dir);
      expect(bad.code).not.toBe(0);
      expect(bad.out).toBe('');
      expect(bad.err).toMatch(/no-such-branch/);
      // Commands git gives no -q keep refusing it.
      expect((await run(['status', '-q'], dir)).code).toBe(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
