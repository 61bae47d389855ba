/** Worktree helpers: whole-file digests, streamed so memory stays flat. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

export async function sha256File(p: string): Promise<string> {
  const h = crypto.createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    fs.createReadStream(p, { highWaterMark: 4 << 20 })
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve());
  });
  return h.digest('hex');
}
