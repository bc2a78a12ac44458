#!/bin/sh
# run_fuzz.sh — build the libFuzzer targets in fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) and run each for a bounded time on
# its seed corpus (fuzz/corpus/<name>/, read only; new inputs go to a scratch
# copy). Exits non-zero if any target crashes, leaks or trips a sanitizer;
# the crashing input is left in the build dir (crash-*, leak-*, timeout-*).
# usage: scripts/run_fuzz.sh [SECONDS_PER_TARGET (default 30)] [TARGET...]
# env:   BUILD (default build-fuzz), JOBS (default 2), CC (default clang),
#        FUZZ_SEED (libFuzzer seed, default 1: CI runs are reproducible; 0 = random)
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS="${1:-30}"
[ $# -gt 0 ] && shift
BUILD="${BUILD:-$ROOT/build-fuzz}"
JOBS="${JOBS:-2}"
CC="${CC:-clang}"
TARGETS="${*:-fuzz_safetensors fuzz_gguf fuzz_config_json fuzz_tokenizer_json}"

echo "run_fuzz: configuring $BUILD with $CC" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Debug -DMLXN_FUZZ=ON \
      -DMLXN_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target $TARGETS

fail=0
for t in $TARGETS; do
    name="${t#fuzz_}"
    seeds="$ROOT/fuzz/corpus/$name"
    work="$BUILD/fuzz-work/$name"
    mkdir -p "$work"
    echo "run_fuzz: $t for ${SECS}s (seeds: $seeds)" >&2
    # -rss_limit_mb bounds memory; -max_len fits the seeds; leaks are detected (ASan/LSan)
    if ! (cd "$BUILD" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
          "./fuzz/$t" -seed="${FUZZ_SEED:-1}" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
          -print_final_stats=1 "$work" "$seeds" 2>"$work.log"); then
        echo "run_fuzz: $t FAILED; last lines of $work.log:" >&2
        tail -n 40 "$work.log" >&2
        fail=1
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work.log" | sed "s/^/run_fuzz: $t /" >&2 || true
        echo "run_fuzz: $t ok" >&2
    fi
done
exit $fail
