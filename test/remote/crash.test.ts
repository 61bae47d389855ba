// Crash safety and concurrency of push and fetch over a path remote, with real processes: 4 pushers racing
// on one branch, pushes and fetches killed at every crash point (CORAL_CRASH_AT, lib/util/crash.ts) and by
// SIGKILL at seeded delays. After each: both sides pass fsck, no ref points at anything missing, and a
// rerun completes without resending what arrived whole.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CORAL_BIN,
  coral,
  coralAsync,
  ok,
  sha256,
  tempDirs,
  tmpdir,
  okJson as json,
  commitAll as commit,
} from '../helpers/cli';
import { family, rng, writeModel } from './helpers';

const dirs = tempDirs({ needDist: true });

const env = { NO_COLOR: '1', CORAL_AUTHOR_NAME: 'Test User', CORAL_AUTHOR_EMAIL: 'test@example.com' };
const hubRef = (bare: string, b = 'main') => {
  const f = path.join(bare, 'refs', 'heads', b);
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim() : null;
};

/** A hub with a base commit, and a local clone `a` with one fine-tune commit not yet pushed. */
function setup(): { d: string; a: string; bare: string; base: string; baseFile: string; tip: string; file: string } {
  const d = tmpdir('coral-remote-crash-');
  dirs.push(d);
  const a = path.join(d, 'a');
  const bare = path.join(d, 'hub.coral');
  fs.mkdirSync(a);
  ok(a, ['init']);
  writeModel(path.join(a, 'model.safetensors'), family(0));
  ok(a, ['add', '.']);
  const base = commit(a, 'base');
  const baseFile = sha256(path.join(a, 'model.safetensors'));
  ok(a, ['remote', 'add', 'origin', bare]);
  ok(a, ['push', '-u', 'origin', 'main']);
  writeModel(path.join(a, 'model.safetensors'), family(1));
  writeModel(path.join(a, 'extra.safetensors'), family(0, 9));
  ok(a, ['add', 'extra.safetensors']);
  const tip = commit(a, 'fine-tune');
  return { d, a, bare, base, baseFile, tip, file: sha256(path.join(a, 'model.safetensors')) };
}

/** A fresh clone of the hub passes fsck and checks out `file` byte for byte. */
function checkHub(d: string, bare: string, want: { head: string; file: string }, tag: string): void {
  const c = path.join(d, `check-${tag}`);
  ok(d, ['clone', bare, c]);
  expect(ok(c, ['fsck']), tag).toMatch(/ 0 problem/);
  expect(json<{ head: string }>(c, ['status']).head, tag).toBe(want.head);
  expect(sha256(path.join(c, 'model.safetensors')), tag).toBe(want.file);
  fs.rmSync(c, { recursive: true, force: true });
}

/** Runs `coral <args>` and SIGKILLs it after `ms`; resolves when it is gone. */
function killAfter(cwd: string, args: string[], ms: number): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CORAL_BIN, ...args], { cwd, env: { ...process.env, ...env }, stdio: 'ignore' });
    const t = setTimeout(() => p.kill('SIGKILL'), ms);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

describe('push and fetch under crashes and races', () => {
  it('4 processes push different commits to one branch: each lands or is refused non-fast-forward, none is lost', async () => {
    const d = tmpdir('coral-remote-race-');
    dirs.push(d);
    const seed = path.join(d, 'seed');
    const bare = path.join(d, 'hub.coral');
    fs.mkdirSync(seed);
    ok(seed, ['init']);
    writeModel(path.join(seed, 'model.safetensors'), family(0));
    ok(seed, ['add', '.']);
    commit(seed, 'base');
    ok(seed, ['remote', 'add', 'origin', bare]);
    ok(seed, ['push', '-u', 'origin', 'main']);
    const workers = [0, 1, 2, 3].map((i) => {
      const w = path.join(d, `w${i}`);
      ok(d, ['clone', bare, w]);
      writeModel(path.join(w, `part${i}.safetensors`), family(i, 20 + i));
      ok(w, ['add', `part${i}.safetensors`]);
      return { w, id: commit(w, `part ${i}`), file: sha256(path.join(w, `part${i}.safetensors`)) };
    });
    const results = await Promise.all(workers.map((x) => coralAsync(x.w, ['push'])));
    for (const r of results) expect([0, 11], r.stderr).toContain(r.code);
    const landed = results.map((r, i) => (r.code === 0 ? i : -1)).filter((i) => i >= 0);
    expect(landed.length).toBe(1);
    expect(hubRef(bare)).toBe(workers[landed[0]].id);
    for (const r of results.filter((x) => x.code === 11)) expect(r.stderr).toMatch(/CORAL_NON_FAST_FORWARD/);
    // The refused ones pull (a clean merge: different files) and push again, until all four are in.
    for (let round = 0; round < 8; round++) {
      const pending = workers.filter((x) => !fs.existsSync(path.join(bare, 'done-' + path.basename(x.w))));
      if (!pending.length) break;
      for (const x of pending) {
        ok(x.w, ['pull']);
        const p = coral(x.w, ['push']);
        if (p.code === 0) fs.writeFileSync(path.join(bare, 'done-' + path.basename(x.w)), '');
        else expect(p.code).toBe(11);
      }
    }
    const c = path.join(d, 'final');
    ok(d, ['clone', bare, c]);
    expect(ok(c, ['fsck'])).toMatch(/ 0 problem/);
    for (const [i, x] of workers.entries()) expect(sha256(path.join(c, `part${i}.safetensors`))).toBe(x.file);
    const log = ok(c, ['log', '--oneline']);
    for (let i = 0; i < 4; i++) expect(log).toContain(`part ${i}`);
  });

  it.each(['push:before-pack', 'push:after-pack', 'push:after-trees', 'push:after-meta', 'push:before-ref'])(
    'push killed at %s leaves the hub consistent; a rerun completes without resending what arrived',
    (point) => {
      const { d, a, bare, base, baseFile, tip, file } = setup();
      const killed = coral(a, ['push'], { CORAL_CRASH_AT: point });
      expect(killed.code).toBe(128);
      expect(hubRef(bare)).toBe(base); // the ref moves last, so it did not move
      checkHub(d, bare, { head: base, file: baseFile }, `${point}-killed`);
      const r = json<{ objects: number; metas: number }>(a, ['push']);
      if (point !== 'push:before-pack') expect(r.objects, 'objects in the published pack are not resent').toBe(0);
      if (point === 'push:after-meta' || point === 'push:before-ref') expect(r.metas).toBe(0);
      expect(hubRef(bare)).toBe(tip);
      checkHub(d, bare, { head: tip, file }, point);
    },
  );

  it('push killed by SIGKILL at seeded moments, then rerun: the hub is always consistent', async () => {
    const { d, a, bare, base, tip, file } = setup();
    const next = rng(14);
    for (let i = 0; i < 3; i++) {
      const ms = Math.floor(150 + next() * 900);
      await killAfter(a, ['push'], ms);
      const at = hubRef(bare);
      expect([base, tip]).toContain(at);
      const c = path.join(d, `mid-${i}`);
      ok(d, ['clone', bare, c]);
      expect(ok(c, ['fsck']), `after a kill at ${ms} ms`).toMatch(/ 0 problem/);
      fs.rmSync(c, { recursive: true, force: true });
    }
    ok(a, ['push']);
    expect(hubRef(bare)).toBe(tip);
    checkHub(d, bare, { head: tip, file }, 'after-kills');
  });

  it.each(['fetch:before-pack', 'fetch:after-pack', 'fetch:after-trees', 'fetch:after-meta'])(
    'fetch killed at %s leaves the repository consistent; a rerun completes',
    (point) => {
      const { d, a, bare, base, tip, file } = setup();
      const b = path.join(d, 'b');
      ok(d, ['clone', bare, b]);
      ok(a, ['push']);
      const killed = coral(b, ['fetch'], { CORAL_CRASH_AT: point });
      expect(killed.code).toBe(128);
      expect(ok(b, ['fsck'])).toMatch(/ 0 problem/);
      expect(fs.readFileSync(path.join(b, '.coral', 'refs', 'remotes', 'origin', 'main'), 'utf8').trim()).toBe(base);
      const r = json<{ objects: number }>(b, ['fetch']);
      if (point !== 'fetch:before-pack') expect(r.objects).toBe(0);
      expect(fs.readFileSync(path.join(b, '.coral', 'refs', 'remotes', 'origin', 'main'), 'utf8').trim()).toBe(tip);
      ok(b, ['pull']);
      expect(sha256(path.join(b, 'model.safetensors'))).toBe(file);
      expect(ok(b, ['fsck'])).toMatch(/ 0 problem/);
    },
  );

  it('fetch killed by SIGKILL at seeded moments, then rerun', async () => {
    const { d, a, bare, tip, file } = setup();
    const b = path.join(d, 'b');
    ok(d, ['clone', bare, b]);
    ok(a, ['push']);
    const next = rng(41);
    for (let i = 0; i < 3; i++) {
      await killAfter(b, ['fetch'], Math.floor(150 + next() * 900));
      expect(ok(b, ['fsck'])).toMatch(/ 0 problem/);
    }
    ok(b, ['fetch']);
    expect(fs.readFileSync(path.join(b, '.coral', 'refs', 'remotes', 'origin', 'main'), 'utf8').trim()).toBe(tip);
    ok(b, ['pull']);
    expect(sha256(path.join(b, 'model.safetensors'))).toBe(file);
  });
});
