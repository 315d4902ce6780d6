#!/usr/bin/env bash
# The test command of the README: installs what is needed, builds, and runs the whole test suite
# (GoogleTest unit tests, the PyTorch differential suite, CLI tests, the find_package consumer test).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
ctest --preset release -j "$(nproc)"
