#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/, built by the asan preset: scripts/sanitize.sh asan builds them) for a bounded
# time under AddressSanitizer + UndefinedBehaviorSanitizer, starting from its seed corpus and regression inputs.
# A crash, a sanitizer report, a leak, a timeout (> 10 s on one input) or running out of memory (> 2 GiB) fails
# the script; the input that did it is left in build/asan/fuzz-findings/ (copy it into fuzz/regressions/<target>/
# once fixed: CTest replays those). New coverage-increasing inputs go to build/asan/fuzz-corpus/, never into the
# repository's seed corpus.
# Usage: scripts/fuzz.sh [seconds per target, default $CONVKIT_FUZZ_SECONDS or 30] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${CONVKIT_FUZZ_SECONDS:-30}}"
shift || true
bin=build/asan/fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$bin"/fuzz_*; do [ -x "$f" ] && targets+=("$(basename "$f" | sed 's/^fuzz_//')"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets in $bin (run scripts/sanitize.sh asan first)" >&2; exit 2; }
mkdir -p build/asan/fuzz-findings build/asan/fuzz-corpus build/asan/fuzz-logs
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"

run_one() {
  local t="$1" dirs=()
  mkdir -p "build/asan/fuzz-corpus/$t"
  dirs=("build/asan/fuzz-corpus/$t" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  if "$bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="build/asan/fuzz-findings/$t-" "${dirs[@]}" > "build/asan/fuzz-logs/$t.log" 2>&1; then
    echo "fuzz $t: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "build/asan/fuzz-logs/$t.log" | grep -o '[0-9]*$') runs in ${seconds} s)"
  else
    echo "fuzz $t: FAILED; log:"; tail -n 60 "build/asan/fuzz-logs/$t.log"; return 1
  fi
}

# One fuzzer per core (each is single-threaded).
failed=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$(nproc)" ]; then wait -n || failed=1; running=$((running - 1)); fi
done
while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
if [ "$failed" -ne 0 ]; then echo "fuzz.sh: a fuzz target failed (inputs in build/asan/fuzz-findings/)" >&2; exit 1; fi
echo "fuzz.sh: ${#targets[@]} targets, ${seconds} s each: no findings"
