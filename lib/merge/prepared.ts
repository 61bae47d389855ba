/**
 * Merged files a plan wrote ahead, under `.coral/tmp`: path -> temp file
 * holding exactly the bytes of the planned entry (its sha256 was computed from
 * those bytes). Applying the merged tree then renames them into place instead
 * of decoding, hashing and writing every segment again. `take` hands a file
 * over (rename) or returns false so the caller re-assembles it from objects;
 * `discard` removes whatever was not taken.
 *
 * @example
 * const prepared = new PreparedFiles(ctx.layout.tmp);
 * const { tmp, fh } = await prepared.tempFile('.safetensors');
 * // … write and hash, then:
 * prepared.add('model.safetensors', tmp, sha256);
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fsyncDirSync } from '../util/fsutil';
import { placeWorktreeFile, type WorktreeLayout } from '../worktree/files';

export class PreparedFiles {
  private files = new Map<string, { tmp: string; sha256: string }>();

  /** `dir`: where the temp files go (the repository's `.coral/tmp`, on the worktree's filesystem). */
  constructor(private readonly dir: string) {}

  /** A new empty temp file (`merge-<pid>-<hex><ext>`), open for writing; the caller adds or removes it. */
  async tempFile(ext: string): Promise<{ tmp: string; fh: fsp.FileHandle }> {
    await fsp.mkdir(this.dir, { recursive: true });
    const tmp = path.join(this.dir, `merge-${process.pid}-${crypto.randomBytes(6).toString('hex')}${ext}`);
    return { tmp, fh: await fsp.open(tmp, 'wx', 0o644) };
  }

  add(p: string, tmp: string, sha256: string): void {
    const old = this.files.get(p);
    if (old) fs.rmSync(old.tmp, { force: true });
    this.files.set(p, { tmp, sha256 });
  }

  /** Moves the prepared file for `p` to `dest` if it holds `sha256` (same filesystem); true when done. */
  async take(p: string, sha256: string, dest: string): Promise<boolean> {
    const f = this.files.get(p);
    if (!f || f.sha256 !== sha256) return false;
    this.files.delete(p);
    try {
      await fsp.mkdir(path.dirname(dest), { recursive: true });
      await fsp.rename(f.tmp, dest);
    } catch {
      await fsp.rm(f.tmp, { force: true });
      return false; // e.g. another filesystem: re-assemble instead
    }
    fsyncDirSync(path.dirname(dest));
    return true;
  }

  /** Like `take`, into worktree path `p` through the safe worktree primitives. */
  async takeIntoWorktree(layout: WorktreeLayout, p: string, sha256: string): Promise<boolean> {
    const f = this.files.get(p);
    if (!f || f.sha256 !== sha256) return false;
    this.files.delete(p);
    let placed = false;
    try {
      placed = await placeWorktreeFile(layout, p, f.tmp);
    } finally {
      if (!placed) await fsp.rm(f.tmp, { force: true });
    }
    return placed;
  }

  async discard(): Promise<void> {
    const all = [...this.files.values()];
    this.files.clear();
    await Promise.all(all.map((f) => fsp.rm(f.tmp, { force: true })));
  }
}
