// lib/commands/compare.ts and the show data of lib/commands/show.ts: what `coral compare` and `coral show`
// print, as library calls through the public entry point.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tempDirs } from '../../helpers/cli';
import { describe, expect, it } from 'vitest';
import { Repository, compare, showCommit, showFile, writeSafetensors, tensor } from '../../../lib/index';

const dirs = tempDirs();

function weights(scale: number): Float32Array {
  return Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * scale);
}

describe('compare, showCommit, showFile', () => {
  it('returns both sides, the tag metrics, the diff and its summary', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-compare-'));
    dirs.push(d);
    const repo = await Repository.init(d);
    try {
      const f = path.join(d, 'm.safetensors');
      const save = async (scale: number) =>
        writeSafetensors(f, {
          w: tensor('F32', [8, 8], weights(scale)),
          b: tensor('F32', [8], new Float32Array(8).fill(0.5)),
        });
      await save(1);
      await repo.add([f]);
      await repo.commit({ message: 'one' });
      await repo.createTag('v1', 'HEAD', { message: 'first', metrics: { acc: 0.9 } });
      await save(1.01);
      await repo.add([f]);
      await repo.commit({ message: 'two' });

      const r = await compare(repo, { a: 'v1', b: 'HEAD' });
      expect(r.a).toMatchObject({ rev: 'v1', files: 1, tensors: 2, metrics: { acc: 0.9 } });
      expect(r.b).toMatchObject({ rev: 'HEAD', files: 1, tensors: 2, metrics: {} });
      expect(r.a.commit.message).toBe('one\n');
      expect(Object.keys(r.a)).toEqual(['rev', 'id', 'commit', 'files', 'bytes', 'tensors', 'metrics']);
      expect(r.summary).toMatchObject({ tensorsAdded: 0, tensorsRemoved: 0, tensorsModified: 1 });
      expect(r.changes.map((c) => c.path)).toEqual(['m.safetensors']);

      const c = await showCommit(repo, 'v1', { files: true });
      expect(c.tag).toMatchObject({ name: 'v1', message: 'first', metadata: { metrics: { acc: 0.9 } } });
      expect(c.changes[0].change).toBe('added');
      expect(c.files!['m.safetensors'].tensors.map((t) => t.name).sort()).toEqual(['b', 'w']);
      expect((await showCommit(repo, 'HEAD')).files).toBeUndefined();

      const s = await showFile(repo, 'HEAD', 'm.safetensors');
      expect(s.tensors.map((t) => [t.name, typeof t.codec, typeof t.storedSize])).toEqual(
        expect.arrayContaining([['w', 'string', 'number']]),
      );
      await expect(showFile(repo, 'HEAD', 'nope')).rejects.toMatchObject({ code: 'CORAL_INVALID_ARGUMENT' });
    } finally {
      await repo.close();
    }
  });
});
