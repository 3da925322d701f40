"""The seed's training loop in PyTorch on the real Fashion-MNIST files (reference dynamics).

    python3 bench/train_torch.py --width 0.25 --epochs 1 [--limit N] [--threads 2]

Prints per-epoch mean losses and D accuracies in the same columns as unitmatch's losses.csv,
so that a run of ours can be checked against PyTorch's learning curve. Not used by CI.
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan_torch import Discriminator, Generator, weights_init_normal  # noqa: E402


def load(dir_, limit):
    with gzip.open(os.path.join(dir_, "train-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    raw = raw[:limit] if limit else raw
    imgs = np.stack([np.asarray(Image.fromarray(x).resize((32, 32), Image.BILINEAR)) for x in raw])
    return torch.from_numpy(((imgs.astype(np.float32) / 255.0) - 0.5) / 0.5).unsqueeze(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--samples", default="")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = load(a.data, a.limit)
    g, d = Generator(a.width), Discriminator(a.width)
    g.apply(weights_init_normal)
    d.apply(weights_init_normal)
    bce = torch.nn.BCELoss()
    og = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    print("epoch,g_loss,d_loss,d_real_acc,d_fake_acc,seconds,img_per_s")
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(data))
        gs = ds = 0.0
        ra = fa = 0
        it = 0
        t0 = time.perf_counter()
        for i in range(0, len(data), 64):
            real = data[perm[i:i + 64]]
            b = real.shape[0]
            z = torch.randn(b, 100)
            og.zero_grad()
            gen = g(z)
            gl = bce(d(gen), torch.ones(b, 1))
            gl.backward()
            og.step()
            od.zero_grad()
            pr, pf = d(real), d(gen.detach())
            dl = (bce(pr, torch.ones(b, 1)) + bce(pf, torch.zeros(b, 1))) / 2
            dl.backward()
            od.step()
            gs += gl.item()
            ds += dl.item()
            ra += (pr > 0.5).sum().item()
            fa += (pf < 0.5).sum().item()
            it += 1
        sec = time.perf_counter() - t0
        n = len(data)
        print(f"{epoch},{gs/it:.6f},{ds/it:.6f},{ra/n:.6f},{fa/n:.6f},{sec:.3f},{n/sec:.2f}", flush=True)
    if a.samples:
        g.eval()
        with torch.no_grad():
            torch.manual_seed(5555)
            imgs = g(torch.randn(50, 100))
        grid = ((imgs.squeeze(1).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        rows = [np.concatenate(list(grid[r * 10:(r + 1) * 10]), axis=1) for r in range(5)]
        Image.fromarray(np.concatenate(rows, axis=0)).save(a.samples)


if __name__ == "__main__":
    main()
