#!/usr/bin/env bash
# Installs what convkit needs on a Debian 12 machine (build tools, libraries, the PyTorch oracle for the tests).
# Idempotent: when every package is already installed it does nothing, not even `apt-get update`.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config   # toolchain: g++ 12, CMake >= 3.25, Ninja
  libgtest-dev                                   # GoogleTest
  libcli11-dev                                   # command-line parsing
  nlohmann-json3-dev                             # JSON (test manifests; model architectures; safetensors headers)
  zlib1g-dev                                     # gzip-compressed IDX datasets
  libpng-dev libjpeg-dev                         # PNG and JPEG images (libjpeg-dev is libjpeg-turbo)
  dataset-fashion-mnist                          # the default dataset, /usr/share/datasets/fashion-mnist
  python3 python3-numpy python3-torch            # /usr/bin/python3 with NumPy and PyTorch: the test oracle
  python3-pil                                    # Pillow: an independent PNG/JPEG codec for the image tests
  chromium                                       # headless browser: the visualize index page test
  time                                           # /usr/bin/time: peak memory in bench/train_throughput.py
  clang-14 libclang-rt-14-dev libomp-14-dev      # sanitizer builds and libFuzzer (scripts/sanitize.sh, fuzz.sh)
  libdnnl-dev                                    # oneDNN: optional side-by-side in `convkit bench --vs onednn`
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
