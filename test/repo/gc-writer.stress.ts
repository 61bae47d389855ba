// Bigger, longer variant of gc-writer.test.ts (npm run test:stress): 60 rounds of
// add/reset/add/commit with larger tensors, against gc looping in another process.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repository } from '../../lib/repository';
import { sha256, tmpdir, writeSafetensors } from '../helpers/cli';
import { checkoutEveryCommit, gcLoop, version } from './gc-helpers';

const ROUNDS = Number(process.env.CORAL_STRESS_ROUNDS ?? 60);

describe('gc against a live writer (stress)', () => {
  it(`${ROUNDS} rounds, larger tensors`, async () => {
    const d = tmpdir('coral-gcs-');
    try {
      const file = path.join(d, 'm.safetensors');
      const repo = await Repository.init(d);
      writeSafetensors(file, version(0, 1 << 18));
      await repo.add([file]);
      await repo.commit({ message: 'v0' });
      const loop = gcLoop(d);
      const ids: Array<{ id: string; sha: string }> = [];
      try {
        for (let i = 1; i <= ROUNDS; i++) {
          writeSafetensors(file, version(i, 1 << 18));
          await repo.add([file]);
          await repo.reset([file]);
          if (i % 2) await loop.waitFresh(); // every other round races gc instead of waiting for it
          await repo.add([file]);
          ids.push({ id: await repo.commit({ message: `v${i}` }), sha: sha256(file) });
        }
      } finally {
        await loop.stop();
      }
      expect((await repo.fsck()).problems).toEqual([]);
      await repo.close();
      await checkoutEveryCommit(d, ids);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
