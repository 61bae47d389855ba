// Several processes against one store: concurrent writers, and a writer
// killed with SIGKILL in the middle of a large pack.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalPackStore } from '../../lib/store/local';
import { objectBytes } from './fixtures/data';
import { tmpDir } from './helpers';

const ROOT = path.resolve(__dirname, '..', '..');
const WRITER = path.join(__dirname, 'fixtures', 'writer.ts');

interface Child {
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  lines: string[];
  waitFor(line: string): Promise<void>;
  kill(sig: NodeJS.Signals): void;
}

function run(args: string[]): Child {
  const p = spawn(process.execPath, ['--import', 'tsx', WRITER, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: Array<{ line: string; resolve: () => void }> = [];
  let buf = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.filter((x) => x.line === line)) w.resolve();
    }
  });
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    p.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return {
    done,
    lines,
    waitFor: (line) =>
      lines.includes(line)
        ? Promise.resolve()
        : Promise.race([
            new Promise<void>((resolve) => waiters.push({ line, resolve })),
            done.then((r) => {
              throw new Error(`writer exited (${r.code}) before "${line}": ${r.stderr}`);
            }),
          ]),
    kill: (sig) => p.kill(sig),
  };
}

describe('LocalPackStore across processes', () => {
  it('two concurrent writer processes both land every object', async () => {
    const dir = tmpDir('procs');
    try {
      const observer = await LocalPackStore.open(dir); // opened before anything exists
      const kids = ['alpha', 'beta'].map((tag) => run([dir, 'many', tag, '3', '8']));
      const results = await Promise.all(kids.map((k) => k.done));
      for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });
      const ids = ['shared'];
      for (const tag of ['alpha', 'beta'])
        for (let t = 0; t < 3; t++) for (let i = 0; i < 8; i++) ids.push(`${tag}_${t}_${i}`);
      // The observer picks the new packs up lazily on a miss.
      for (const id of ids) expect(Buffer.from((await observer.get(id)).bytes).equals(objectBytes(id)), id).toBe(true);
      expect((await observer.stat('alpha_2_7')).extra).toEqual({ writer: 'alpha' });
      await observer.close();
      const fresh = await LocalPackStore.open(dir);
      const listed: string[] = [];
      for await (const a of fresh.list()) listed.push(a.id);
      expect(listed.sort()).toEqual(ids.sort());
      expect(await fresh.verify()).toEqual([]);
      expect(fresh.packNames().length).toBeGreaterThanOrEqual(6);
      await fresh.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a writer killed with SIGKILL mid-pack leaves a store that opens and verifies clean', async () => {
    const dir = tmpDir('crash');
    try {
      const kid = run([dir, 'crash', 'k']);
      await kid.waitFor('put 3');
      kid.kill('SIGKILL');
      const r = await kid.done;
      expect(r.signal).toBe('SIGKILL');
      const tmpFiles = fs.readdirSync(path.join(dir, 'tmp'));
      expect(tmpFiles.some((n) => /^pack-[0-9a-f]{32}\.h5\.tmp$/.test(n))).toBe(true);
      const s = await LocalPackStore.open(dir);
      expect(Buffer.from((await s.get('k_committed')).bytes).equals(objectBytes('k_committed'))).toBe(true);
      expect(await s.has('k_lost_0')).toBe(false);
      expect(await s.verify()).toEqual([]);
      expect(s.packNames()).toHaveLength(1);
      // gc later removes the dead writer's temp file once it is old enough.
      expect(await s.cleanTmp(60_000)).toEqual([]);
      const removed = await s.cleanTmp(0);
      expect(removed.length).toBeGreaterThanOrEqual(1);
      expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
      // And the store still takes new writes.
      const tx = s.beginWrite();
      await tx.put('after', Buffer.from('ok'), { codec: 'raw', dtype: 'U8', shape: [2], rawSize: 2 });
      await tx.commit();
      expect(await s.verify()).toEqual([]);
      await s.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
