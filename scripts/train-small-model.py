#!/usr/bin/python3
"""Trains a small MLP block with AdamW (Debian's torch, CPU) and saves its weights
at three points, for bench/real-finetune.ts: a = after steps/2 steps, b = one step
later, c = after `steps` steps. Each tensor goes to <out>/<tag>.<name>.npy (float32).

  /usr/bin/python3 scripts/train-small-model.py OUT_DIR [STEPS] [WIDTH]

The model is a transformer-style feed-forward block (Linear d->4d, GELU, Linear
4d->d, LayerNorm) regressing a fixed random teacher on Gaussian inputs; seeded.
"""
import os
import sys
import time

import numpy as np
import torch

out = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
d = int(sys.argv[3]) if len(sys.argv) > 3 else 512
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.GELU(), torch.nn.Linear(4 * d, d), torch.nn.LayerNorm(d))
teacher = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.Tanh(), torch.nn.Linear(d, d))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
os.makedirs(out, exist_ok=True)


def save(tag):
    for name, p in model.state_dict().items():
        np.save(os.path.join(out, f"{tag}.{name}.npy"), p.detach().numpy().astype(np.float32))


t0 = time.time()
for step in range(1, steps + 1):
    x = torch.randn(64, d)
    with torch.no_grad():
        y = teacher(x)
    loss = torch.nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step == steps // 2:
        save("a")
    if step == steps // 2 + 1:
        save("b")
    if step == steps:
        save("c")
print(f"trained {steps} steps in {time.time() - t0:.1f} s, final loss {float(loss):.4f}")
