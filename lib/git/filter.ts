/**
 * The long-running filter process git starts once per command
 * (`filter.coral.process`, gitattributes(5) "Long Running Filter Process"):
 * version 2 of the pkt-line protocol with the `clean`, `smudge` and `delay`
 * capabilities.
 *
 * Rules this server keeps:
 * - every request is read through its final flush before any reply;
 * - stdout carries protocol only (diagnostics go to stderr, and to the file
 *   named by CORAL_GIT_LOG when set);
 * - a file that fails gets `status=error` and the process serves the next
 *   request; only a broken protocol ends it. EOF between requests is a clean
 *   exit;
 * - clean spools the content git sends (never the worktree file) to a temp
 *   file, so memory stays bounded by the largest tensor, and hashes it
 *   (sha256) on the way; the spool bypasses the page cache (lib/git/spool.ts);
 * - smudge streams the rebuilt file and checks its sha256 before the final
 *   status: a mismatch turns the status into an error, so git writes nothing;
 * - with `can-delay=1` a smudge is answered `status=delayed` and decoded in
 *   the background (several files at once) into a temp file; git collects the
 *   finished ones through `list_available_blobs`.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { GitProtocolError } from '../errors';
import { FLUSH, PktReader, PktWriter } from './pktline';
import type { HashedFileWriter } from '../worktree/materialize';
import { createSpool } from './spool';

/** What the server does with a file; implemented over the payload store by lib/git/process.ts. */
export interface FilterOps {
  /**
   * Clean: the content git sent is at `spool` (the server removes it afterwards), `sha256` its hash
   * (hex, taken as it arrived). Returns the blob git stores.
   */
  clean(pathname: string, spool: string, sha256: string): Promise<Uint8Array>;
  /** Smudge, streaming: yields the file's bytes; throws (after or before yielding) when it fails. */
  smudge(pathname: string, blob: Buffer): AsyncIterable<Uint8Array>;
  /** Smudge into a new file `dest` (for delayed requests). */
  smudgeToFile(pathname: string, blob: Buffer, dest: string): Promise<void>;
  /**
   * Called when a clean request arrives, before its content: work that needs only the path (the
   * previous pointer) can run while git sends the content.
   */
  willClean?(pathname: string): void;
  /** A fresh scratch path (same filesystem as the store) for spooled input or a delayed result. */
  scratch(what: string, pathname: string): string;
  /** Diagnostics (stderr and the trace log). */
  log(msg: string): void;
}

export interface FilterOptions {
  /** Delayed smudges decoded at once (default: min(4, max(2, cpus))). */
  parallel?: number;
  /** Content of a smudge request larger than this is spooled, not buffered (default 64 MiB). */
  maxSmudgeInput?: number;
}

interface Delayed {
  done: boolean;
  /** The decoded file, when it succeeded. */
  file?: string;
  error?: unknown;
  listed: boolean;
}

const CAPS = ['clean', 'smudge', 'delay'];
/** Clean input is written to its spool file in batches of this many bytes. */
const SPOOL_BATCH = 4 << 20;

function kv(lines: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of lines) {
    const i = l.indexOf('=');
    if (i > 0) m.set(l.slice(0, i), l.slice(i + 1));
  }
  return m;
}

/**
 * Serves git on `input` (a stream, or a file descriptor read directly: fd 0)
 * and `output` until EOF. Resolves when git hangs up; rejects only on a
 * broken protocol.
 */
export async function serveFilter(
  input: Readable | number,
  output: Writable,
  ops: FilterOps,
  opts: FilterOptions = {},
): Promise<void> {
  const r = new PktReader(input);
  const w = new PktWriter(output);
  const parallel = opts.parallel ?? Math.min(4, Math.max(2, os.cpus().length));
  const maxSmudgeInput = opts.maxSmudgeInput ?? 64 << 20;

  // ---- handshake
  const hello = await r.readText();
  if (hello === null) return;
  if (hello[0] !== 'git-filter-client' || !hello.includes('version=2'))
    throw new GitProtocolError(`unexpected filter handshake ${JSON.stringify(hello)}`);
  w.text('git-filter-server');
  w.text('version=2');
  w.flush();
  await w.drain();
  const offered = await r.readText();
  if (offered === null) return;
  const caps = CAPS.filter((c) => offered.includes(`capability=${c}`));
  for (const c of caps) w.text(`capability=${c}`);
  w.flush();
  await w.drain();
  const canDelay = caps.includes('delay');

  // ---- delayed smudges
  const delayed = new Map<string, Delayed>();
  const queue: Array<() => Promise<void>> = [];
  let running = 0;
  let wake: (() => void) | null = null;
  const notify = () => {
    const f = wake;
    wake = null;
    f?.();
  };
  const pump = () => {
    while (running < parallel && queue.length) {
      const job = queue.shift()!;
      running++;
      void job().finally(() => {
        running--;
        notify();
        pump();
      });
    }
  };

  const sendStatus = async (status: string) => {
    w.text(`status=${status}`);
    w.flush();
    await w.drain();
  };

  /** Streams content from an iterable; the final status says whether it all held. */
  const sendContent = async (pathname: string, chunks: AsyncIterable<Uint8Array>) => {
    const it = chunks[Symbol.asyncIterator]();
    // Get the first chunk before committing to success, so early failures are a plain error.
    let first: IteratorResult<Uint8Array>;
    try {
      first = await it.next();
    } catch (e) {
      ops.log(`coral: ${pathname}: ${(e as Error).message}`);
      return sendStatus('error');
    }
    await sendStatus('success');
    let failed = false;
    try {
      let cur = first;
      while (!cur.done) {
        await w.data(cur.value);
        cur = await it.next();
      }
    } catch (e) {
      failed = true;
      ops.log(`coral: ${pathname}: ${(e as Error).message}`);
    }
    w.flush();
    if (failed) w.text('status=error');
    w.flush();
    await w.drain();
  };

  // The clean's spool batches, reused from one file to the next.
  const batches = [Buffer.allocUnsafe(SPOOL_BATCH), Buffer.allocUnsafe(SPOOL_BATCH)];

  const fileChunks = async function* (file: string): AsyncGenerator<Uint8Array> {
    const fh = await fsp.open(file, 'r');
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) return;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  };

  try {
    for (;;) {
      const head = await r.readText();
      if (head === null) return; // git hung up between requests: done
      const req = kv(head);
      const command = req.get('command');
      const pathname = req.get('pathname') ?? '';

      if (command === 'list_available_blobs') {
        for (;;) {
          const ready = [...delayed].filter(([, d]) => d.done && !d.listed);
          const pending = [...delayed.values()].some((d) => !d.done);
          if (ready.length || !pending) {
            for (const [p, d] of ready) {
              d.listed = true;
              w.text(`pathname=${p}`);
            }
            w.flush();
            await sendStatus('success');
            break;
          }
          await new Promise<void>((res) => (wake = res));
        }
        continue;
      }

      if (command !== 'clean' && command !== 'smudge') {
        // Read (and drop) whatever content follows, then refuse this one request.
        await r.readData(() => undefined);
        ops.log(`coral: unknown filter command ${JSON.stringify(command)}`);
        await sendStatus('error');
        continue;
      }

      if (command === 'clean') {
        ops.willClean?.(pathname);
        const spool = ops.scratch('clean', pathname);
        // A spool that cannot be written (disk full) fails this file, not the process: the rest of
        // the content is still read, so the next request starts on a packet boundary.
        let spoolError: unknown = null;
        let sw: HashedFileWriter | null = null;
        try {
          sw = createSpool(spool);
        } catch (e) {
          spoolError = e;
        }
        // Packets are copied into one of two batch buffers (the reader's own buffer is reused) and
        // appended in large batches: one append (a copy and the SHA-256, on the pool) is in flight
        // while the other buffer fills (lib/git/spool.ts).
        let wrote: Promise<unknown> = Promise.resolve();
        let cur = 0;
        let filled = 0;
        const push = async () => {
          const full = batches[cur].subarray(0, filled);
          // The other buffer is free once its append (the one in flight) is done.
          await wrote;
          cur ^= 1;
          filled = 0;
          if (sw && !spoolError)
            wrote = sw.append(full).catch((e: unknown) => {
              spoolError = e;
            });
        };
        let received = false;
        try {
          await r.readData(async (b) => {
            for (let o = 0; o < b.length;) {
              const k = b.copy(batches[cur], filled, o);
              filled += k;
              o += k;
              if (filled === SPOOL_BATCH) await push();
            }
          });
          if (filled) await push();
          received = true;
        } finally {
          await wrote.catch(() => undefined);
          // A broken protocol (thrown above) ends the process: the spool is closed, then removed.
          if (!received) {
            sw?.abort();
            await fsp.rm(spool, { force: true });
          }
        }
        let sha256 = '';
        if (sw && !spoolError)
          sha256 = await sw.finish().catch((e: unknown) => {
            spoolError = e;
            return '';
          });
        if (spoolError) sw?.abort();
        try {
          if (spoolError) throw spoolError instanceof Error ? spoolError : new Error('spool write failed');
          const blob = await ops.clean(pathname, spool, sha256);
          await sendStatus('success');
          await w.data(blob);
          w.flush();
          w.flush();
          await w.drain();
        } catch (e) {
          ops.log(`coral: ${pathname}: clean failed: ${(e as Error).message}`);
          await sendStatus('error');
        } finally {
          await fsp.rm(spool, { force: true });
        }
        continue;
      }

      // smudge: the content is a pointer (small); an oversized blob is kept in a spool file.
      const parts: Buffer[] = [];
      let size = 0;
      let spool: string | null = null;
      let spoolFh: fsp.FileHandle | null = null;
      try {
        await r.readData(async (b) => {
          size += b.length;
          if (spoolFh) {
            await spoolFh.write(b);
            return;
          }
          // A copy: the reader may reuse its buffer once this returns.
          parts.push(Buffer.from(b));
          if (size > maxSmudgeInput) {
            spool = ops.scratch('smudge-in', pathname);
            spoolFh = await fsp.open(spool, 'wx', 0o600);
            for (const p of parts.splice(0)) await spoolFh.write(p);
          }
        });
      } finally {
        await (spoolFh as fsp.FileHandle | null)?.close();
      }
      const d = delayed.get(pathname);
      if (d && d.done && size === 0) {
        // git collects a delayed blob.
        delayed.delete(pathname);
        if (d.error !== undefined) {
          ops.log(`coral: ${pathname}: ${(d.error as Error).message}`);
          await sendStatus('error');
        } else {
          await sendContent(pathname, fileChunks(d.file!));
          await fsp.rm(d.file!, { force: true });
        }
        continue;
      }
      if (spool) {
        // Not a pointer (pointers are small): a file committed before it was tracked. Pass it through.
        await sendContent(pathname, fileChunks(spool));
        await fsp.rm(spool, { force: true });
        continue;
      }
      const blob = Buffer.concat(parts, size);
      if (canDelay && req.get('can-delay') === '1') {
        const job: Delayed = { done: false, listed: false };
        delayed.set(pathname, job);
        queue.push(async () => {
          const dest = ops.scratch('smudge', pathname);
          try {
            await ops.smudgeToFile(pathname, blob, dest);
            job.file = dest;
          } catch (e) {
            job.error = e;
          }
          job.done = true;
        });
        pump();
        await sendStatus('delayed');
        continue;
      }
      await sendContent(pathname, ops.smudge(pathname, blob));
    }
  } finally {
    // Leave no decoded temp file behind (git may hang up without collecting).
    while (running || queue.length) await new Promise<void>((res) => (wake = res));
    for (const d of delayed.values()) if (d.file) fs.rmSync(d.file, { force: true });
  }
}

export { FLUSH };
