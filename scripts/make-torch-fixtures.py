#!/usr/bin/python3
"""Generates the small PyTorch / NumPy fixture files under test/fixtures/torch/.

Run with Debian's interpreter (it has torch and numpy):
    /usr/bin/python3 scripts/make-torch-fixtures.py [outdir]

Deterministic (fixed seeds). Next to each checkpoint it writes
<name>.expected.json: for every tensor the dotted name, dtype, shape and the
hex of its contiguous little-endian bytes, plus plain values, which the
TypeScript tests compare against.
"""
import collections
import json
import os
import sys

import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'torch')
os.makedirs(OUT, exist_ok=True)

DT = {
    torch.float64: 'F64', torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16',
    torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8', torch.bool: 'BOOL',
}


def tbytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes().hex()


def flatten(prefix, v, out):
    if isinstance(v, torch.Tensor):
        out[prefix] = {'dtype': DT[v.dtype], 'shape': list(v.shape), 'hex': tbytes(v)}
    elif isinstance(v, dict):
        for k, x in v.items():
            flatten(f'{prefix}.{k}' if prefix else str(k), x, out)
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            flatten(f'{prefix}.{i}' if prefix else str(i), x, out)


def save(name, obj, extra=None, **kw):
    path = os.path.join(OUT, name)
    torch.save(obj, path, **kw)
    tensors = {}
    flatten('', obj, tensors)
    with open(path + '.expected.json', 'w') as f:
        json.dump({'tensors': tensors, **(extra or {})}, f, indent=1, sort_keys=True)


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 6)
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.norm = torch.nn.LayerNorm(6)
        self.fc = torch.nn.Linear(6, 4)

    def forward(self, x, idx):
        h = self.norm(self.emb(idx))
        return self.fc(h).sum() + self.conv(x).sum()


torch.manual_seed(0)
np.random.seed(0)
model = Small()

# 1. a plain state dict
save('model_state.pt', model.state_dict())

# 2. a training checkpoint: AdamW after one step, epoch, lr, nested python values, numpy values
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
loss = model(torch.randn(2, 3, 5, 5), torch.tensor([[1, 2, 3]]))
loss.backward()
opt.step()
ckpt = {
    'model': model.state_dict(),
    'optimizer': opt.state_dict(),
    'epoch': 3,
    'lr': 0.001,
    'step': 2 ** 40 + 5,
    'big': -(2 ** 70),
    'name': 'small-net \u00e9\u4e2d',
    'nested': [[1, 2.5, 'x'], (True, None), {'k': b'\x00\xffbytes', 7: [-1, -300, 70000]}],
    'np_scalar': np.float64(0.75),
    'np_int': np.int64(-12),
    'np_array': np.arange(6, dtype=np.int32).reshape(2, 3),
}
save('checkpoint.pt', ckpt, extra={
    'epoch': 3, 'lr': 0.001, 'step': 2 ** 40 + 5, 'big': str(-(2 ** 70)), 'name': ckpt['name'],
    'param_groups': [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in opt.state_dict()['param_groups']],
})

# 3. every dtype torch can save through legacy storage classes
g = torch.Generator().manual_seed(1)
f = torch.randn(3, 4, generator=g)
dtypes = {
    'f64': f.double(), 'f32': f, 'f16': f.half(), 'bf16': f.bfloat16(),
    'i64': torch.tensor([-(2 ** 62), -1, 0, 1, 2 ** 62]), 'i32': torch.tensor([-7, 0, 2 ** 31 - 1], dtype=torch.int32),
    'i16': torch.tensor([-32768, 5, 32767], dtype=torch.int16), 'i8': torch.tensor([-128, 0, 127], dtype=torch.int8),
    'u8': torch.tensor([0, 200, 255], dtype=torch.uint8), 'bool': torch.tensor([True, False, True]),
    'special': torch.tensor([float('nan'), float('inf'), -float('inf'), -0.0, 1e-45, 3.4e38]),
}
save('dtypes.pt', dtypes)

# 4. views: shared storage, storage offsets, non-contiguous strides, 0-d, empty, Parameter
base = torch.arange(20, dtype=torch.float32)
grid = base.view(4, 5)
views = collections.OrderedDict([
    ('base', base),
    ('offset_view', base[5:15]),
    ('grid', grid),
    ('transposed', grid.t()),
    ('strided', base[::3]),
    ('column', grid[:, 2]),
    ('scalar', torch.tensor(3.5)),
    ('empty', torch.empty(0, 3)),
    ('param', torch.nn.Parameter(torch.ones(2, 2))),
    ('expanded', torch.tensor([1.0, 2.0]).expand(3, 2)),
])
save('views.pt', views)

# 5. legacy (pre-1.6) format and a TorchScript archive, which must be refused
torch.save({'w': torch.ones(2)}, os.path.join(OUT, 'legacy.pt'), _use_new_zipfile_serialization=False)
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(OUT, 'scripted.pt'))

# 6. numpy
rng = np.random.default_rng(0)
arrays = {
    'f32': rng.standard_normal((2, 3)).astype(np.float32),
    'f16': rng.standard_normal((4,)).astype(np.float16),
    'u2': np.array([0, 1, 65535], dtype='<u2'),
    'i8': np.array(-5, dtype=np.int64),
    'b': np.array([True, False, True, True]),
    'fortran': np.asfortranarray(rng.standard_normal((3, 4))),
    'empty': np.zeros((0, 5), dtype=np.int16),
}
for k, a in arrays.items():
    np.save(os.path.join(OUT, f'{k}.npy'), a)
np.savez(os.path.join(OUT, 'arrays.npz'), **arrays)
np.savez_compressed(os.path.join(OUT, 'arrays_compressed.npz'), **arrays)
with open(os.path.join(OUT, 'arrays.expected.json'), 'w') as fp:
    json.dump({k: {'descr': a.dtype.str, 'shape': list(a.shape), 'hex': np.ascontiguousarray(a).tobytes().hex()}
               for k, a in arrays.items()}, fp, indent=1, sort_keys=True)
print('fixtures written to', os.path.abspath(OUT))
