// The library side of the plain-file rule: AddReport.plainFile and `strict`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tempDirs } from '../../helpers/cli';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../../lib/errors';
import { Repository } from '../../../lib/repository';

const dirs = tempDirs();

function safetensorsBytes(): Buffer {
  const header = Buffer.from(
    JSON.stringify({ w: { dtype: 'F32', shape: [64], data_offsets: [0, 256] } }).padEnd(64, ' '),
  );
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, Buffer.alloc(256, 1)]);
}

describe('Repository.add and unparsable checkpoints', () => {
  it('reports plainFile for a truncated safetensors, throws its FormatError with strict', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-plain-'));
    dirs.push(d);
    const repo = await Repository.init(d);
    try {
      const f = path.join(d, 'cut.safetensors');
      fs.writeFileSync(f, safetensorsBytes().subarray(0, 200));
      await expect(repo.add([f], { strict: true })).rejects.toMatchObject({ code: FormatError.code });
      const r = await repo.add([f]);
      expect(r.files).toHaveLength(1);
      expect(r.files[0].plainFile).toMatch(/\S/);
      fs.writeFileSync(f, safetensorsBytes());
      const ok = await repo.add([f], { strict: true });
      expect(ok.files[0].plainFile).toBeUndefined();
      expect(ok.files[0].segments).toBe(1);
    } finally {
      await repo.close();
    }
  });
});
