#!/usr/bin/env bash
# Configures and builds convkit (Release, Ninja) into build/release.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release
cmake --build --preset release
