#!/usr/bin/env bash
# The sanitizer suites (docs/errors.md, "Sanitizers"), called by scripts/test.sh after the release suite:
#   asan  clang-14, AddressSanitizer + UndefinedBehaviorSanitizer (every finding fatal), OpenMP on libomp: the whole
#         CTest suite, plus a replay of every fuzz seed and regression input (the fuzz targets are built here too).
#   tsan  clang-14, ThreadSanitizer, CONVKIT_OPENMP=OFF (libgomp is not instrumented, so TSan could not see its
#         synchronisation): the tests of the threaded code, i.e. the thread pool, the Conv2D engine (GEMM, implicit
#         GEMM, depthwise, Winograd), pooling, training and resume/determinism executables, each run whole in one
#         process.
# Usage: scripts/sanitize.sh [asan] [tsan]   (both by default)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"
which=("$@")
[ ${#which[@]} -eq 0 ] && which=(asan tsan)

for preset in "${which[@]}"; do
  start=$SECONDS
  case "$preset" in
    asan)
      cmake --preset asan
      cmake --build --preset asan
      ctest --preset asan -j "$jobs"
      ;;
    tsan)
      tsan_tests=(tests/ops/test_ops_thread_pool tests/ops/test_ops_conv2d tests/ops/test_ops_engine
                  tests/ops/test_ops_winograd tests/pool/test_pool2d
                  tests/pool/test_pool2d_fast tests/nn/test_nn_training tests/errors/test_errors_fit_resume)
      cmake --preset tsan
      cmake --build --preset tsan --target $(for t in "${tsan_tests[@]}"; do basename "$t"; done)
      export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
      for t in "${tsan_tests[@]}"; do
        echo "tsan: $t"
        # Three threads whatever the machine: every parallel_for split runs concurrently even on 2 cores.
        CONVKIT_NUM_THREADS=3 "build/tsan/$t" --gtest_brief=1
      done
      ;;
    *) echo "sanitize.sh: unknown suite '$preset' (expected asan or tsan)" >&2; exit 2 ;;
  esac
  echo "sanitize.sh: $preset done in $((SECONDS - start)) s"
done
