#!/usr/bin/env bash
# Interleaved throughput comparison: unitmatch (burn-flex) vs PyTorch CPU, same model, loop,
# batch and thread count. Needs `pip install torch numpy`. Usage:
#   bench/compare_torch.sh [threads] [widths...]      e.g. bench/compare_torch.sh 2 1 0.5
# Prints one JSON line per measurement (ours, then PyTorch, alternating).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
shift || true
widths=${*:-1}
cargo build --release --bench throughput >/dev/null 2>&1
bin=$(ls -t target/release/deps/throughput-* | grep -v '\.d$' | head -1)
for w in $widths; do
  for round in 1 2; do
    "$bin" train --width "$w" --iters 20 --threads "$threads"
    python3 bench/bench_torch.py --what train --width "$w" --iters 20 --threads "$threads"
    "$bin" infer --width "$w" --iters 40 --threads "$threads"
    python3 bench/bench_torch.py --what infer --width "$w" --iters 40 --threads "$threads"
  done
done
