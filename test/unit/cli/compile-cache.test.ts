// lib/cli/compile-cache.ts (the code cache bin/coral.js enables): each case runs child processes over a small
// tree of modules, through the built dist/cli/compile-cache.js, and checks what they compute and what the cache
// did. The cache may only ever make loading faster: a changed module, a torn or foreign file, an unwritable
// directory or concurrent writers all end in the same results as without it.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultCacheDir } from '../../../lib/cli/compile-cache';

const dist = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli', 'compile-cache.js');

interface Run {
  result: unknown;
  stats: { file: string; hits: number; misses: number; rejected: number; wrote: boolean } | null;
}

let work: string;
let root: string;
let dir: string;
let runner: string;

beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-compile-cache-'));
  root = path.join(work, 'pkg');
  dir = path.join(work, 'cache');
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.writeFileSync(
    path.join(root, 'a.js'),
    "'use strict';\nconst b = require('./sub/b');\nexports.value = () => b.word() + '-' + b.word().length;\n",
  );
  fs.writeFileSync(path.join(root, 'sub', 'b.js'), "'use strict';\nexports.word = () => 'apple';\n");
  fs.writeFileSync(path.join(root, 'sub', 'c.mjs'), 'export const seven = 7;\n');
  runner = path.join(work, 'run.js');
  // The stats are printed from an exit listener added after the cache's own, so `wrote` is final.
  fs.writeFileSync(
    runner,
    `const [root, dir, what] = process.argv.slice(2);
const stats = require(${JSON.stringify(dist)}).enableCompileCache({ root, dir: dir === '-' ? null : dir, name: 't' });
const out = { result: null, stats };
process.on('exit', () => process.stdout.write(JSON.stringify(out)));
if (what === 'import') require(root + '/sub/d.js').load().then((v) => (out.result = v));
else if (what === 'throw') { try { require(root + '/sub/e.js'); } catch (e) { out.result = e.stack.split('\\n')[1]; } }
else if (what === 'fail') { out.result = require(root + '/a.js').value(); process.exitCode = 3; }
else out.result = require(root + '/a.js').value();
`,
  );
});

afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

function run(what = 'value', cacheDir = dir): Run {
  return JSON.parse(execFileSync(process.execPath, [runner, root, cacheDir, what], { encoding: 'utf8' })) as Run;
}

function cacheFile(): string {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.bin'));
  expect(files).toHaveLength(1);
  return path.join(dir, files[0]);
}

describe('the CLI compile cache', () => {
  it('is written by the first process and used by the next, with the same results', () => {
    const first = run();
    expect(first.result).toBe('apple-5');
    expect(first.stats).toMatchObject({ hits: 0, misses: 2, wrote: true });
    expect(path.dirname(first.stats!.file)).toBe(dir);
    expect(path.basename(first.stats!.file)).toMatch(/^t-v8-/);
    if (process.getuid) expect(fs.statSync(first.stats!.file).mode & 0o077).toBe(0);
    const second = run();
    expect(second).toEqual({ result: 'apple-5', stats: { ...first.stats, hits: 2, misses: 0, wrote: false } });
  });

  it('does not use the entry of a module whose source changed, even to one of the same length', () => {
    run();
    // V8 alone would accept the old data for this source (it checks only the length) and run the old code.
    fs.writeFileSync(path.join(root, 'sub', 'b.js'), "'use strict';\nexports.word = () => 'mango';\n");
    const after = run();
    expect(after.result).toBe('mango-5');
    expect(after.stats).toMatchObject({ hits: 1, misses: 1, wrote: true });
    expect(run().stats).toMatchObject({ hits: 2, misses: 0 });
  });

  it('ignores a torn, flipped or foreign file and writes a good one in its place', () => {
    run();
    const file = cacheFile();
    const good = fs.readFileSync(file);
    // A flipped byte in the cached data: V8 would run it or abort; the entry's sum stops it first.
    const flipped = Buffer.from(good);
    for (let i = flipped.length - 1; i > flipped.length - 400; i -= 7) flipped[i] ^= 0x5a;
    const damaged = [flipped, good.subarray(0, good.length >> 1), Buffer.from('not a cache at all'), Buffer.alloc(0)];
    for (const bytes of damaged) {
      fs.writeFileSync(file, bytes);
      const r = run();
      expect(r.result).toBe('apple-5');
      expect(r.stats!.wrote).toBe(true);
      expect(run().stats).toMatchObject({ hits: 2, misses: 0 });
    }
  });

  it('is not written by a command that fails', () => {
    const r = spawnSync(process.execPath, [runner, root, dir, 'fail'], { encoding: 'utf8' });
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ result: 'apple-5', stats: { misses: 2, wrote: false } });
    expect(fs.existsSync(dir)).toBe(false);
    expect(run().stats).toMatchObject({ misses: 2, wrote: true });
  });

  it('runs without a cache when the directory cannot be made or written', () => {
    const blocked = path.join(work, 'a-file');
    fs.writeFileSync(blocked, '');
    const r = run('value', path.join(blocked, 'cache'));
    expect(r.result).toBe('apple-5');
    expect(r.stats).toMatchObject({ hits: 0, misses: 2, wrote: false });
    expect(run('value', '-')).toEqual({ result: 'apple-5', stats: null });
  });

  it('leaves one whole file when processes write it at the same time', async () => {
    const outs = await Promise.all(
      Array.from(
        { length: 6 },
        () =>
          new Promise<string>((resolve, reject) => {
            const c = spawn(process.execPath, [runner, root, dir, 'value']);
            let out = '';
            c.stdout.on('data', (d: Buffer) => (out += d.toString()));
            c.on('error', reject);
            c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
          }),
      ),
    );
    for (const o of outs) expect((JSON.parse(o) as Run).result).toBe('apple-5');
    cacheFile(); // no temporary file left beside it
    expect(run().stats).toMatchObject({ hits: 2, misses: 0 });
  });

  it("leaves a module with import() to Node, and keeps the stack's file names of a cached one", () => {
    fs.writeFileSync(
      path.join(root, 'sub', 'd.js'),
      "'use strict';\nexports.load = () => import('./c.mjs').then((m) => m.seven);\n",
    );
    fs.writeFileSync(path.join(root, 'sub', 'e.js'), "'use strict';\n\nthrow new Error('boom');\n");
    for (let i = 0; i < 2; i++) {
      expect(run('import').result).toBe(7);
      expect(run('throw').result).toContain(`${path.join(root, 'sub', 'e.js')}:3:7`);
    }
    // d.js never goes through the cache: a restored script would lose its dynamic-import handler.
    expect(run('import').stats).toMatchObject({ hits: 0, misses: 0 });
    expect(run('throw').stats).toMatchObject({ hits: 1, misses: 0 });
  });

  it('is off with CORAL_COMPILE_CACHE=0 and in the named directory otherwise', () => {
    expect(defaultCacheDir({ CORAL_COMPILE_CACHE: '0' })).toBeNull();
    expect(defaultCacheDir({ CORAL_COMPILE_CACHE: 'off' })).toBeNull();
    expect(defaultCacheDir({ CORAL_COMPILE_CACHE: '/x/y' })).toBe(path.resolve('/x/y'));
    if (process.platform === 'linux') {
      expect(defaultCacheDir({ XDG_CACHE_HOME: '/xdg' })).toBe('/xdg/coral-native');
      expect(defaultCacheDir({})).toBe(path.join(os.homedir(), '.cache', 'coral-native'));
    }
  });
});
