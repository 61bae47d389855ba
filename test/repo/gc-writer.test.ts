// gc in another process against a live writer (issue #11 must-fix 1): a writer
// must never commit against objects that gc removed after the writer opened.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Repository } from '../../lib/repository';
import { coral, sha256, tmpdir, writeSafetensors } from '../helpers/cli';
import { checkoutEveryCommit, gcLoop, version } from './gc-helpers';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('gc against a live writer', () => {
  it('an add that dedups against objects gc removed after open rewrites them', async () => {
    const d = tmpdir('coral-gcw-');
    dirs.push(d);
    const file = path.join(d, 'm.safetensors');
    const repo0 = await Repository.init(d);
    writeSafetensors(file, version(1));
    await repo0.add([file]);
    await repo0.commit({ message: 'v1' });
    // A new version, staged then unstaged: its objects are stored but unreachable.
    writeSafetensors(file, version(2));
    await repo0.add([file]);
    await repo0.reset([file]);
    await repo0.close();

    const repo = await Repository.open(d);
    // gc in another process while `repo` is open (its view still lists v2's objects).
    const g = coral(d, ['gc', '--prune=now', '--json']);
    expect(g.code, g.stderr).toBe(0);
    expect(JSON.parse(g.stdout).removedObjects).toBeGreaterThan(0);

    await repo.add([file]);
    const id = await repo.commit({ message: 'v2' });
    const sha = sha256(file);
    const r = await repo.fsck();
    expect(r.problems).toEqual([]);
    await repo.close();

    const f = coral(d, ['fsck', '--json']);
    expect(f.code, f.stdout + f.stderr).toBe(0);
    await checkoutEveryCommit(d, [{ id, sha }]);
  });

  it('10 add/reset/add/commit rounds against gc looping in another process', async () => {
    const d = tmpdir('coral-gcw-');
    dirs.push(d);
    const file = path.join(d, 'm.safetensors');
    const repo = await Repository.init(d);
    writeSafetensors(file, version(0));
    await repo.add([file]);
    await repo.commit({ message: 'v0' });
    const loop = gcLoop(d);
    const ids: Array<{ id: string; sha: string }> = [];
    try {
      for (let i = 1; i <= 10; i++) {
        writeSafetensors(file, version(i));
        await repo.add([file]);
        await repo.reset([file]);
        await loop.waitFresh();
        await repo.add([file]);
        ids.push({ id: await repo.commit({ message: `v${i}` }), sha: sha256(file) });
      }
    } finally {
      await loop.stop();
    }
    expect(loop.rounds()).toBeGreaterThan(0);
    expect((await repo.fsck()).problems).toEqual([]);
    await repo.close();
    await checkoutEveryCommit(d, ids);
  });
});
