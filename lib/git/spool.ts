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
 * The writer is the HashedFileWriter checkout uses (lib/worktree/materialize.ts), made readable by
 * its owner only.
 */
import { HashedFileWriter } from '../worktree/materialize';

/** Creates the spool `file` exclusively (mode 0600). */
export function createSpool(file: string): HashedFileWriter {
  return HashedFileWriter.create(file, 0o600);
}
