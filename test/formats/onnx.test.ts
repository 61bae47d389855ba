// ONNX stored byte-exact: tensors found at the protobuf wire level (initializers, Constant nodes,
// sparse initializers, If subgraphs, functions, training info, external data), round trips through a
// repository checked by sha256 and by running the model in onnxruntime-node before and after.
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError, LimitExceededError } from '../../lib/errors';
import { BufferSource, scanCheckpoint, scanSource } from '../../lib/formats';
import { readOnnxTensors } from '../../lib/formats/onnx';
import { Repository } from '../../lib/repository';
import { PYTHON, expectCode, hasTorch, py, tmpDir } from './helpers';
import {
  F32,
  everywhereModel,
  externalModel,
  f32,
  graph,
  graphAttr,
  len,
  model,
  node,
  tensor,
  trainingModel,
  valueInfo,
  varint,
  vint,
} from './onnx-fixture';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function dir(): string {
  const d = tmpDir();
  dirs.push(d);
  return d;
}
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** Runs `file` on a fixed input; returns every output's bytes as hex (bit-exact comparison). */
async function run(file: string, inputs: Record<string, [number[], number[]]>): Promise<Record<string, string>> {
  const s = await ort.InferenceSession.create(file, { logSeverityLevel: 3 });
  const feeds: Record<string, ort.Tensor> = {};
  for (const [k, [data, dims]] of Object.entries(inputs))
    feeds[k] = new ort.Tensor('float32', Float32Array.from(data), dims);
  const out = await s.run(feeds);
  const r: Record<string, string> = {};
  for (const [k, t] of Object.entries(out)) {
    const d = t.data as Float32Array;
    r[k] = Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex');
  }
  await s.release();
  return r;
}
const X = {
  X: [
    [1, -2, 3, -4, 5, -6, 7, -8],
    [2, 4],
  ] as [number[], number[]],
};

/** add + commit, delete the files, check out: each is back byte-for-byte. Returns the add report. */
async function roundTrip(repo: Repository, files: string[], message: string) {
  const before = files.map((f) => sha(path.join(repo.worktree, f)));
  const report = await repo.add(files.map((f) => path.join(repo.worktree, f)));
  await repo.commit({ message });
  for (const f of files) fs.rmSync(path.join(repo.worktree, f));
  await repo.checkout('main', { force: true });
  expect(files.map((f) => sha(path.join(repo.worktree, f)))).toEqual(before);
  return report;
}

const TORCH_EXPORT = `
import sys, json, torch
torch.manual_seed(int(sys.argv[2]))
class MLP(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.fc1 = torch.nn.Linear(8, 64); s.fc2 = torch.nn.Linear(64, 4)
    def forward(s, x):
        return s.fc2(torch.relu(s.fc1(x))) + torch.tensor([1.0, 2.0, 3.0, 4.0])
m = MLP().eval()
if sys.argv[3] == 'tuned':
    torch.manual_seed(0); base = MLP(); m.fc1.load_state_dict(base.fc1.state_dict())
    with torch.no_grad():
        m.fc2.weight.copy_(base.fc2.weight + 1e-3 * torch.randn_like(base.fc2.weight)); m.fc2.bias.copy_(base.fc2.bias)
torch.onnx.export(m, (torch.randn(2, 8),), sys.argv[1], input_names=['X'], output_names=['Y'],
                  dynamic_axes={'X': {0: 'batch'}})
print(json.dumps({k: v.detach().numpy().tobytes().hex() for k, v in m.state_dict().items()}))
`;

const TORCH_IF = `
import sys, torch
torch.manual_seed(1)
class C(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.fc = torch.nn.Linear(8, 4)
    def forward(s, x):
        if bool(x.sum() > 0):
            return s.fc(x) * 2 + torch.tensor([1.0, 2.0, 3.0, 4.0])
        return s.fc(x) - torch.tensor([5.0, 6.0, 7.0, 8.0])
torch.onnx.export(torch.jit.script(C()), (torch.randn(2, 8),), sys.argv[1], input_names=['X'], output_names=['Y'])
`;

describe.skipIf(!hasTorch)('ONNX files exported by torch', () => {
  it('finds every initializer and Constant; payload bytes are the torch tensors', async () => {
    const d = dir();
    const file = path.join(d, 'mlp.onnx');
    const sd = JSON.parse(py(TORCH_EXPORT, file, '0', 'base')) as Record<string, string>;
    const layout = await scanCheckpoint(file);
    expect(layout.format).toBe('onnx');
    const names = layout.tensors.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(Object.keys(sd)));
    expect(names.some((n) => /Constant/.test(n))).toBe(true);
    const bytes = fs.readFileSync(file);
    for (const [k, hex] of Object.entries(sd)) {
      const t = layout.tensors.find((x) => x.name === k)!;
      const s = layout.segments[t.segment];
      expect(bytes.subarray(s.offset, s.offset + s.length).toString('hex'), k).toBe(hex);
    }
  });

  it('round-trips byte-exact and runs identically; a fine-tune deduplicates and delta-encodes tensor by tensor; diff names initializers', async () => {
    const d = dir();
    const repo = await Repository.init(d);
    try {
      py(TORCH_EXPORT, path.join(d, 'model.onnx'), '0', 'base');
      // torch.jit.script reads the module's source, so this one runs from a file.
      const script = path.join(dir(), 'export_if.py');
      fs.writeFileSync(script, TORCH_IF);
      const r = spawnSync(PYTHON, [script, path.join(d, 'if.onnx')], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const before = await run(path.join(d, 'model.onnx'), {
        X: [Array.from({ length: 16 }, (_, i) => i / 7 - 1), [2, 8]],
      });
      const beforeIf = await run(path.join(d, 'if.onnx'), { X: [Array.from({ length: 16 }, (_, i) => i / 5), [2, 8]] });
      await roundTrip(repo, ['model.onnx', 'if.onnx'], 'base export');
      expect(
        await run(path.join(d, 'model.onnx'), { X: [Array.from({ length: 16 }, (_, i) => i / 7 - 1), [2, 8]] }),
      ).toEqual(before);
      expect(await run(path.join(d, 'if.onnx'), { X: [Array.from({ length: 16 }, (_, i) => i / 5), [2, 8]] })).toEqual(
        beforeIf,
      );
      const ifLayout = await scanCheckpoint(path.join(d, 'if.onnx'));
      expect(ifLayout.tensors.filter((t) => /then_branch|else_branch/.test(t.name)).length).toBeGreaterThanOrEqual(2);

      py(TORCH_EXPORT, path.join(d, 'model.onnx'), '0', 'tuned');
      const report = await roundTrip(repo, ['model.onnx'], 'fine-tune export');
      const f = report.files[0];
      // fc1.weight, fc1.bias, fc2.bias and the Constant are unchanged: stored once; fc2.weight is a delta.
      expect(f.dedupedObjects).toBeGreaterThanOrEqual(4);
      expect(f.deltaObjects).toBeGreaterThanOrEqual(1);
      const diff = await repo.diff('HEAD~1', 'HEAD');
      const change = diff.find((c) => c.path === 'model.onnx')!;
      expect(change.format).toBe('onnx');
      expect(change.tensors.map((t) => t.name)).toEqual(['fc2.weight']);
    } finally {
      await repo.close();
    }
  });
});

describe('ONNX tensors everywhere (built field by field)', () => {
  it('initializers (raw_data, packed float_data/double_data), Constant nodes, sparse, If, functions, training info', async () => {
    const layout = await scanSource(new BufferSource(everywhereModel(3), 'every.onnx'), { format: 'onnx' });
    const byName = new Map(layout.tensors.map((t) => [t.name, t]));
    expect([...byName.keys()].sort()).toEqual(
      [
        'B',
        'D',
        'SP:indices',
        'SP:values',
        'W',
        'cond',
        'const_k.value',
        'function:local.AddOne/fn_const.value',
        'if.else_branch/else_const.value',
        'if.then_branch/then_const.value',
      ].sort(),
    );
    expect(byName.get('B')).toMatchObject({ dtype: 'F32', shape: [3] }); // packed float_data
    expect(byName.get('D')).toMatchObject({ dtype: 'F64', shape: [2] }); // packed double_data
    expect(byName.get('SP:indices')).toMatchObject({ dtype: 'I64', shape: [2] });
    // varint int64_data ('shape') and unpacked float_data ('U') do not map 1:1 to bytes: skeleton.
    expect(byName.has('shape')).toBe(false);
    expect(byName.has('U')).toBe(false);
    const info = await readOnnxTensors(new BufferSource(everywhereModel(3)));
    expect(
      info.tensors
        .filter((t) => t.storage === 'skeleton')
        .map((t) => t.name)
        .sort(),
    ).toEqual(['U', 'shape']);

    const train = await scanSource(new BufferSource(trainingModel()), { format: 'onnx' });
    expect(train.tensors.map((t) => t.name)).toEqual([
      'training_info[0].initialization/seed_w',
      'training_info[0].algorithm/lr',
    ]);
  });

  it('round-trips through a repository and runs identically in onnxruntime', async () => {
    const d = dir();
    fs.writeFileSync(path.join(d, 'every.onnx'), everywhereModel(3));
    const before = await run(path.join(d, 'every.onnx'), X);
    const repo = await Repository.init(d);
    try {
      await roundTrip(repo, ['every.onnx'], 'everywhere');
    } finally {
      await repo.close();
    }
    expect(await run(path.join(d, 'every.onnx'), X)).toEqual(before);
  });

  it('external data in a subdirectory (location weights/w.bin) is found from the model above it', async () => {
    const d = dir();
    const { model: m, data } = externalModel('weights/w.bin', 8);
    fs.writeFileSync(path.join(d, 'm.onnx'), m);
    fs.mkdirSync(path.join(d, 'weights'));
    fs.writeFileSync(path.join(d, 'weights', 'w.bin'), data);
    const before = await run(path.join(d, 'm.onnx'), X);
    const layout = await scanCheckpoint(path.join(d, 'weights', 'w.bin'));
    expect(layout.format).toBe('onnx-external');
    expect(layout.metadata!['onnx.model']).toBe('../m.onnx');
    const repo = await Repository.init(d);
    try {
      await roundTrip(repo, ['m.onnx', 'weights/w.bin'], 'nested external');
    } finally {
      await repo.close();
    }
    expect(await run(path.join(d, 'm.onnx'), X)).toEqual(before);
  });

  it('external data: the .onnx and its data file are stored together, tensor by tensor', async () => {
    const d = dir();
    const { model: m, data } = externalModel('weights.bin', 5);
    fs.writeFileSync(path.join(d, 'ext.onnx'), m);
    fs.writeFileSync(path.join(d, 'weights.bin'), data);
    const before = await run(path.join(d, 'ext.onnx'), X);
    const onnxLayout = await scanCheckpoint(path.join(d, 'ext.onnx'));
    expect(onnxLayout.segments).toEqual([]);
    expect(JSON.parse(onnxLayout.metadata!['onnx.external_data'])).toEqual(['weights.bin']);
    const dataLayout = await scanCheckpoint(path.join(d, 'weights.bin'));
    expect(dataLayout.format).toBe('onnx-external');
    expect(dataLayout.metadata!['onnx.model']).toBe('ext.onnx');
    expect(dataLayout.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([
      ['W', 'F32', [4, 3]],
      ['B', 'F32', [3]],
    ]);
    expect(dataLayout.segments.map((s) => [s.offset, s.length])).toEqual([
      [0, 48],
      [64, 12],
    ]);
    const repo = await Repository.init(d);
    try {
      await roundTrip(repo, ['ext.onnx', 'weights.bin'], 'external');
      const tree = await repo.treeOf('HEAD');
      expect(tree.files['weights.bin'].format).toBe('onnx-external');
      expect(tree.files['weights.bin'].tensors.map((t) => t.name)).toEqual(['W', 'B']);
      // A second export with a changed bias: W is deduplicated in the data file.
      const next = externalModel('weights.bin', 5);
      next.data.writeFloatLE(9.5, 64);
      fs.writeFileSync(path.join(d, 'weights.bin'), next.data);
      const r = await repo.add([path.join(d, 'weights.bin')]);
      expect(r.files[0].dedupedObjects).toBeGreaterThanOrEqual(1);
      const diff = await repo.diff('HEAD');
      expect(diff.find((c) => c.path === 'weights.bin')!.tensors.map((t) => t.name)).toEqual(['B']);
      fs.writeFileSync(path.join(d, 'weights.bin'), data);
    } finally {
      await repo.close();
    }
    expect(await run(path.join(d, 'ext.onnx'), X)).toEqual(before);
  });
});

describe('hostile ONNX files get typed errors', () => {
  const scan = (b: Buffer) => scanSource(new BufferSource(b, 'bad.onnx'), { format: 'onnx' });
  const good = everywhereModel(3);

  it('a length past the end (truncated file)', async () => {
    for (const cut of [good.length - 1, good.length - 40, Math.floor(good.length / 2)])
      await expectCode(scan(good.subarray(0, cut)), FormatError.code);
  });

  it('a varint that never ends', async () => {
    await expectCode(scan(Buffer.concat([vint(1, 8), Buffer.alloc(16, 0xff)])), FormatError.code);
    await expectCode(
      scan(Buffer.concat([Buffer.from([0x3a]), Buffer.alloc(11, 0x80), Buffer.from([1])])),
      FormatError.code,
    );
  });

  it('a nesting bomb (If inside If inside If ...)', async () => {
    let g = graph({ name: 'leaf', nodes: [], outputs: [] });
    for (let i = 0; i < 200; i++)
      g = graph({
        name: 'g',
        nodes: [node({ op: 'If', inputs: ['c'], outputs: ['o'], attrs: [graphAttr('then_branch', g)] })],
        outputs: [],
      });
    await expectCode(scan(model(g)), LimitExceededError.code);
  });

  it('absurd dims and too many dims', async () => {
    const withTensor = (t: Buffer) => model(graph({ name: 'g', nodes: [], initializers: [t], outputs: [] }));
    await expectCode(
      scan(withTensor(tensor({ name: 'w', type: F32, dims: [2 ** 40, 2 ** 40], raw: f32([1]) }))),
      LimitExceededError.code,
    );
    await expectCode(scan(withTensor(tensor({ name: 'w', type: F32, dims: [-1], raw: f32([1]) }))), FormatError.code);
    await expectCode(
      scan(withTensor(tensor({ name: 'w', type: F32, dims: new Array(100).fill(1), raw: f32([1]) }))),
      LimitExceededError.code,
    );
  });

  it('groups (wire type 3) and a zero field number are refused', async () => {
    await expectCode(scan(Buffer.concat([varint(7 * 8 + 3), varint(0)])), FormatError.code);
    await expectCode(scan(Buffer.from([0x00, 0x01])), FormatError.code);
    await expectCode(scan(Buffer.concat([len(7, Buffer.from([0x0a, 0x05, 0x01]))])), FormatError.code);
  });

  it('a data file the model places tensors past the end of is refused, then stored as a plain file', async () => {
    const d = dir();
    const { model: m, data } = externalModel('w.data', 1);
    fs.writeFileSync(path.join(d, 'm.onnx'), m);
    fs.writeFileSync(path.join(d, 'w.data'), data.subarray(0, 30));
    await expectCode(scanCheckpoint(path.join(d, 'w.data')), FormatError.code);
    const repo = await Repository.init(d);
    try {
      const r = await repo.add([path.join(d, 'w.data')]);
      expect(r.files[0].plainFile).toMatch(/past the end/);
    } finally {
      await repo.close();
    }
  });

  it('valueInfo-only junk is not taken for a model', async () => {
    await expectCode(scan(valueInfo('x', F32, [1])), FormatError.code);
  });
});
