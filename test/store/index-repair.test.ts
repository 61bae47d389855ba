// A damaged .idx sidecar is only a cache: an object of an intact pack is never
// "not found" because of it, and the sidecar is repaired (issue #11).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LocalPackStore } from '../../lib/store/local';
import { INDEX_MAGIC, indexText, parseIndex } from '../../lib/store/pack-index';
import { seeded, tmpDir } from './helpers';

describe('pack index sidecar damage', () => {
  it('falls back to the pack on a miss and repairs a decodable but wrong sidecar', async () => {
    const dir = tmpDir('idxrep');
    try {
      const s = await LocalPackStore.open(dir, { fsync: false });
      const tx = s.beginWrite();
      const ids = ['aaaa0001', 'bbbb0002', 'cccc0003'];
      for (const [i, id] of ids.entries())
        await tx.put(id, seeded(3000 + i, i + 1), { codec: 'raw', dtype: 'U8', shape: [3000 + i], rawSize: 3000 + i });
      const info = (await tx.commit())!;
      await s.close();
      const idxFile = path.join(dir, 'objects', 'packs', info.name.replace(/\.h5$/, '.idx'));
      // One flipped byte in the id of a small object (its only mention), in a sidecar that still decodes and parses.
      const text = indexText(fs.readFileSync(idxFile))!;
      const at = text.indexOf('bbbb0002');
      const flipped = text.slice(0, at) + 'c' + text.slice(at + 1);
      const pack = (t: string) => Buffer.concat([INDEX_MAGIC, zlib.brotliCompressSync(Buffer.from(t))]);
      // With its `sum`, such a sidecar is rejected outright...
      expect(parseIndex(pack(flipped), info.name, null)).toBeNull();
      // ...but an index written before the sum existed has none: the miss path must catch it.
      const unsummed = flipped.replace(/"sum":"[0-9a-f]{32}",/, '');
      expect(unsummed).not.toBe(flipped);
      fs.writeFileSync(idxFile, pack(unsummed));
      expect(parseIndex(fs.readFileSync(idxFile), info.name, null)!.map((e) => e.id)).toContain('cbbb0002');

      const s2 = await LocalPackStore.open(dir, { fsync: false });
      expect(Buffer.from((await s2.get('bbbb0002')).bytes).equals(seeded(3001, 2))).toBe(true);
      expect((await s2.stat('bbbb0002')).rawSize).toBe(3001);
      await expect(s2.get('cbbb0002')).rejects.toMatchObject({ code: 'CORAL_OBJECT_NOT_FOUND' });
      // Repaired on disk: a fresh reader trusts it again, and verify() is clean.
      expect(
        parseIndex(fs.readFileSync(idxFile), info.name, null)!
          .map((e) => e.id)
          .sort(),
      ).toEqual(ids);
      expect(await s2.verify()).toEqual([]);
      await s2.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
