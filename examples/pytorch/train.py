"""A small PyTorch training loop that writes checkpoints the way `coral watch` expects.

Usage: python3 train.py <checkpoint-dir> [epochs]

Each epoch ends with two files in <checkpoint-dir>:
  ckpt-0001.json  metrics sidecar (written first, atomically)
  ckpt-0001.pt    model + optimizer state (torch.save to a temp name, then os.replace)
`coral watch <checkpoint-dir>` commits each checkpoint once it is complete, with the sidecar's
numbers as the commit's metrics (`coral log --metric loss`).
"""
import json
import os
import sys

import torch

out = sys.argv[1]
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

x = torch.randn(256, 16)
y = (x[:, :4].sum(dim=1, keepdim=True) > 0).float()
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
loss_fn = torch.nn.BCEWithLogitsLoss()

step = 0
for epoch in range(1, epochs + 1):
    for i in range(0, 256, 32):
        opt.zero_grad()
        loss = loss_fn(model(x[i : i + 32]), y[i : i + 32])
        loss.backward()
        opt.step()
        step += 1
    with torch.no_grad():
        full = loss_fn(model(x), y).item()
        acc = ((model(x) > 0).float() == y).float().mean().item()
    name = os.path.join(out, f"ckpt-{epoch:04d}")
    # The sidecar first, so it is there when the checkpoint appears.
    with open(name + ".json.tmp", "w") as f:
        json.dump({"step": step, "epoch": epoch, "loss": round(full, 6), "accuracy": round(acc, 6)}, f)
    os.replace(name + ".json.tmp", name + ".json")
    # Atomic: coral never sees a half-written .pt (it ignores *.tmp names).
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, name + ".pt.tmp")
    os.replace(name + ".pt.tmp", name + ".pt")
    print(f"epoch {epoch}: step {step} loss {full:.4f}", flush=True)
