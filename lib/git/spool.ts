/**
 * The clean filter's spool: the content git sends, written once to a temp file and read once by the
 * ingest (lib/ingest/ingest.ts with `direct`), both bypassing the page cache where the filesystem
 * allows it, and hashed (SHA-256) as it is written.
 *
 * Why not an ordinary write: a 256 MiB checkpoint written through the page cache takes 256 MiB of
 * fresh page-cache pages, which the clean frees again a moment later. On a VM a first touch of fresh
 * memory costs ~2-4 ms per MiB (the host backs each page then), so that write alone took ~0.5 s of
 * CPU of a ~2 s `git add`. The native FileWriter (kernels/direct_io.h AlignedFileWriter) copies each
 * batch into a few reused aligned blocks on the libuv pool, hashes it there, and writes the blocks
 * with O_DIRECT from its own thread; the main thread only reads git's pipe.
 *
 * Thread: the event loop; copies and hashing run on the pool, writes on the writer's thread.
 * `append`'s bytes must not change until its promise settles.
 */
import * as crypto from 'node:crypto';
import type { FileWriter } from '../../binding';
import { InternalError } from '../errors';
import { callAsync, callSync, native } from '../native';

/** FileWriter flag: hash the appended bytes with SHA-256 on the pool (binding.d.ts FileWriter). */
const FILE_WRITER_SHA256 = 1;

export class SpoolWriter {
  /** Hashes on the main thread where the host offers no SHA-256 to native code. */
  private readonly sha: crypto.Hash | null;

  private constructor(
    private readonly w: FileWriter,
    readonly file: string,
  ) {
    this.sha = w.hashing() ? null : crypto.createHash('sha256');
  }

  /** Creates `file` exclusively (mode 0600). */
  static create(file: string): SpoolWriter {
    return new SpoolWriter(
      callSync(() => new native.FileWriter(file, 0o600, FILE_WRITER_SHA256)),
      file,
    );
  }

  /** Appends a copy of `b` (which must not change until this settles). */
  async append(b: Uint8Array): Promise<void> {
    const copied = callAsync(() => this.w.appendAsync(b));
    this.sha?.update(b);
    await copied;
  }

  /** Writes the rest and closes the file: the SHA-256 (hex) of everything appended. */
  async finish(): Promise<string> {
    await callAsync(() => this.w.finish());
    const digest = this.sha ? this.sha.digest('hex') : this.w.sha256();
    if (digest === null) throw new InternalError(`no SHA-256 of ${this.file} after a hashing write`);
    return digest;
  }

  /** Closes without finishing (the caller removes the file); idempotent. */
  abort(): void {
    this.w.abort();
  }
}
