"""PyTorch CPU reference timings for the seed's DCGAN (same model and loop as unitmatch).

    python3 bench/bench_torch.py --what train --width 1 --iters 30 --threads 2
    python3 bench/bench_torch.py --what infer --width 1 --iters 30 --threads 2
    python3 bench/bench_torch.py --what score --a A.pt --b B.pt --samples 1000 --threads 2

Prints one JSON line. Random data stands in for Fashion-MNIST in train (speed does not depend
on pixel values). `score` times the seed's two-pass algorithm (METHOD.md section 2).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dcgan_torch import Discriminator, Generator, weights_init_normal  # noqa: E402


def train(width, iters, batch, warmup=3):
    g, d = Generator(width), Discriminator(width)
    g.apply(weights_init_normal)
    d.apply(weights_init_normal)
    bce = torch.nn.BCELoss()
    og = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, 1, 32, 32) * 2 - 1
    valid, fake = torch.ones(batch, 1), torch.zeros(batch, 1)
    t0 = None
    for i in range(warmup + iters):
        if i == warmup:
            t0 = time.perf_counter()
        z = torch.randn(batch, 100)
        og.zero_grad()
        gen = g(z)
        gl = bce(d(gen), valid)
        gl.backward()
        og.step()
        od.zero_grad()
        dl = (bce(d(real), valid) + bce(d(gen.detach()), fake)) / 2
        dl.backward()
        od.step()
    return iters * batch / (time.perf_counter() - t0)


@torch.no_grad()
def infer(width, iters, batch, warmup=3):
    g = Generator(width).eval()
    t0 = None
    for i in range(warmup + iters):
        if i == warmup:
            t0 = time.perf_counter()
        g(torch.randn(batch, 100))
    return iters * batch / (time.perf_counter() - t0)


def load(path):
    if path.endswith(".safetensors"):  # `unitmatch export --torch-names` output
        from safetensors.torch import load_file

        sd = load_file(path)
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    width = sd["l1.0.bias"].shape[0] / 64 / 128
    g = Generator(width)
    g.load_state_dict(sd)
    return g.eval()


@torch.no_grad()
def score(a_path, b_path, samples, batch):
    """The seed's two passes: per-unit mean/std (averaged per batch), then standardised,
    upsampled (bilinear, align_corners=True) products averaged over batches."""
    ga, gb = load(a_path), load(b_path)
    nb = samples // batch

    def acts(g, i):
        torch.manual_seed(5555 + i)
        _, a = g(torch.randn(batch, 100), with_activations=True)
        return [a["gen.block1"], a["gen.block2"], a["gen.out"]]

    t0 = time.perf_counter()
    stats = {}
    for net, g in (("a", ga), ("b", gb)):
        means, vars_ = None, None
        for i in range(nb):
            xs = acts(g, i)
            m = [x.mean(dim=(0, 2, 3)) for x in xs]
            v = [x.var(dim=(0, 2, 3), unbiased=False) for x in xs]
            means = m if means is None else [p + q for p, q in zip(means, m)]
            vars_ = v if vars_ is None else [p + q for p, q in zip(vars_, v)]
        stats[net] = ([m / nb for m in means], [(v / nb).sqrt() for v in vars_])
    table = None
    for i in range(nb):
        xa, xb = acts(ga, i), acts(gb, i)
        rows = []
        for la, (x, m, s) in enumerate(zip(xa, *stats["a"])):
            x = (x - m[None, :, None, None]) / s[None, :, None, None]
            cols = []
            for lb, (y, mb, sb) in enumerate(zip(xb, *stats["b"])):
                y = (y - mb[None, :, None, None]) / sb[None, :, None, None]
                size = max(x.shape[-1], y.shape[-1])
                xu = F.interpolate(x, size=size, mode="bilinear", align_corners=True) if x.shape[-1] < size else x
                yu = F.interpolate(y, size=size, mode="bilinear", align_corners=True) if y.shape[-1] < size else y
                cols.append(torch.einsum("nihw,njhw->ij", xu, yu) / (batch * size * size))
            rows.append(torch.cat(cols, dim=1))
        t = torch.cat(rows, dim=0)
        table = t if table is None else table + t
    table = table / nb
    return samples / (time.perf_counter() - t0), table


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--what", choices=["train", "infer", "score"], required=True)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--a")
    p.add_argument("--b")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--save-table")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = {"framework": f"torch {torch.__version__}", "what": args.what, "threads": args.threads}
    if args.what == "train":
        out.update(width=args.width, batch=args.batch, img_per_s=train(args.width, args.iters, args.batch))
    elif args.what == "infer":
        out.update(width=args.width, batch=args.batch, img_per_s=infer(args.width, args.iters, args.batch))
    else:
        rate, table = score(args.a, args.b, args.samples, args.batch)
        out.update(samples=args.samples, batch=args.batch, samples_per_s=rate)
        if args.save_table:
            import numpy as np
            np.save(args.save_table, table.numpy().astype(np.float64))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
