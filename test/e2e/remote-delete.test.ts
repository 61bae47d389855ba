// Deleting a remote branch (`coral push <remote> :<branch>`, git's spelling) and pruning remote-tracking
// refs (`coral fetch --prune`), through the real CLI, over a path remote and over S3 on the real Ceph
// RADOS Gateway (where a delete is a conditional overwrite by a tombstone: lib/remote/s3.ts).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { coral, ok, tempDirs, tmpdir } from '../helpers/cli';
import { ceph, makeBucket, type CephEnv } from '../helpers/ceph';
import { family, writeModel } from '../remote/helpers';

const dirs = tempDirs({ needDist: true });

/** A repository `a` with main and a `feature` branch, pushed to `url`; `b` a clone of it. */
function setup(url: string, env: Record<string, string>, endpoint?: string): { d: string; a: string; b: string } {
  const d = tmpdir('coral-remote-delete-');
  dirs.push(d);
  const a = path.join(d, 'a');
  fs.mkdirSync(a);
  ok(a, ['init']);
  writeModel(path.join(a, 'model.safetensors'), family(0));
  ok(a, ['add', '.']);
  ok(a, ['commit', '-m', 'base']);
  ok(a, ['branch', 'feature']);
  ok(a, ['remote', 'add', 'origin', url, ...(endpoint ? ['--endpoint', endpoint] : [])], env);
  ok(a, ['push', 'origin', 'main', 'feature'], env);
  const b = path.join(d, 'b');
  ok(d, ['clone', ...(endpoint ? ['--endpoint', endpoint] : []), url, b], env);
  return { d, a, b };
}

function deleteAndPrune(url: string, env: Record<string, string>, endpoint?: string): void {
  const { a, b } = setup(url, env, endpoint);
  expect(ok(b, ['branch', '-r'])).toContain('origin/feature');
  // Delete the remote branch: the remote loses it, and so does a's tracking ref.
  const r = coral(a, ['push', 'origin', ':feature'], env);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toMatch(/- \[deleted\]\s+feature/);
  expect(ok(a, ['branch', '-r'])).not.toContain('origin/feature');
  expect(ok(a, ['branch'])).toContain('feature'); // the local branch stays
  // Deleting it again: it does not exist on the remote any more.
  const again = coral(a, ['push', 'origin', ':feature'], env);
  expect(again.code).toBe(4);
  expect(again.stderr).toMatch(/CORAL_REF_NOT_FOUND/);
  // b still has origin/feature after a plain fetch; --prune removes it, and only it.
  ok(b, ['fetch'], env);
  expect(ok(b, ['branch', '-r'])).toContain('origin/feature');
  const pruned = coral(b, ['fetch', '--prune', '--json'], env);
  expect(pruned.code, pruned.stderr).toBe(0);
  const rep = JSON.parse(pruned.stdout) as { updates: Array<{ ref: string; status: string }> };
  expect(rep.updates.filter((u) => u.status === 'deleted').map((u) => u.ref)).toEqual(['refs/remotes/origin/feature']);
  const branches = ok(b, ['branch', '-r']);
  expect(branches).not.toContain('origin/feature');
  expect(branches).toContain('origin/main');
  // The branch can be pushed again (on S3 the tombstone is replaced by compare-and-swap).
  ok(a, ['push', 'origin', 'feature'], env);
  ok(b, ['fetch', '-p'], env);
  expect(ok(b, ['branch', '-r'])).toContain('origin/feature');
  // A refspec that names nothing to delete is refused before anything moves.
  expect(coral(a, ['push', 'origin', ':'], env).code).not.toBe(0);
}

describe('push :<branch> and fetch --prune', () => {
  it('over a path remote', () => {
    const d = tmpdir('coral-remote-delete-hub-');
    dirs.push(d);
    const hub = path.join(d, 'hub.coral');
    ok(d, ['init', '--bare', hub]);
    deleteAndPrune(hub, {});
    expect(fs.existsSync(path.join(hub, 'refs', 'heads', 'feature'))).toBe(true);
  });

  it('branch -vv shows each branch upstream with ahead/behind counts, and gone once pruned', () => {
    const d = tmpdir('coral-remote-vv-');
    dirs.push(d);
    const hub = path.join(d, 'hub.coral');
    ok(d, ['init', '--bare', hub]);
    const { a, b } = setup(hub, {});
    ok(b, ['checkout', 'feature']); // DWIM: tracks origin/feature
    ok(b, ['checkout', 'main']);
    ok(b, ['branch', 'local-only']);
    const line = (out: string, br: string) => out.split('\n').find((l) => l.slice(2).startsWith(`${br} `)) ?? '';
    let out = ok(b, ['branch', '-vv']);
    expect(line(out, 'main')).toMatch(/^\* main\s+[0-9a-f]{7,} \[origin\/main\] base$/);
    expect(line(out, 'feature')).toMatch(/\[origin\/feature\] base$/);
    expect(line(out, 'local-only')).not.toContain('[');
    // b commits once; a commits and pushes twice: ahead 1, behind 2 after a fetch.
    writeModel(path.join(b, 'model.safetensors'), family(1));
    ok(b, ['commit', '-a', '-m', 'b work']);
    for (const step of [2, 3]) {
      writeModel(path.join(a, 'model.safetensors'), family(step));
      ok(a, ['commit', '-a', '-m', `a ${step}`]);
    }
    ok(a, ['push', 'origin', 'main']);
    ok(b, ['fetch']);
    out = ok(b, ['branch', '-v', '-v']);
    expect(line(out, 'main')).toMatch(/\[origin\/main: ahead 1, behind 2\] b work$/);
    const json = JSON.parse(ok(b, ['branch', '-vv', '--json'])) as Array<{ name: string; upstream?: object }>;
    expect(json.find((x) => x.name === 'main')?.upstream).toEqual({
      name: 'origin/main',
      ahead: 1,
      behind: 2,
      gone: false,
    });
    // The remote branch is deleted and pruned: its upstream is gone.
    ok(a, ['push', 'origin', ':feature']);
    ok(b, ['fetch', '--prune']);
    expect(line(ok(b, ['branch', '-vv']), 'feature')).toMatch(/\[origin\/feature: gone\] base$/);
    // -v alone shows no upstreams.
    expect(ok(b, ['branch', '-v'])).not.toContain('[origin/');
  });

  describe('over S3 (Ceph RGW)', () => {
    let env: CephEnv;
    let bucket = '';
    beforeAll(async () => {
      env = await ceph();
      bucket = await makeBucket('delete');
    });
    it('deletes by tombstone and prunes', () => {
      deleteAndPrune(`s3://${bucket}/r-${crypto.randomBytes(4).toString('hex')}`, env.vars, env.endpoint);
    });
  });
});
