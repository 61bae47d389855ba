// A GGUF writer for fixtures: every metadata value type (nested arrays, strings), tensors of
// float and quantized ggml types with the right block sizes, a chosen alignment, padding filled
// with a chosen byte (so a round trip must keep the actual padding bytes), and trailing bytes.
import { GGML_TYPES } from '../../lib/formats/gguf';
import { rng } from './helpers';

export const T = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

export type Value = number | bigint | boolean | string | { array: number; items: Value[] };

export interface GgufTensorSpec {
  name: string;
  /** ne[], innermost first. */
  dims: number[];
  /** ggml type number. */
  type: number;
  data?: Uint8Array;
}

export interface GgufSpec {
  version?: number;
  kv: [string, number, Value][];
  tensors: GgufTensorSpec[];
  /** general.alignment (also written as a key when set). */
  alignment?: number;
  /** Byte used to fill alignment padding (llama.cpp writes 0). */
  padByte?: number;
  trailing?: Uint8Array;
  bigEndian?: boolean;
}

class W {
  parts: Buffer[] = [];
  size = 0;
  constructor(readonly be: boolean) {}
  push(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    if (this.be) b.writeUInt32BE(v);
    else b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    if (this.be) b.writeBigUInt64BE(BigInt(v));
    else b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  value(type: number, v: Value): void {
    const b = Buffer.alloc(8);
    switch (type) {
      case T.UINT8:
        return this.push(Buffer.from([Number(v)]));
      case T.INT8:
        b.writeInt8(Number(v));
        return this.push(b.subarray(0, 1));
      case T.UINT16:
        b.writeUInt16LE(Number(v));
        return this.push(b.subarray(0, 2));
      case T.INT16:
        b.writeInt16LE(Number(v));
        return this.push(b.subarray(0, 2));
      case T.UINT32:
        return this.u32(Number(v));
      case T.INT32:
        b.writeInt32LE(Number(v));
        return this.push(b.subarray(0, 4));
      case T.FLOAT32:
        b.writeFloatLE(Number(v));
        return this.push(b.subarray(0, 4));
      case T.BOOL:
        return this.push(Buffer.from([v ? 1 : 0]));
      case T.STRING:
        return this.str(v as string);
      case T.UINT64:
        return this.u64(BigInt(v as number));
      case T.INT64:
        b.writeBigInt64LE(BigInt(v as number));
        return this.push(b);
      case T.FLOAT64:
        b.writeDoubleLE(Number(v));
        return this.push(b);
      case T.ARRAY: {
        const a = v as { array: number; items: Value[] };
        this.u32(a.array);
        this.u64(a.items.length);
        for (const x of a.items) this.value(a.array, x);
        return;
      }
    }
    throw new Error(`bad type ${type}`);
  }
}

/** Bytes of a tensor of `type` with `dims` (ne order). */
export function tensorBytes(type: number, dims: number[]): number {
  const g = GGML_TYPES.get(type)!;
  return (dims.reduce((a, b) => a * b, 1) / g.block) * g.bytes;
}

/** Writes a GGUF file; tensors without data get seeded random bytes. */
export function writeGguf(spec: GgufSpec): Buffer {
  const w = new W(!!spec.bigEndian);
  const align = spec.alignment ?? 32;
  const kv = spec.kv.slice();
  if (spec.alignment !== undefined) kv.push(['general.alignment', T.UINT32, spec.alignment]);
  w.push(Buffer.from('GGUF', 'latin1'));
  w.u32(spec.version ?? 3);
  w.u64(spec.tensors.length);
  w.u64(kv.length);
  for (const [k, type, v] of kv) {
    w.str(k);
    w.u32(type);
    w.value(type, v);
  }
  const datas = spec.tensors.map((t, i) => t.data ?? rng(1000 + i)(tensorBytes(t.type, t.dims)));
  let rel = 0;
  const offsets: number[] = [];
  for (const d of datas) {
    offsets.push(rel);
    rel = Math.ceil((rel + d.length) / align) * align;
  }
  spec.tensors.forEach((t, i) => {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offsets[i]);
  });
  const pad = (to: number) => {
    const n = Math.ceil(to / align) * align - to;
    if (n) w.push(Buffer.alloc(n, spec.padByte ?? 0));
  };
  pad(w.size);
  datas.forEach((d, i) => {
    w.push(Buffer.from(d));
    if (i < datas.length - 1) pad(offsets[i] + d.length);
  });
  if (spec.trailing) w.push(Buffer.from(spec.trailing));
  return Buffer.concat(w.parts);
}

/** A small llama-like model: every value type, float and quantized tensors. */
export function llamaLike(
  opts: { seed?: number; quant?: number; alignment?: number; padByte?: number } = {},
): GgufSpec {
  const q = opts.quant ?? 12; // Q4_K
  const seed = opts.seed ?? 1;
  const r = rng(seed);
  const data = (type: number, dims: number[]) => r(tensorBytes(type, dims));
  return {
    alignment: opts.alignment,
    padByte: opts.padByte,
    kv: [
      ['general.architecture', T.STRING, 'llama'],
      ['general.name', T.STRING, 'tiny coral test'],
      ['general.file_type', T.UINT32, 15],
      ['llama.context_length', T.UINT32, 2048],
      ['llama.rope.freq_base', T.FLOAT32, 10000],
      ['test.u8', T.UINT8, 255],
      ['test.i8', T.INT8, -128],
      ['test.u16', T.UINT16, 65535],
      ['test.i16', T.INT16, -32768],
      ['test.i32', T.INT32, -5],
      ['test.bool', T.BOOL, true],
      ['test.u64', T.UINT64, 2n ** 63n],
      ['test.i64', T.INT64, -(2n ** 40n)],
      ['test.f64', T.FLOAT64, Math.PI],
      ['tokenizer.ggml.tokens', T.ARRAY, { array: T.STRING, items: ['<s>', '</s>', 'hello', 'wörld', ''] }],
      ['tokenizer.ggml.scores', T.ARRAY, { array: T.FLOAT32, items: [0, -1.5, 2.25, 3, 4] }],
      [
        'test.nested',
        T.ARRAY,
        {
          array: T.ARRAY,
          items: [
            { array: T.INT32, items: [1, 2, 3] },
            { array: T.STRING, items: ['a', 'bc'] },
          ],
        },
      ],
    ],
    tensors: [
      { name: 'token_embd.weight', dims: [256, 8], type: q, data: data(q, [256, 8]) },
      { name: 'blk.0.attn_norm.weight', dims: [256], type: 0, data: data(0, [256]) },
      { name: 'blk.0.attn_q.weight', dims: [256, 4], type: 8, data: data(8, [256, 4]) }, // Q8_0
      { name: 'blk.0.attn_k.weight', dims: [64, 3], type: 2, data: data(2, [64, 3]) }, // Q4_0
      { name: 'blk.0.ffn_up.weight', dims: [256, 2], type: 14, data: data(14, [256, 2]) }, // Q6_K
      { name: 'blk.0.ffn_norm.weight', dims: [17], type: 1, data: data(1, [17]) }, // F16, odd size -> padding
      { name: 'output_norm.weight', dims: [5, 3], type: 30, data: data(30, [5, 3]) }, // BF16
      { name: 'output.weight', dims: [256, 8], type: q, data: data(q, [256, 8]) },
    ],
  };
}
