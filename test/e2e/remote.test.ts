// Issue #14 through the real CLI over path remotes: push -> clone -> byte-exact checkout of every commit,
// a fine-tune push that sends only its new objects, a flipped byte on the remote, partial clone with lazy
// reads and --all-objects, pull with a conflict and a strategy, sync, and what log / branch / status show.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coral, ok, sha256, tempDirs, tmpdir, okJson as json, commitAll as commit } from '../helpers/cli';
import { family, packCount, storedObjects, writeModel } from '../remote/helpers';

const dirs = tempDirs({ needDist: true });

function workdir(): string {
  const d = tmpdir('coral-remote-e2e-');
  dirs.push(d);
  return d;
}

describe('remotes over a path', () => {
  it('push, clone, and every commit checks out byte for byte; log, branch -a and status show origin', async () => {
    const d = workdir();
    const a = path.join(d, 'a');
    const bare = path.join(d, 'hub.coral');
    fs.mkdirSync(a);
    ok(a, ['init']);
    const history: Array<{ id: string; files: Record<string, string> }> = [];
    const snap = (id: string) => {
      const files: Record<string, string> = {};
      for (const f of fs
        .readdirSync(a)
        .filter((x) => x !== '.coral')
        .sort())
        files[f] = sha256(path.join(a, f));
      history.push({ id, files });
    };
    writeModel(path.join(a, 'model.safetensors'), family(0));
    fs.writeFileSync(path.join(a, 'notes.txt'), 'base model\n');
    ok(a, ['add', '.']);
    snap(commit(a, 'base'));
    writeModel(path.join(a, 'model.safetensors'), family(1));
    snap(commit(a, 'fine-tune 1'));
    writeModel(path.join(a, 'adapter.safetensors'), family(0, 7));
    ok(a, ['add', 'adapter.safetensors']);
    snap(commit(a, 'adapter'));
    ok(a, ['tag', 'v1']);

    ok(d, ['init', '--bare', bare]);
    ok(a, ['remote', 'add', 'origin', bare]);
    expect(ok(a, ['remote', '-v'])).toContain(`origin\t${bare} (fetch)`);
    const pushed = json<{ objects: number; updates: Array<{ status: string }> }>(a, [
      'push',
      '-u',
      'origin',
      'main',
      '--tags',
    ]);
    expect(pushed.updates.map((u) => u.status)).toEqual(['new', 'new']);
    expect(pushed.objects).toBeGreaterThan(0);
    // The bare repository holds every object of the local one.
    const local = await storedObjects(path.join(a, '.coral'));
    const remote = await storedObjects(bare);
    expect([...local.keys()].filter((id) => !remote.has(id))).toEqual([]);

    const c = path.join(d, 'c');
    ok(d, ['clone', bare, c]);
    expect(ok(c, ['fsck'])).toMatch(/0 problem/);
    for (const h of [...history].reverse()) {
      ok(c, ['checkout', '--detach', h.id]);
      const files: Record<string, string> = {};
      for (const f of fs
        .readdirSync(c)
        .filter((x) => x !== '.coral')
        .sort())
        files[f] = sha256(path.join(c, f));
      expect(files, `commit ${h.id}`).toEqual(h.files);
    }
    ok(c, ['checkout', 'main']);
    // Another branch of the hub: `checkout <name>` creates it from origin/<name>, tracking it (git's DWIM).
    ok(a, ['push', 'origin', 'main:side']);
    ok(c, ['fetch']);
    ok(c, ['checkout', 'side']);
    expect(json<{ branch: string; upstream: { name: string } }>(c, ['status'])).toMatchObject({
      branch: 'side',
      upstream: { name: 'origin/side', ahead: 0, behind: 0 },
    });
    ok(c, ['checkout', 'main']);
    expect(ok(c, ['log', '--oneline', '-1'])).toMatch(/\(HEAD -> main, side, origin\/main, origin\/side, tag: v1\)/);
    expect(ok(c, ['branch', '-a'])).toContain('remotes/origin/main');
    expect(ok(c, ['branch', '-r'])).toContain('origin/main');
    expect(ok(c, ['status'])).toContain("Your branch is up to date with 'origin/main'.");
    // A local commit: ahead by one; in a the upstream (set by push -u) is one behind after c pushes it.
    fs.writeFileSync(path.join(c, 'notes.txt'), 'edited in the clone\n');
    commit(c, 'notes');
    expect(ok(c, ['status'])).toContain("Your branch is ahead of 'origin/main' by 1 commit.");
    ok(c, ['push']);
    expect(json<{ upstream: unknown }>(c, ['status']).upstream).toMatchObject({ ahead: 0, behind: 0 });
    ok(a, ['fetch']);
    expect(ok(a, ['status'])).toContain("Your branch is behind 'origin/main' by 1 commit, and can be fast-forwarded.");
  });

  it('a second push after a fine-tune sends exactly the new objects; pushing again sends nothing', async () => {
    const d = workdir();
    const a = path.join(d, 'a');
    fs.mkdirSync(a);
    ok(a, ['init']);
    writeModel(path.join(a, 'model.safetensors'), family(0));
    ok(a, ['add', '.']);
    commit(a, 'base');
    ok(a, ['remote', 'add', 'origin', path.join(d, 'hub.coral')]);
    ok(a, ['push', 'origin', 'main']); // creates the bare repository
    const before = await storedObjects(path.join(a, '.coral'));
    writeModel(path.join(a, 'model.safetensors'), family(1));
    commit(a, 'fine-tune');
    const after = await storedObjects(path.join(a, '.coral'));
    const added = [...after].filter(([id]) => !before.has(id));
    const addedBytes = added.reduce((n, [, size]) => n + size, 0);
    expect(added.length).toBeGreaterThan(0);
    const r = json<{ objects: number; objectBytes: number; metas: number; bytes: number; metaBytes: number }>(a, [
      'push',
    ]);
    expect(r.objects).toBe(added.length);
    expect(r.objectBytes).toBe(addedBytes);
    expect(r.metas).toBe(2); // the commit and its tree
    expect(r.bytes).toBe(r.objectBytes + r.metaBytes);
    const again = json<{ objects: number; bytes: number; metas: number }>(a, ['push']);
    expect(again).toMatchObject({ objects: 0, bytes: 0, metas: 0 });
    expect(ok(a, ['push'])).toContain('Everything up-to-date');
  });

  it('a flipped byte in an object on the remote is detected and named; nothing of it is written locally', async () => {
    const d = workdir();
    const a = path.join(d, 'a');
    const bare = path.join(d, 'hub.coral');
    fs.mkdirSync(a);
    ok(a, ['init']);
    writeModel(path.join(a, 'model.safetensors'), family(0));
    ok(a, ['add', '.']);
    commit(a, 'base');
    ok(a, ['remote', 'add', 'origin', bare]);
    ok(a, ['push', 'origin', 'main']);
    // A repository that already has the base, to fetch the damaged fine-tune into.
    const b = path.join(d, 'b');
    ok(d, ['clone', bare, b]);
    writeModel(path.join(a, 'model.safetensors'), family(1));
    commit(a, 'fine-tune');
    ok(a, ['push']);
    // Flip one byte inside the largest object of the newest pack on the remote.
    const packs = fs
      .readdirSync(path.join(bare, 'objects', 'packs'))
      .filter((f) => f.endsWith('.h5'))
      .map((f) => path.join(bare, 'objects', 'packs', f))
      .sort((x, y) => fs.statSync(y).mtimeMs - fs.statSync(x).mtimeMs);
    const victimPack = packs[0];
    const objs = await storedObjects(bare);
    const buf = fs.readFileSync(victimPack);
    buf[Math.floor(buf.length * 0.6)] ^= 0x10;
    fs.chmodSync(victimPack, 0o644);
    fs.writeFileSync(victimPack, buf);
    expect(objs.size).toBeGreaterThan(0);

    const packsBefore = packCount(path.join(b, '.coral'));
    const f = coral(b, ['fetch']);
    expect(f.code).toBe(9);
    expect(f.stderr).toMatch(/object [0-9a-f]{16,}/);
    expect(f.stderr).toMatch(/CORAL_(CHECKSUM_MISMATCH|CORRUPT_OBJECT)/);
    expect(packCount(path.join(b, '.coral'))).toBe(packsBefore);
    expect(ok(b, ['fsck'])).toMatch(/0 problem/);
    expect(ok(b, ['log', '--oneline', 'origin/main'])).not.toContain('fine-tune');
    const c = coral(d, ['clone', bare, path.join(d, 'c')]);
    expect(c.code).toBe(9);
    expect(fs.existsSync(path.join(d, 'c'))).toBe(false);
  });
});

describe('partial clone', () => {
  it('--filter fetches only matching objects; checkout and diff fetch the rest on demand; --all-objects completes', async () => {
    const d = workdir();
    const a = path.join(d, 'a');
    const bare = path.join(d, 'hub.coral');
    fs.mkdirSync(a);
    ok(a, ['init']);
    writeModel(path.join(a, 'base.safetensors'), family(0, 1));
    writeModel(path.join(a, 'adapter.safetensors'), family(0, 2));
    ok(a, ['add', '.']);
    const c1 = commit(a, 'one');
    const v1 = { base: sha256(path.join(a, 'base.safetensors')), adapter: sha256(path.join(a, 'adapter.safetensors')) };
    writeModel(path.join(a, 'base.safetensors'), family(1, 1));
    writeModel(path.join(a, 'adapter.safetensors'), family(1, 2));
    commit(a, 'two');
    const v2 = { base: sha256(path.join(a, 'base.safetensors')), adapter: sha256(path.join(a, 'adapter.safetensors')) };
    ok(a, ['init', '--bare', bare]);
    ok(a, ['remote', 'add', 'origin', bare]);
    ok(a, ['push', 'origin', 'main']);
    const all = await storedObjects(bare);

    const p = path.join(d, 'p');
    const r = json<{ fetch: { objects: number; filtered: number } }>(d, [
      'clone',
      '--filter',
      'adapter.*',
      '--no-checkout',
      bare,
      p,
    ]);
    expect(r.fetch.filtered).toBeGreaterThan(0);
    const held = await storedObjects(path.join(p, '.coral'));
    expect(held.size).toBe(r.fetch.objects);
    expect(held.size).toBeLessThan(all.size);
    expect(JSON.parse(ok(p, ['config', 'remote.origin.promisor']))).toBe(true);
    // fsck knows the missing objects are promised, and gc does not call them corruption.
    const f = json<{ ok: boolean; promised: number; promisor: string }>(p, ['fsck']);
    expect(f).toMatchObject({ ok: true, promisor: 'origin' });
    expect(f.promised).toBeGreaterThan(0);
    expect(ok(p, ['fsck'])).toMatch(/promised by remote 'origin'/);
    ok(p, ['gc', '--prune=now']);
    expect((await storedObjects(path.join(p, '.coral'))).size).toBe(held.size);

    // Lazy reads: checkout the tip and the first commit, byte-exact; show and diff work too.
    const packsBefore = packCount(path.join(p, '.coral'));
    ok(p, ['reset', '--hard']);
    // Everything that checkout fetched on demand went into one pack.
    expect(packCount(path.join(p, '.coral'))).toBe(packsBefore + 1);
    expect(sha256(path.join(p, 'base.safetensors'))).toBe(v2.base);
    expect(sha256(path.join(p, 'adapter.safetensors'))).toBe(v2.adapter);
    ok(p, ['checkout', '--detach', c1]);
    expect(sha256(path.join(p, 'base.safetensors'))).toBe(v1.base);
    expect(sha256(path.join(p, 'adapter.safetensors'))).toBe(v1.adapter);
    ok(p, ['checkout', 'main']);
    expect(ok(p, ['diff', c1, 'main'])).toMatch(/base\.safetensors/);
    expect((await storedObjects(path.join(p, '.coral'))).size).toBeGreaterThan(held.size);

    // A second partial clone completes with fetch --all-objects.
    const q = path.join(d, 'q');
    ok(d, ['clone', '--filter', 'layer.bias', '--no-checkout', bare, q]);
    expect((await storedObjects(path.join(q, '.coral'))).size).toBeLessThan(all.size);
    const done = json<{ objects: number }>(q, ['fetch', '--all-objects']);
    expect(done.objects).toBeGreaterThan(0);
    expect((await storedObjects(path.join(q, '.coral'))).size).toBe(all.size);
    expect(json<{ promised: number; promisor: string | null }>(q, ['fsck'])).toMatchObject({
      promised: 0,
      promisor: null,
    });
    expect(coral(q, ['config', 'remote.origin.promisor']).code).toBe(1);
  });
});

describe('pull and sync', () => {
  /** A hub with one commit, and two clones of it. */
  function setup() {
    const d = workdir();
    const a = path.join(d, 'a');
    const bare = path.join(d, 'hub.coral');
    fs.mkdirSync(a);
    ok(a, ['init']);
    writeModel(path.join(a, 'model.safetensors'), family(0));
    fs.writeFileSync(path.join(a, 'notes.txt'), 'v0\n');
    ok(a, ['add', '.']);
    commit(a, 'base');
    ok(a, ['remote', 'add', 'origin', bare]);
    ok(a, ['push', '-u', 'origin', 'main']);
    const b = path.join(d, 'b');
    ok(d, ['clone', bare, b]);
    return { d, a, b, bare };
  }

  it('pull stops at a tensor conflict; pull --strategy average merges; the merge pushes', async () => {
    const { a, b } = setup();
    writeModel(path.join(a, 'model.safetensors'), family(1, 1));
    commit(a, 'a trains');
    ok(a, ['push']);
    writeModel(path.join(b, 'model.safetensors'), family(1, 3));
    const mine = commit(b, 'b trains');
    const conflicted = coral(b, ['pull']);
    expect(conflicted.code).toBe(5);
    expect(conflicted.stderr).toMatch(/CONFLICT/);
    expect(json<{ head: string }>(b, ['status']).head).toBe(mine); // nothing moved
    const r = json<{ merge: { status: string; commit: string; resolved: unknown[] } }>(b, [
      'pull',
      '--strategy',
      'average',
    ]);
    expect(r.merge.status).toBe('merged');
    expect(r.merge.resolved.length).toBeGreaterThan(0);
    expect(ok(b, ['status'])).toContain("Your branch is ahead of 'origin/main' by 2 commits.");
    ok(b, ['push']);
    const pulled = json<{ merge: { status: string } }>(a, ['pull']);
    expect(pulled.merge.status).toBe('fast-forward');
    expect(sha256(path.join(a, 'model.safetensors'))).toBe(sha256(path.join(b, 'model.safetensors')));
  });

  it('sync merges a diverged branch and pushes; it stops at a conflict, says so, and pushes nothing', async () => {
    const { a, b, bare } = setup();
    fs.writeFileSync(path.join(a, 'notes.txt'), 'a edits notes\n');
    commit(a, 'a: notes');
    ok(a, ['push']);
    writeModel(path.join(b, 'model.safetensors'), family(1, 5));
    commit(b, 'b: trains');
    const s = json<{ branches: Array<{ branch: string; action: string }>; push: { objects: number }; stopped: null }>(
      b,
      ['sync'],
    );
    expect(s.branches).toEqual([expect.objectContaining({ branch: 'main', action: 'merged' })]);
    expect(s.push.objects).toBeGreaterThan(0);
    expect(s.stopped).toBeNull();
    const pulled = json<{ merge: { status: string } }>(a, ['pull']);
    expect(pulled.merge.status).toBe('fast-forward');
    expect(fs.readFileSync(path.join(a, 'notes.txt'), 'utf8')).toBe('a edits notes\n');
    expect(sha256(path.join(a, 'model.safetensors'))).toBe(sha256(path.join(b, 'model.safetensors')));

    // Both train the same tensor: sync stops at the conflict and leaves the hub alone.
    writeModel(path.join(a, 'model.safetensors'), family(2, 6));
    commit(a, 'a: trains more');
    ok(a, ['push']);
    const hub = await storedObjects(bare);
    writeModel(path.join(b, 'model.safetensors'), family(2, 7));
    const mine = commit(b, 'b: trains more');
    const stopped = coral(b, ['sync']);
    expect(stopped.code).toBe(5);
    expect(stopped.stderr).toMatch(/sync stopped/);
    expect(json<{ head: string }>(b, ['status']).head).toBe(mine);
    expect((await storedObjects(bare)).size).toBe(hub.size);
    // With a strategy it goes through.
    const s2 = json<{ branches: Array<{ action: string }>; stopped: null }>(b, ['sync', '--strategy', 'theirs']);
    expect(s2.branches[0].action).toBe('merged');
    expect(s2.stopped).toBeNull();
  });
});
