// A tiny protobuf writer that builds ONNX models field by field, for the cases
// torch.onnx.export does not produce: external data, packed float_data and
// double_data, varint int64_data, sparse initializers, If subgraphs, model-local
// functions and training info. The models run in onnxruntime-node.

export function varint(n: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}
const tag = (field: number, wire: number): Buffer => varint(field * 8 + wire);
export const vint = (field: number, n: number | bigint): Buffer => Buffer.concat([tag(field, 0), varint(n)]);
export const len = (field: number, body: Buffer | string): Buffer => {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([tag(field, 2), varint(b.length), b]);
};
const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);

export const F32 = 1;
export const I64 = 7;
export const BOOL = 9;
export const F64 = 11;

export function f32(values: number[]): Buffer {
  return Buffer.from(new Float32Array(values).buffer);
}
export function f64(values: number[]): Buffer {
  return Buffer.from(new Float64Array(values).buffer);
}
export function i64(values: number[]): Buffer {
  return Buffer.from(new BigInt64Array(values.map(BigInt)).buffer);
}

export interface TensorSpec {
  name?: string;
  type: number;
  dims: number[];
  raw?: Buffer;
  floatData?: Buffer; // packed
  floatUnpacked?: number[];
  doubleData?: Buffer; // packed
  int64Data?: number[]; // packed varints
  external?: { location: string; offset: number; length: number };
  /** Write dims unpacked (one varint field per dim), as some writers do. */
  unpackedDims?: boolean;
}

export function tensor(t: TensorSpec): Buffer {
  const parts: Buffer[] = [];
  if (t.unpackedDims) for (const d of t.dims) parts.push(vint(1, d));
  else if (t.dims.length) parts.push(len(1, cat(...t.dims.map((d) => varint(d)))));
  parts.push(vint(2, t.type));
  if (t.name !== undefined) parts.push(len(8, t.name));
  if (t.raw) parts.push(len(9, t.raw));
  if (t.floatData) parts.push(len(4, t.floatData));
  if (t.floatUnpacked) for (const v of t.floatUnpacked) parts.push(tag(4, 5), f32([v]));
  if (t.doubleData) parts.push(len(10, t.doubleData));
  if (t.int64Data) parts.push(len(7, cat(...t.int64Data.map((v) => varint(v)))));
  if (t.external) {
    const entry = (k: string, v: string) => len(13, cat(len(1, k), len(2, v)));
    parts.push(entry('location', t.external.location));
    parts.push(entry('offset', String(t.external.offset)));
    parts.push(entry('length', String(t.external.length)));
    parts.push(vint(14, 1));
  }
  return cat(...parts);
}

export function valueInfo(name: string, elemType: number, dims: number[]): Buffer {
  const shape = cat(...dims.map((d) => len(1, vint(1, d))));
  return cat(len(1, name), len(2, len(1, cat(vint(1, elemType), len(2, shape)))));
}

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Buffer[]; // AttributeProto bodies
}
export function node(n: NodeSpec): Buffer {
  return cat(
    ...n.inputs.map((i) => len(1, i)),
    ...n.outputs.map((o) => len(2, o)),
    ...(n.name ? [len(3, n.name)] : []),
    len(4, n.op),
    ...(n.domain ? [len(7, n.domain)] : []),
    ...(n.attrs ?? []).map((a) => len(5, a)),
  );
}
export const tensorAttr = (name: string, t: Buffer): Buffer => cat(len(1, name), vint(20, 4), len(5, t));
export const graphAttr = (name: string, g: Buffer): Buffer => cat(len(1, name), vint(20, 5), len(6, g));

export interface GraphSpec {
  name: string;
  nodes: Buffer[];
  initializers?: Buffer[];
  sparse?: Buffer[];
  inputs?: Buffer[];
  outputs: Buffer[];
}
export function graph(g: GraphSpec): Buffer {
  return cat(
    ...g.nodes.map((n) => len(1, n)),
    len(2, g.name),
    ...(g.initializers ?? []).map((t) => len(5, t)),
    ...(g.inputs ?? []).map((v) => len(11, v)),
    ...g.outputs.map((v) => len(12, v)),
    ...(g.sparse ?? []).map((s) => len(15, s)),
  );
}
export function sparseTensor(values: Buffer, indices: Buffer, dims: number[]): Buffer {
  return cat(len(1, values), len(2, indices), len(3, cat(...dims.map((d) => varint(d)))));
}
const opset = (domain: string, version: number): Buffer => cat(...(domain ? [len(1, domain)] : []), vint(2, version));

export function model(
  g: Buffer,
  opts: { functions?: Buffer[]; trainingInfo?: Buffer[]; opsets?: [string, number][] } = {},
): Buffer {
  return cat(
    vint(1, 8),
    len(2, 'coral-test'),
    len(7, g),
    ...(opts.opsets ?? [['', 13]]).map(([d, v]) => len(8, opset(d, v))),
    ...(opts.trainingInfo ?? []).map((t) => len(20, t)),
    ...(opts.functions ?? []).map((f) => len(25, f)),
  );
}

export function func(name: string, domain: string, inputs: string[], outputs: string[], nodes: Buffer[]): Buffer {
  return cat(
    len(1, name),
    ...inputs.map((i) => len(4, i)),
    ...outputs.map((o) => len(5, o)),
    ...nodes.map((n) => len(7, n)),
    len(9, opset('', 13)),
    len(10, domain),
  );
}

/** xorshift32 floats in [-1, 1). */
export function weights(n: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out.push(s / 2 ** 31 - 1);
  }
  return out;
}

/**
 * A model using every tensor location: Y = Reshape(((X @ W + B + K + SP + If(cond)) -> AddOne), shape) where
 * W is raw_data, B packed float_data, K a Constant node, SP a sparse initializer, the If branches hold
 * Constants, AddOne is a model-local function with its own Constant, and `shape` is varint int64_data
 * (stays in the skeleton). D (double_data) and U (unpacked float_data) are unused initializers.
 */
export function everywhereModel(seed: number): Buffer {
  const w = weights(12, seed);
  const thenG = graph({
    name: 'then',
    nodes: [
      node({
        op: 'Constant',
        inputs: [],
        outputs: ['t_out'],
        name: 'then_const',
        attrs: [tensorAttr('value', tensor({ type: F32, dims: [3], raw: f32([1, 2, 3]) }))],
      }),
    ],
    outputs: [valueInfo('t_out', F32, [3])],
  });
  const elseG = graph({
    name: 'else',
    nodes: [
      node({
        op: 'Constant',
        inputs: [],
        outputs: ['e_out'],
        name: 'else_const',
        attrs: [tensorAttr('value', tensor({ type: F32, dims: [3], raw: f32([-1, -2, -3]) }))],
      }),
    ],
    outputs: [valueInfo('e_out', F32, [3])],
  });
  const addOne = func(
    'AddOne',
    'local',
    ['a'],
    ['b'],
    [
      node({
        op: 'Constant',
        inputs: [],
        outputs: ['one'],
        name: 'fn_const',
        attrs: [tensorAttr('value', tensor({ type: F32, dims: [], raw: f32([1]) }))],
      }),
      node({ op: 'Add', inputs: ['a', 'one'], outputs: ['b'] }),
    ],
  );
  const g = graph({
    name: 'everywhere',
    nodes: [
      node({ op: 'MatMul', inputs: ['X', 'W'], outputs: ['h1'], name: 'mm' }),
      node({ op: 'Add', inputs: ['h1', 'B'], outputs: ['h2'], name: 'add_b' }),
      node({
        op: 'Constant',
        inputs: [],
        outputs: ['K'],
        name: 'const_k',
        attrs: [tensorAttr('value', tensor({ type: F32, dims: [3], raw: f32(weights(3, seed + 1)) }))],
      }),
      node({ op: 'Add', inputs: ['h2', 'K'], outputs: ['h3'], name: 'add_k' }),
      node({ op: 'Add', inputs: ['h3', 'SP'], outputs: ['h4'], name: 'add_sp' }),
      node({
        op: 'If',
        inputs: ['cond'],
        outputs: ['branch'],
        name: 'if',
        attrs: [graphAttr('then_branch', thenG), graphAttr('else_branch', elseG)],
      }),
      node({ op: 'Add', inputs: ['h4', 'branch'], outputs: ['h5'], name: 'add_if' }),
      node({ op: 'AddOne', domain: 'local', inputs: ['h5'], outputs: ['h6'], name: 'add_one' }),
      node({ op: 'Reshape', inputs: ['h6', 'shape'], outputs: ['Y'], name: 'reshape' }),
    ],
    initializers: [
      tensor({ name: 'W', type: F32, dims: [4, 3], raw: f32(w) }),
      tensor({ name: 'B', type: F32, dims: [3], floatData: f32(weights(3, seed + 2)) }),
      tensor({ name: 'cond', type: BOOL, dims: [], raw: Buffer.from([seed % 2]) }),
      tensor({ name: 'shape', type: I64, dims: [1], int64Data: [6] }),
      tensor({ name: 'D', type: F64, dims: [2], doubleData: f64([0.5, -0.25]) }),
      tensor({ name: 'U', type: F32, dims: [2], floatUnpacked: [3, 4] }),
    ],
    sparse: [
      sparseTensor(
        tensor({ name: 'SP', type: F32, dims: [2], raw: f32([10, 20]) }),
        tensor({ type: I64, dims: [2], raw: i64([0, 2]) }),
        [3],
      ),
    ],
    inputs: [valueInfo('X', F32, [2, 4])],
    outputs: [valueInfo('Y', F32, [6])],
  });
  return model(g, {
    functions: [addOne],
    opsets: [
      ['', 13],
      ['local', 1],
    ],
  });
}

/** Y = X @ W + B with W and B in an external data file (`location`), B 64-byte aligned after W. */
export function externalModel(location: string, seed: number): { model: Buffer; data: Buffer } {
  const w = f32(weights(12, seed));
  const b = f32(weights(3, seed + 7));
  const data = Buffer.alloc(64 + b.length, 0);
  w.copy(data, 0);
  b.copy(data, 64);
  const g = graph({
    name: 'external',
    nodes: [
      node({ op: 'MatMul', inputs: ['X', 'W'], outputs: ['h'], name: 'mm' }),
      node({ op: 'Add', inputs: ['h', 'B'], outputs: ['Y'], name: 'add' }),
    ],
    initializers: [
      tensor({ name: 'W', type: F32, dims: [4, 3], external: { location, offset: 0, length: 48 } }),
      tensor({ name: 'B', type: F32, dims: [3], external: { location, offset: 64, length: 12 } }),
    ],
    inputs: [valueInfo('X', F32, [2, 4])],
    outputs: [valueInfo('Y', F32, [2, 3])],
  });
  return { model: model(g), data };
}

/** Training info with an initialization and an algorithm graph, each holding an initializer. */
export function trainingModel(): Buffer {
  const g = graph({
    name: 'main',
    nodes: [node({ op: 'Identity', inputs: ['X'], outputs: ['Y'] })],
    inputs: [valueInfo('X', F32, [2])],
    outputs: [valueInfo('Y', F32, [2])],
  });
  const init = graph({
    name: 'init',
    nodes: [],
    initializers: [tensor({ name: 'seed_w', type: F32, dims: [2], raw: f32([1, 2]) })],
    outputs: [],
  });
  const algo = graph({
    name: 'algo',
    nodes: [],
    initializers: [tensor({ name: 'lr', type: F32, dims: [], raw: f32([0.1]) })],
    outputs: [],
  });
  return model(g, { trainingInfo: [cat(len(1, init), len(2, algo))] });
}
