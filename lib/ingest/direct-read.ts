/**
 * Reads of a file that is read once, front to back, without filling the page cache: the
 * descriptor is opened with O_DIRECT and whole aligned blocks are read into one staging buffer,
 * from which the caller's ranges are copied. Where O_DIRECT is not available (tmpfs, some FUSE
 * filesystems, CORAL_NO_DIRECT_IO=1), or a direct read is refused, the same calls read through
 * an ordinary descriptor.
 *
 * Why: the git clean filter spools what git sends to a temp file written with O_DIRECT
 * (lib/git/spool.ts) and ingests it from there. Read back through the page cache, its 256 MiB
 * would take 256 MiB of fresh page-cache pages, and on a VM a first touch of fresh memory is
 * the most expensive thing a clean does (~2-4 ms per MiB here, more than the codecs); read
 * direct, they go from the device into one reused buffer.
 *
 * Thread: the event loop; reads run on the libuv pool. The staging buffer comes from the
 * native pool (allocLarge: page-aligned) and goes back on close().
 */
import * as fs from 'node:fs';
import { FormatError } from '../errors';
import { allocLarge, recycleLarge } from '../native';

/** O_DIRECT alignment of file offsets, lengths and buffer addresses (kernels/direct_io.h kDirectAlign). */
const ALIGN = 4096;
/** Bytes read per direct read (one staging buffer). */
const STAGE_BYTES = 8 << 20;

/** True unless CORAL_NO_DIRECT_IO is set to a non-empty value other than "0" (as the native writer). */
function directAllowed(): boolean {
  const v = process.env.CORAL_NO_DIRECT_IO;
  return !v || v === '0';
}

/**
 * One read of up to `len` bytes at `pos` into `buf` at `off`: the bytes read. The callback API on a
 * descriptor: a promise read would allocate a small typed array per call (lib/ingest/ingest.ts readExact).
 */
export function readOnce(fd: number, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
}

export class DirectFile {
  private stage: Uint8Array | null = null;
  /** File offset of the staging buffer's first byte, and how many bytes of the file it holds. */
  private stageAt = 0;
  private stageLen = 0;

  private constructor(
    private fd: number,
    private direct: boolean,
    private readonly file: string,
  ) {}

  /** Opens `file` for reading, with O_DIRECT when the filesystem allows it. */
  static open(file: string): DirectFile {
    const flag = (fs.constants as Record<string, number>).O_DIRECT;
    if (flag && directAllowed()) {
      try {
        return new DirectFile(fs.openSync(file, fs.constants.O_RDONLY | flag), true, file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      }
    }
    return new DirectFile(fs.openSync(file, 'r'), false, file);
  }

  /** True while reads bypass the page cache. */
  get isDirect(): boolean {
    return this.direct;
  }

  /** Switches to an ordinary descriptor (a direct read was refused). */
  private fallBack(): void {
    const fd = fs.openSync(this.file, 'r');
    fs.closeSync(this.fd);
    this.fd = fd;
    this.direct = false;
    if (this.stage) recycleLarge(this.stage);
    this.stage = null;
    this.stageLen = 0;
  }

  /** Fills `dst` with the file's bytes at `pos`; a FormatError when the file ends first. */
  async read(dst: Uint8Array, pos: number): Promise<void> {
    let done = 0;
    while (done < dst.byteLength) {
      const at = pos + done;
      if (!this.direct) {
        const n = await readOnce(this.fd, dst, done, dst.byteLength - done, at);
        if (n === 0) throw this.ended();
        done += n;
        continue;
      }
      if (at < this.stageAt || at >= this.stageAt + this.stageLen) {
        this.stage ??= allocLarge(STAGE_BYTES);
        const from = at - (at % ALIGN);
        let n: number;
        try {
          n = await readOnce(this.fd, this.stage, 0, STAGE_BYTES, from);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
          this.fallBack();
          continue;
        }
        this.stageAt = from;
        this.stageLen = n;
        if (at >= from + n) throw this.ended();
      }
      const off = at - this.stageAt;
      const k = Math.min(dst.byteLength - done, this.stageLen - off);
      dst.set(this.stage!.subarray(off, off + k), done);
      done += k;
    }
  }

  private ended(): FormatError {
    return new FormatError(`${this.file} changed while it was being read (unexpected end of file)`);
  }

  /** The file's size and modification time, from the open descriptor. */
  stat(): Promise<fs.Stats> {
    return new Promise((resolve, reject) => fs.fstat(this.fd, (e, st) => (e ? reject(e) : resolve(st))));
  }

  /** Closes the descriptor and gives the staging buffer back; idempotent. */
  close(): void {
    if (this.stage) recycleLarge(this.stage);
    this.stage = null;
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
