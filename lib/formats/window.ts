/**
 * A windowed reader over a {@link ByteSource}: structural parsers (the ONNX
 * protobuf walker, the GGUF header reader) read many small fields, so they
 * read the file through one window of up to `WINDOW_BYTES` and refill it only
 * when a field leaves it. Payload bytes are never loaded: parsers skip them by
 * moving the position.
 *
 * Every access is bounds-checked against the file size (FormatError naming
 * what was being read), so a hostile length can never make a parser read or
 * allocate more than the file holds.
 *
 * @example
 * const w = new WindowReader(src);
 * await w.need(0, 4, 'magic');
 * const magic = w.u32(0);
 */
import { FormatError } from '../errors';
import type { ByteSource } from './io';

/** Bytes read per refill (structures are small; payload is skipped). */
export const WINDOW_BYTES = 1 << 20;

export class WindowReader {
  private buf: Uint8Array = new Uint8Array(0);
  private base = 0;
  private dv: DataView = new DataView(new ArrayBuffer(0));

  constructor(readonly src: ByteSource) {}

  get size(): number {
    return this.src.size;
  }
  get label(): string {
    return this.src.label;
  }

  /** Is [pos, pos+n) in the window already (then no `need` is required)? */
  has(pos: number, n: number): boolean {
    return pos >= this.base && pos + n <= this.base + this.buf.byteLength;
  }

  /** Makes [pos, pos+n) readable; FormatError when it passes the end of the file. */
  async need(pos: number, n: number, what: string): Promise<void> {
    if (pos >= this.base && pos + n <= this.base + this.buf.byteLength) return;
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(n) || pos < 0 || n < 0 || pos + n > this.src.size) {
      throw new FormatError(
        `${this.src.label}: ${what} at bytes [${pos}, ${pos + n}) lies past the end of the ${this.src.size}-byte file (truncated?)`,
        { offset: pos, length: n, size: this.src.size },
      );
    }
    const len = Math.min(Math.max(WINDOW_BYTES, n), this.src.size - pos);
    this.buf = await this.src.read(pos, len, what);
    this.base = pos;
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  /** Like {@link need} but clamps at the end of the file (for varints, whose length is unknown). */
  async needUpTo(pos: number, n: number, what: string): Promise<number> {
    const avail = Math.max(0, Math.min(n, this.src.size - pos));
    await this.need(pos, avail, what);
    return avail;
  }

  u8(pos: number): number {
    return this.buf[pos - this.base];
  }
  u32(pos: number): number {
    return this.dv.getUint32(pos - this.base, true);
  }
  i32(pos: number): number {
    return this.dv.getInt32(pos - this.base, true);
  }
  /** A little-endian u64 as a number; values >= 2^53 become Infinity so range checks reject them. */
  u64(pos: number): number {
    const lo = this.dv.getUint32(pos - this.base, true);
    const hi = this.dv.getUint32(pos - this.base + 4, true);
    if (hi >= 0x200000) return Number.POSITIVE_INFINITY;
    return hi * 0x100000000 + lo;
  }
  /** The bytes [pos, pos+n) (call {@link need} first); a view into the window. */
  bytes(pos: number, n: number): Uint8Array {
    return this.buf.subarray(pos - this.base, pos - this.base + n);
  }
}
