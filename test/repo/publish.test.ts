// `publish`: a commit written out as a Hugging Face folder (safetensors shards + index, config and
// tokenizer files, a model card with metrics and lineage) and as an MLflow model folder, loaded back
// by Debian's torch through a small safetensors reader written in python (json + struct), and the
// local record `publish --list` reads.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../lib/errors';
import { parseByteSize } from '../../lib/commands/publish';
import { Repository } from '../../lib/repository';
import { expectCode, hasTorch, py, tmpDir } from '../formats/helpers';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function dir(): string {
  const d = tmpDir();
  dirs.push(d);
  return d;
}

const SAVE = `
import sys, torch
torch.manual_seed(int(sys.argv[2]))
m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8), torch.nn.LayerNorm(8))
torch.save(m.state_dict(), sys.argv[1])
`;

/** Loads an HF folder with a python safetensors reader (no safetensors package), compares with the .pt. */
const LOAD_HF = `
import sys, json, struct, torch
folder, pt = sys.argv[1], sys.argv[2]
DT = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16, 'F64': torch.float64, 'I64': torch.int64}
def read(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop('__metadata__', {})
    out = {}
    for k, v in header.items():
        a, b = v['data_offsets']
        t = torch.frombuffer(bytearray(data[a:b]), dtype=DT[v['dtype']]) if b > a else torch.empty(0, dtype=DT[v['dtype']])
        out[k] = t.reshape(v['shape'])
    return out, meta
index = json.load(open(folder + '/model.safetensors.index.json'))
sd = {}
for shard in sorted(set(index['weight_map'].values())):
    t, meta = read(folder + '/' + shard)
    assert meta.get('format') == 'pt', meta
    for k in t: assert index['weight_map'][k] == shard, k
    sd.update(t)
assert index['metadata']['total_size'] == sum(t.numel() * t.element_size() for t in sd.values())
m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8), torch.nn.LayerNorm(8))
m.load_state_dict(sd, strict=True)
ref = torch.load(pt)
assert all(torch.equal(ref[k], sd[k]) for k in ref), 'tensor mismatch'
x = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
m2 = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8), torch.nn.LayerNorm(8))
m2.load_state_dict(ref)
assert torch.equal(m(x), m2(x))
print(json.dumps({'tensors': len(sd), 'shards': len(set(index['weight_map'].values()))}))
`;

const FRONT_MATTER = `
import sys, json, yaml
text = open(sys.argv[1]).read()
assert text.startswith('---\\n')
print(json.dumps(yaml.safe_load(text.split('---\\n')[1])))
`;

describe.skipIf(!hasTorch)('coral publish', () => {
  it('--format hf: shards + index load in torch; config/tokenizer copied; card has metrics and lineage; --format mlflow; the log', async () => {
    const d = dir();
    const repo = await Repository.init(d);
    try {
      const pt = path.join(d, 'model.pt');
      py(SAVE, pt, '1');
      fs.writeFileSync(path.join(d, 'config.json'), '{"hidden": 32}\n');
      fs.writeFileSync(path.join(d, 'tokenizer.json'), '{"vocab": {"a": 0}}\n');
      fs.writeFileSync(path.join(d, 'train.py'), 'print(1)\n');
      await repo.add([pt, path.join(d, 'config.json'), path.join(d, 'tokenizer.json'), path.join(d, 'train.py')]);
      await repo.commit({ message: 'base', metadata: { metrics: { loss: 0.9 } } });
      py(SAVE, pt, '2');
      await repo.add([pt]);
      await repo.commit({ message: 'fine-tune\n\nlonger text', metadata: { loss: 0.31, accuracy: 0.875, note: 'ok' } });

      const out = path.join(dir(), 'hf');
      const r = await repo.publish('HEAD', { format: 'hf', out, shardSize: 1500 });
      expect(r.shards).toBeGreaterThan(1);
      expect(r.tensors).toBe(6);
      expect(fs.readdirSync(out).sort()).toEqual([...r.files].sort());
      expect(r.files).toEqual(
        expect.arrayContaining(['model.safetensors.index.json', 'config.json', 'tokenizer.json', 'README.md']),
      );
      expect(r.files).not.toContain('train.py');
      expect(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).toBe('{"hidden": 32}\n');
      const loaded = JSON.parse(py(LOAD_HF, out, pt)) as { tensors: number; shards: number };
      expect(loaded).toEqual({ tensors: 6, shards: r.shards });
      const card = JSON.parse(py(FRONT_MATTER, path.join(out, 'README.md'))) as {
        metrics: Record<string, unknown>;
        coral: { commit: string; lineage: { commit: string; message: string; metrics?: Record<string, unknown> }[] };
      };
      expect(card.metrics).toEqual({ loss: 0.31, accuracy: 0.875, note: 'ok' });
      expect(card.coral.commit).toBe(r.commit);
      expect(card.coral.lineage.map((l) => l.message)).toEqual(['fine-tune', 'base']);
      expect(card.coral.lineage[1].metrics).toEqual({ loss: 0.9 });

      // One shard when the limit allows it: model.safetensors (+ the index).
      const one = await repo.publish('HEAD~1', { format: 'hf', out: path.join(dir(), 'one') });
      expect(one.shards).toBe(1);
      expect(one.files).toContain('model.safetensors');

      const ml = path.join(dir(), 'mlflow');
      const m = await repo.publish('HEAD', { format: 'mlflow', out: ml });
      expect(m.files).toEqual(
        expect.arrayContaining(['MLmodel', 'metrics.json', 'data/model.safetensors', 'data/config.json']),
      );
      const mlmodel = JSON.parse(
        py('import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', path.join(ml, 'MLmodel')),
      ) as {
        flavors: { coral: { weights: string[]; commit: string } };
        metadata: { metrics: Record<string, unknown> };
      };
      expect(mlmodel.flavors.coral.weights).toEqual(['data/model.safetensors']);
      expect(mlmodel.flavors.coral.commit).toBe(m.commit);
      expect(mlmodel.metadata.metrics).toEqual({ loss: 0.31, accuracy: 0.875, note: 'ok' });
      expect(JSON.parse(py(LOAD_HF, path.join(ml, 'data'), pt))).toEqual({ tensors: 6, shards: 1 });

      const log = await repo.publishLog();
      expect(log.map((l) => [l.format, l.destination, l.commit])).toEqual([
        ['hf', out, r.commit],
        ['hf', one.out, one.commit],
        ['mlflow', ml, m.commit],
      ]);

      await expectCode(repo.publish('HEAD', { format: 'hf', out }), InvalidArgumentError.code); // not empty
      await expectCode(
        repo.publish('HEAD', { format: 'zip' as 'hf', out: path.join(dir(), 'x') }),
        InvalidArgumentError.code,
      );
      await expectCode(
        repo.publish('HEAD', { format: 'hf', out: path.join(dir(), 'y'), paths: ['train.py'] }),
        InvalidArgumentError.code,
      );
    } finally {
      await repo.close();
    }
  });

  it('parses shard sizes', () => {
    expect(parseByteSize('5GB')).toBe(5e9);
    expect(parseByteSize('2GiB')).toBe(2 ** 31);
    expect(parseByteSize('1500')).toBe(1500);
    expect(() => parseByteSize('lots')).toThrow(InvalidArgumentError);
    expect(() => parseByteSize('0')).toThrow(InvalidArgumentError);
  });
});
