// A full disk (ENOSPC) or exhausted quota (EDQUOT) while add writes a pack is
// CORAL_IO naming the file, in one line, not a raw libhdf5 error stack (issue #11).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Hdf5Error, IoError } from '../../lib/errors';
import { fullDiskError } from '../../lib/store/fs';
import { LocalPackStore } from '../../lib/store/local';
import { coral, f32, ok, tmpdir, weights, writeSafetensors } from '../helpers/cli';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

// Verbatim from `coral add` on a full 4 MiB tmpfs (before the fix).
const REAL =
  "pack /t/.coral/tmp/pack-8a98.h5.tmp: object 2192: cannot write data (file write failed: time = Wed Dec  2 16:04:18 2026\n, filename = '/t/.coral/tmp/pack-8a98.h5.tmp', file descriptor = 19, errno = 28, error message = 'No space left on device', buf = 0x7f4bbb16cd6b, total write size = 1065721, bytes this sub-write = 1065721, bytes actually written = 18446744073709551615, offset = 0; driver write request failed; file write failed; write through metadata accumulator failed)";

describe('full disk during add', () => {
  it("maps libhdf5's ENOSPC text to IoError naming the file", () => {
    const e = fullDiskError(new Hdf5Error(REAL), 'write pack', '/t/.coral/tmp/pack-8a98.h5.tmp') as IoError;
    expect(e).toBeInstanceOf(IoError);
    expect(e.code).toBe(IoError.code);
    expect(e.message).toBe('write pack /t/.coral/tmp/pack-8a98.h5.tmp failed: no space left on device (ENOSPC)');
    expect(e.data).toEqual({ path: '/t/.coral/tmp/pack-8a98.h5.tmp', op: 'write pack', errno: 'ENOSPC' });
    const other = new Hdf5Error('pack x: cannot create dataset (bad things)');
    expect(fullDiskError(other, 'write pack', 'x')).toBe(other);
  });

  for (const errno of ['ENOSPC', 'EDQUOT']) {
    it(`coral add reports ${errno} as CORAL_IO and leaves the repository as it was`, () => {
      const d = tmpdir('coral-full-');
      dirs.push(d);
      ok(d, ['init']);
      const file = path.join(d, 'm.safetensors');
      writeSafetensors(file, { w: { dtype: 'F32', shape: [8192], data: f32(weights(8192, 3)) } });
      const r = coral(d, ['add', 'm.safetensors'], { CORAL_FAULT: `pack:write:${errno}` });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(
        new RegExp(`^coral: write pack \\S+\\.h5\\.tmp failed: .* \\(${errno}\\) \\(CORAL_IO\\)\\n$`),
      );
      expect(r.stderr.length).toBeLessThan(250);
      expect(fs.readdirSync(path.join(d, '.coral', 'tmp')).filter((n) => n.endsWith('.h5.tmp'))).toEqual([]);
      expect(JSON.parse(ok(d, ['status', '--json'])).untracked).toEqual(['m.safetensors']);
      expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
    });
  }
});

describe('a failed write-back while a pack is imported (fetch, clone)', () => {
  it('fails the commit as CORAL_IO naming the file; nothing is published and the temp file is gone', async () => {
    const d = tmpdir('coral-import-sync-');
    dirs.push(d);
    const store = await LocalPackStore.open(path.join(d, '.coral'));
    const size = (64 << 20) + 4096; // past the first background write-back
    process.env.CORAL_FAULT = 'pack:import-sync:ENOSPC';
    try {
      const imp = store.importPack(size, []);
      await imp.write(Buffer.alloc(size, 7));
      const e = (await imp.commit().catch((x: unknown) => x)) as IoError;
      expect(e).toBeInstanceOf(IoError);
      expect(e.message).toMatch(/^write pack \S+\.h5\.tmp failed: no space left on device \(ENOSPC\)$/);
    } finally {
      delete process.env.CORAL_FAULT;
      await store.close();
    }
    expect(fs.readdirSync(path.join(d, '.coral', 'objects', 'packs'))).toEqual([]);
    expect(fs.readdirSync(path.join(d, '.coral', 'tmp'))).toEqual([]);
  });
});
