/**
 * Protobuf wire-format primitives for walking a message in place: tags,
 * varints and field extents, read through a {@link WindowReader}. Nothing is
 * decoded into objects or re-encoded: callers learn where each field's bytes
 * are and descend into the sub-messages they care about, which is how the
 * ONNX scanner keeps files byte-exact (protobuf serialization is not
 * canonical, so a decode + encode would not give the same bytes back).
 * @see https://protobuf.dev/programming-guides/encoding/
 *
 * @example
 * for await (const batch of fieldBatches(w, 0, w.size, 'ModelProto'))
 *   for (const f of batch) if (f.field === 7) await walkGraph(f.start, f.end);
 */
import { FormatError, LimitExceededError } from '../errors';
import type { WindowReader } from './window';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** A varint longer than this is malformed (a 64-bit value needs at most 10 bytes). */
export const MAX_VARINT_BYTES = 10;

export interface Field {
  field: number;
  wire: number;
  /** Offset of the tag. */
  tagAt: number;
  /** First byte of the value (after the tag, and after the length for WIRE_LEN). */
  start: number;
  /** One past the last byte of the value. */
  end: number;
  /** The value of a varint field (Infinity when >= 2^53 or negative as int64). */
  value: number;
}

/** Decodes a varint at `pos` from the window (the caller made [pos, pos+avail) readable). */
function decodeVarint(w: WindowReader, pos: number, avail: number, what: string): [number, number] {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < avail; i++) {
    const b = w.u8(pos + i);
    value += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) return [value > Number.MAX_SAFE_INTEGER ? Number.POSITIVE_INFINITY : value, i + 1];
  }
  if (avail === MAX_VARINT_BYTES)
    throw new FormatError(`${w.label}: ${what}: varint at byte ${pos} does not end within ${MAX_VARINT_BYTES} bytes`, {
      offset: pos,
    });
  throw new FormatError(`${w.label}: ${what}: varint at byte ${pos} runs past the end of its message`, { offset: pos });
}

/** Decodes a varint at `pos` (not past `limit`); returns [value, byteLength]. Values >= 2^53 come back as Infinity. */
export async function readVarint(w: WindowReader, pos: number, limit: number, what: string): Promise<[number, number]> {
  const want = Math.min(MAX_VARINT_BYTES, limit - pos);
  const avail = w.has(pos, want) ? want : await w.needUpTo(pos, want, what);
  return decodeVarint(w, pos, avail, what);
}

/** Fields handed out per batch: one await per batch instead of one per field. */
const BATCH = 1024;

/**
 * Yields the fields of the message occupying [start, end), in file order, in
 * batches (the window is refilled between fields only when a tag or length
 * leaves it). Groups (wire types 3/4) are refused: ONNX never uses them.
 */
export async function* fieldBatches(
  w: WindowReader,
  start: number,
  end: number,
  what: string,
): AsyncGenerator<Field[]> {
  let pos = start;
  let batch: Field[] = [];
  const varint = async (at: number, label: string): Promise<[number, number]> => {
    const want = Math.min(MAX_VARINT_BYTES, end - at);
    const avail = w.has(at, want) ? want : await w.needUpTo(at, want, label);
    return decodeVarint(w, at, avail, label);
  };
  while (pos < end) {
    const tagAt = pos;
    const [tag, tn] = await varint(pos, `${what} field tag`);
    pos += tn;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0 || !Number.isFinite(tag) || field > 0x1fffffff)
      throw new FormatError(`${w.label}: ${what}: invalid field number at byte ${tagAt}`, { offset: tagAt });
    let value = 0;
    let vStart = pos;
    let vEnd: number;
    switch (wire) {
      case WIRE_VARINT: {
        const [v, n] = await varint(pos, `${what} field ${field}`);
        value = v;
        vEnd = pos + n;
        break;
      }
      case WIRE_I64:
        vEnd = pos + 8;
        break;
      case WIRE_I32:
        vEnd = pos + 4;
        break;
      case WIRE_LEN: {
        const [len, n] = await varint(pos, `${what} field ${field} length`);
        vStart = pos + n;
        vEnd = vStart + len;
        break;
      }
      default:
        throw new FormatError(`${w.label}: ${what}: unsupported wire type ${wire} at byte ${tagAt}`, {
          offset: tagAt,
        });
    }
    if (!(vEnd <= end)) {
      throw new FormatError(
        `${w.label}: ${what}: field ${field} at byte ${tagAt} runs past the end of its message (ends at ${vEnd}, message ends at ${end})`,
        { offset: tagAt, end },
      );
    }
    batch.push({ field, wire, tagAt, start: vStart, end: vEnd, value });
    if (batch.length === BATCH) {
      yield batch;
      batch = [];
    }
    pos = vEnd;
  }
  if (batch.length) yield batch;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Reads a length-delimited field as a (lossily decoded) UTF-8 string, capped at `max` bytes. */
export async function readString(w: WindowReader, f: Field, max = 4096): Promise<string> {
  const n = Math.min(f.end - f.start, max);
  if (!w.has(f.start, n)) await w.need(f.start, n, 'string field');
  return utf8.decode(w.bytes(f.start, n));
}

/** Decodes the packed varints in [start, end) (e.g. `repeated int64 dims`); LimitExceededError past `max` values. */
export async function readPackedVarints(
  w: WindowReader,
  start: number,
  end: number,
  max: number,
  what: string,
): Promise<number[]> {
  const out: number[] = [];
  let pos = start;
  while (pos < end) {
    if (out.length >= max)
      throw new LimitExceededError(`${w.label}: ${what}: more than ${max} values`, { offset: start, limit: max });
    const [v, n] = await readVarint(w, pos, end, what);
    out.push(v);
    pos += n;
  }
  return out;
}
