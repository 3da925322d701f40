#!/usr/bin/env bash
# Makes sure Fashion-MNIST is where unitmatch looks for it (UNITMATCH_DATA, else the Debian
# package's folder). Installs the Debian package when run as root on Debian/Ubuntu; otherwise
# says how to get the files.
set -euo pipefail
dir="${UNITMATCH_DATA:-/usr/share/datasets/fashion-mnist}"
if ls "$dir"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq dataset-fashion-mnist
elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
  sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist
else
  echo "Fashion-MNIST not found in $dir." >&2
  echo "Install the Debian package dataset-fashion-mnist, or run:" >&2
  echo "  cargo run --release -- data fetch --dir DIR && export UNITMATCH_DATA=DIR" >&2
  exit 1
fi
