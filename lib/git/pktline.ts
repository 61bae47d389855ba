/**
 * git's pkt-line framing (gitprotocol-common "pkt-line Format"): a packet is
 * four lower-case hex digits giving its total length (the four digits
 * included) followed by that many bytes less four; `0000` is a flush packet.
 * At most 65516 data bytes fit in one packet. Text packets end in LF, which
 * readers strip.
 *
 * The reader pulls from a byte stream without ever holding more than one
 * chunk of the stream plus one packet, or reads a file descriptor (git's pipe
 * on fd 0) into one reusable buffer: content with large synchronous reads
 * (git is sending it), request lines with reads on the libuv pool (git may
 * be busy elsewhere, and background work keeps the event loop). The writer
 * batches packets into large writes and honours back-pressure, so a 10 GB
 * payload streams through a bounded buffer.
 *
 * @example
 * const r = new PktReader(0);                // or a Readable, e.g. process.stdin
 * const w = new PktWriter(process.stdout);
 * const lines = await r.readText();          // text packets up to the next flush
 * w.text('status=success'); w.flush(); await w.drain();
 */
import * as fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { GitProtocolError } from '../errors';

/** Largest data payload of one packet. */
export const MAX_PKT_DATA = 65516;

/** A flush packet. */
export const FLUSH = null;
/** The end of the input stream, between packets. */
export const EOF = undefined;

export type Packet = Buffer | typeof FLUSH | typeof EOF;

/** Bytes of the reusable buffer a file-descriptor reader reads into (at least one packet). */
const FD_BUFFER = 1 << 20;

export class PktReader {
  private it: AsyncIterator<Buffer> | null = null;
  /** Unread chunks; `head` bytes of the first are consumed. Chunks are never copied to join them. */
  private chunks: Buffer[] = [];
  private head = 0;
  private avail = 0;
  private ended = false;
  /** File-descriptor mode: the descriptor, its reusable buffer, and whether content is being read. */
  private fd: number | null = null;
  private fdBuf: Buffer | null = null;
  private inContent = false;

  /**
   * `source`: a stream, or a file descriptor (a pipe) read directly. On a
   * descriptor, packet data handed out by `readData` is a view into the
   * reusable buffer, valid until the sink returns (or its promise settles).
   */
  constructor(source: Readable | number) {
    if (typeof source === 'number') {
      this.fd = source;
      this.fdBuf = Buffer.allocUnsafe(FD_BUFFER);
    } else this.it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Pulls chunks until `n` bytes are buffered; false when the stream ends first. */
  private async fill(n: number): Promise<boolean> {
    if (this.fd !== null) return this.fillFd(n);
    while (this.avail < n) {
      if (this.ended) return false;
      const r = await this.it!.next();
      if (r.done) {
        this.ended = true;
        return this.avail >= n;
      }
      const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      if (chunk.length) {
        this.chunks.push(chunk);
        this.avail += chunk.length;
      }
    }
    return true;
  }

  /**
   * fill() on a descriptor: the unread bytes move to the front of the buffer
   * (`n` is at most one packet, so they fit) and reads append after them.
   */
  private async fillFd(n: number): Promise<boolean> {
    const buf = this.fdBuf!;
    if (this.avail >= n) return true;
    if (this.avail && this.head) buf.copyWithin(0, this.head, this.head + this.avail);
    this.head = 0;
    while (this.avail < n) {
      if (this.ended) return false;
      const got = await this.readFd(buf, this.avail);
      if (got === 0) this.ended = true;
      this.avail += got;
    }
    this.chunks = [buf.subarray(0, this.avail)];
    return true;
  }

  /**
   * One read into `buf` at `off`: synchronous while content streams in (git
   * is writing it, so the read returns at once, without a thread hop per
   * pipe-full), else on the libuv pool. A non-blocking descriptor that has
   * nothing yet is retried a millisecond later.
   */
  private async readFd(buf: Buffer, off: number): Promise<number> {
    for (;;) {
      try {
        if (this.inContent) return fs.readSync(this.fd!, buf, off, buf.length - off, null);
        return await new Promise<number>((resolve, reject) =>
          fs.read(this.fd!, buf, off, buf.length - off, null, (e, k) => (e ? reject(e) : resolve(k))),
        );
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
  }

  /** The next `n` buffered bytes as views into the stream's chunks (stream chunks are never reused). */
  private slices(n: number): Buffer[] {
    const out: Buffer[] = [];
    while (n > 0) {
      const c = this.chunks[0];
      const k = Math.min(n, c.length - this.head);
      out.push(c.subarray(this.head, this.head + k));
      this.head += k;
      this.avail -= k;
      n -= k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    return out;
  }

  /** The next `n` buffered bytes as one buffer (a copy when they span chunks, or sit in the reusable buffer). */
  private take(n: number): Buffer {
    const s = this.slices(n);
    return s.length === 1 && this.fd === null ? s[0] : Buffer.concat(s, n);
  }

  /** Reads a packet header: its data length, FLUSH, or EOF. */
  private async header(): Promise<number | typeof FLUSH | typeof EOF> {
    if (!(await this.fill(4))) {
      if (this.avail === 0) return EOF;
      throw new GitProtocolError('input ended inside a packet length');
    }
    const hex = this.take(4).toString('latin1');
    if (!/^[0-9a-f]{4}$/.test(hex)) throw new GitProtocolError(`bad packet length ${JSON.stringify(hex)}`);
    const len = parseInt(hex, 16);
    if (len === 0) return FLUSH;
    if (len < 4 || len > MAX_PKT_DATA + 4) throw new GitProtocolError(`bad packet length ${len}`);
    if (!(await this.fill(len - 4))) throw new GitProtocolError('input ended inside a packet');
    return len - 4;
  }

  /** The next packet: its data, FLUSH (null), or EOF (undefined) when the stream ends between packets. */
  async read(): Promise<Packet> {
    const h = await this.header();
    return typeof h === 'number' ? this.take(h) : h;
  }

  /**
   * Text packets up to the next flush, LF stripped. Null on EOF before the
   * first packet (the peer hung up between requests); EOF later is an error.
   */
  async readText(): Promise<string[] | null> {
    const out: string[] = [];
    for (;;) {
      const p = await this.read();
      if (p === EOF) {
        if (out.length === 0) return null;
        throw new GitProtocolError('input ended inside a request');
      }
      if (p === FLUSH) return out;
      const s = p.toString('utf8');
      out.push(s.endsWith('\n') ? s.slice(0, -1) : s);
    }
  }

  /**
   * Data packets up to the next flush, handed to `sink` as views into the
   * stream's chunks (a packet that spans two chunks arrives as two pieces):
   * content is never copied on its way through. On a descriptor the views
   * are into the reusable buffer: a sink that keeps the bytes copies them.
   */
  async readData(sink: (b: Buffer) => void | Promise<void>): Promise<void> {
    this.inContent = true;
    try {
      for (;;) {
        const h = await this.header();
        if (h === EOF) throw new GitProtocolError('input ended inside content');
        if (h === FLUSH) return;
        for (const piece of this.slices(h)) await sink(piece);
      }
    } finally {
      this.inContent = false;
    }
  }
}

/** Packets are collected up to this many bytes and written in one call. */
const BATCH = 1 << 20;

export class PktWriter {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly stream: Writable) {}

  private push(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
  }

  /** One text packet (an LF is appended). */
  text(line: string): void {
    const body = Buffer.from(`${line}\n`, 'utf8');
    if (body.length > MAX_PKT_DATA) throw new GitProtocolError(`text packet too long (${body.length} bytes)`);
    this.push(Buffer.from((body.length + 4).toString(16).padStart(4, '0'), 'latin1'));
    this.push(body);
  }

  flush(): void {
    this.push(Buffer.from('0000', 'latin1'));
  }

  /** Data as packets of at most MAX_PKT_DATA bytes (nothing for an empty buffer); writes out full batches. */
  async data(b: Uint8Array): Promise<void> {
    for (let o = 0; o < b.byteLength; o += MAX_PKT_DATA) {
      const piece = b.subarray(o, Math.min(b.byteLength, o + MAX_PKT_DATA));
      this.push(Buffer.from((piece.byteLength + 4).toString(16).padStart(4, '0'), 'latin1'));
      this.push(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
      if (this.size >= BATCH) await this.drain();
    }
  }

  /** Writes everything queued and waits until the stream accepts more. */
  async drain(): Promise<void> {
    if (!this.parts.length) return;
    const all = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    await new Promise<void>((resolve, reject) => {
      const ok = this.stream.write(all, (e) => (e ? reject(e) : undefined));
      if (ok) resolve();
      else {
        const onDrain = () => {
          this.stream.off('error', onError);
          resolve();
        };
        const onError = (e: Error) => {
          this.stream.off('drain', onDrain);
          reject(e);
        };
        this.stream.once('drain', onDrain);
        this.stream.once('error', onError);
      }
    });
  }
}
