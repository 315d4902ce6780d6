#!/usr/bin/env bash
# The test command of the README: installs what is needed, builds, and runs the whole test suite
# (GoogleTest unit tests, the PyTorch differential suite, CLI tests, the find_package consumer test), then the
# sanitizer suites and the fuzzers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
ctest --preset release -j "$(nproc)"
# Hardening (docs/errors.md): the ASan+UBSan and TSan suites, then every fuzz target for a bounded time.
./scripts/sanitize.sh
./scripts/fuzz.sh "${CONVKIT_FUZZ_SECONDS:-30}"
