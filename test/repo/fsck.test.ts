// fsck: one damaged object is one problem; HEAD and refs that point where they
// must not are reported (issue #10, issue #11).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Repository } from '../../lib/repository';
import { LocalPackStore } from '../../lib/store/local';
import { coral, f32, tmpdir, weights, writeSafetensors } from '../helpers/cli';
import { seeded } from '../store/helpers';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function repoWithCommit(): Promise<{ d: string; repo: Repository; commit: string }> {
  const d = tmpdir('coral-fsck-');
  dirs.push(d);
  const repo = await Repository.init(d);
  const file = path.join(d, 'm.safetensors');
  // Random bytes compress poorly: the object's bytes dominate the pack.
  writeSafetensors(file, {
    noise: { dtype: 'U8', shape: [1 << 18], data: seeded(1 << 18, 9) },
    w: { dtype: 'F32', shape: [256], data: f32(weights(256, 1)) },
  });
  await repo.add([file]);
  const commit = await repo.commit({ message: 'one' });
  return { d, repo, commit };
}

describe('fsck', () => {
  it('counts one flipped byte in an object as one problem, with and without --quick', async () => {
    const { d, repo } = await repoWithCommit();
    await repo.close();
    const store = await LocalPackStore.open(path.join(d, '.coral'));
    const [pack] = store.packNames();
    let big = { id: '', offset: 0, size: 0 };
    for await (const a of store.list()) {
      const e = store._locate(a.id)!.entry;
      if (e.offset !== null && e.size > big.size) big = { id: a.id, offset: e.offset, size: e.size };
    }
    await store.close();
    const file = path.join(d, '.coral', 'objects', 'packs', pack);
    const buf = fs.readFileSync(file);
    buf[big.offset + (big.size >> 1)] ^= 0x01;
    fs.writeFileSync(file, buf);
    for (const args of [
      ['fsck', '--json'],
      ['fsck', '--quick', '--json'],
    ]) {
      const r = coral(d, args);
      expect(r.code).toBe(9);
      const rep = JSON.parse(r.stdout);
      expect(
        rep.problems.map((p: { id: string }) => p.id),
        args.join(' '),
      ).toEqual([big.id]);
    }
  });

  it('reports a ref that points at a tree, HEAD pointing at a directory, and a ref symlinked outside .coral', async () => {
    const { d, repo, commit } = await repoWithCommit();
    const tree = (await repo.readCommit(commit)).tree;
    const refs = path.join(d, '.coral', 'refs', 'heads');
    fs.writeFileSync(path.join(refs, 'at-tree'), `${tree}\n`);
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-outside-'));
    dirs.push(outside);
    fs.writeFileSync(path.join(outside, 'x'), `${commit}\n`);
    fs.symlinkSync(path.join(outside, 'x'), path.join(refs, 'linked'));
    fs.mkdirSync(path.join(refs, 'dir'));
    fs.writeFileSync(path.join(refs, 'dir', 'sub'), `${commit}\n`);
    fs.writeFileSync(path.join(d, '.coral', 'HEAD'), 'ref: refs/heads/dir\n');
    const r = await repo.fsck();
    await repo.close();
    const byId = new Map(r.problems.map((p) => [p.id, p.message]));
    expect(r.ok).toBe(false);
    expect(byId.get('refs/heads/at-tree')).toMatch(/tree/);
    expect(byId.get('refs/heads/linked')).toMatch(/symbolic link.*outside/);
    expect(byId.get('HEAD')).toMatch(/directory/);
    expect(r.problems.length).toBe(3);
    const cli = coral(d, ['fsck']);
    expect(cli.code).toBe(9);
    expect(cli.stdout).toMatch(/3 problem\(s\)/);
  });

  it('reports HEAD that is itself a directory instead of failing', async () => {
    const { d, repo } = await repoWithCommit();
    await repo.close();
    const head = path.join(d, '.coral', 'HEAD');
    fs.rmSync(head);
    fs.mkdirSync(head);
    const r = coral(d, ['fsck', '--json']);
    expect(r.code).toBe(9);
    expect(JSON.parse(r.stdout).problems).toEqual([{ kind: 'ref', id: 'HEAD', message: 'is a directory, not a file' }]);
  });
});
