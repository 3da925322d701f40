"""Independent PyTorch check of a `unitmatch compare` table (not used by CI).

    unitmatch export A.safetensors --torch-names --out a_t.safetensors   (same for B)
    python3 -c "import numpy as np; np.save('z.npy', np.random.default_rng(0).standard_normal((2000, 100)).astype('float32'))"
    unitmatch compare A.safetensors B.safetensors --z z.npy --out cmp
    python3 bench/check_table.py --a a_t.safetensors --b b_t.safetensors --z z.npy --table cmp/table.npy

Computes the exact Pearson table in float64 from raw sums (a different algorithm from
unitmatch's centred co-moments), with F.interpolate(bilinear, align_corners=True), and prints
the largest absolute difference.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import load  # noqa: E402

NAMES = ["gen.block1", "gen.block2", "gen.out"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--z", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--batch", type=int, default=100)
    a = p.parse_args()
    ga, gb = load(a.a), load(a.b)
    z = torch.from_numpy(np.load(a.z))
    sums = {}
    with torch.no_grad():
        for i in range(0, len(z), a.batch):
            _, xa = ga(z[i:i + a.batch], with_activations=True)
            _, xb = gb(z[i:i + a.batch], with_activations=True)
            for la, na in enumerate(NAMES):
                for lb, nb in enumerate(NAMES):
                    x, y = xa[na].double(), xb[nb].double()
                    size = max(x.shape[-1], y.shape[-1])
                    if x.shape[-1] < size:
                        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
                    if y.shape[-1] < size:
                        y = F.interpolate(y, size=size, mode="bilinear", align_corners=True)
                    x = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
                    y = y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])
                    s = sums.setdefault((la, lb), [0, 0, 0, 0, 0, 0])
                    s[0] += x.shape[0]
                    s[1] = s[1] + x.sum(0)
                    s[2] = s[2] + y.sum(0)
                    s[3] = s[3] + (x * x).sum(0)
                    s[4] = s[4] + (y * y).sum(0)
                    s[5] = s[5] + x.T @ y
    rows = []
    for la in range(3):
        cols = []
        for lb in range(3):
            n, sx, sy, sxx, syy, sxy = sums[(la, lb)]
            cov = sxy / n - torch.outer(sx / n, sy / n)
            vx, vy = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
            den = torch.sqrt(torch.outer(vx, vy))
            cols.append(torch.where(den > 0, cov / den.clamp_min(1e-300), torch.zeros_like(cov)))
        rows.append(torch.cat(cols, dim=1))
    ref = torch.cat(rows, dim=0).numpy()
    ours = np.load(a.table).astype(np.float64)
    diff = float(np.abs(ours - ref).max())
    print(json.dumps({"units": list(ours.shape), "samples": len(z), "max_abs_diff": diff}))


if __name__ == "__main__":
    main()
