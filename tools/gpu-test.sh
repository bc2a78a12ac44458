#!/usr/bin/env bash
# gpu-test.sh — the whole CUDA check on a GPU machine in one command: builds
# mlxn (Release, -j16), runs every test that exercises the CUDA backend with
# MLXN_REQUIRE_CUDA=1 (so "no GPU" is a failure, not a skip), runs
# compute-sanitizer memcheck and racecheck over the CUDA device test, runs the
# benchmark (unless GPU_TEST_BENCH=0) and prints a summary table.
# Logs go to $OUT (or <build>/gpu-test-logs). Exit status: 0 when all passed.
#   BUILD=dir   build directory (default <repo>/build-gpu)
#   OUT=dir     log directory
#   GPU_TEST_BENCH=0   skip the benchmark;  GPU_TEST_SHARED=0  skip test_ops/test_quant
#   SKIP_NVRTC=1      skip the NVRTC compile-all test (CI runs it)
#   GPU_TEST_DECODE=0 skip the MLX 4-bit decode-vs-prefill check (GPU_TEST_DECODE_MODEL=dir: its model)
#   T_TEST / T_SAN / T_BENCH   per-step time limits in seconds (default 300 / 240 / 300)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-gpu}
OUT=${OUT:-$BUILD/gpu-test-logs}
mkdir -p "$OUT"
export MLXN_REQUIRE_CUDA=1
export MLXN_CACHE_DIR=${MLXN_CACHE_DIR:-$BUILD/kernel-cache}
export MLXN_TEST_DATA=$ROOT/tests/data MLXN_SOURCE_DIR=$ROOT
# the GPU machine has no jansson/pcre2/utf8proc dev packages: a carried .gpudeps/
# (headers + static libs + .pc files, git-ignored) provides them when present
[ -d "$ROOT/.gpudeps/pkgconfig" ] && export PKG_CONFIG_PATH="$ROOT/.gpudeps/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
declare -a NAMES RESULTS DETAILS
note() { NAMES+=("$1"); RESULTS+=("$2"); DETAILS+=("$3"); }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1
echo "GPU: $(cat "$OUT/gpu.txt")"

# ---- build: everything if it builds, else just the CUDA-relevant targets
# CMAKE_EXTRA: extra configure arguments (e.g. -DCMAKE_EXE_LINKER_FLAGS=...)
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMLXN_BUILD_SHARED=OFF ${CMAKE_EXTRA:-} > "$OUT/cmake.log" 2>&1
TARGETS="test_cuda_nvrtc test_cuda_device test_ops test_quant bench_cuda_ops"
if cmake --build "$BUILD" -j16 > "$OUT/build.log" 2>&1; then
    note build PASS "full build"
else
    built=""
    for t in $TARGETS; do
        if cmake --build "$BUILD" -j16 --target "$t" >> "$OUT/build.log" 2>&1; then built="$built $t"; fi
    done
    note build PARTIAL "full build failed (see build.log); built:$built"
fi

run_test() { # name binary [env...]
    local name=$1 bin=$2
    shift 2
    if [ ! -x "$bin" ]; then note "$name" MISSING "not built"; return; fi
    local t0=$(date +%s)
    timeout "${T_TEST:-300}" env "$@" "$bin" > "$OUT/$name.log" 2>&1
    local rc=$? dt=$(( $(date +%s) - t0 ))
    local line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$OUT/$name.log" | tail -1)
    if [ $rc -eq 0 ]; then note "$name" PASS "${line:-rc 0} (${dt}s)"
    else note "$name" FAIL "rc $rc ${line} (${dt}s)"; grep -E "FAIL|error" "$OUT/$name.log" | head -20; fi
}

# ---- tests (cuda-specific first, then the shared cross-backend tables)
[ "${SKIP_NVRTC:-0}" = 1 ] || run_test test_cuda_nvrtc "$BUILD/tests/test_cuda_nvrtc"
run_test test_cuda_device "$BUILD/tests/test_cuda_device"
[ "${GPU_TEST_SHARED:-1}" = 0 ] || for t in test_ops test_quant; do
    # only the shared tables that open the cuda device
    grep -q '"cuda"' "$ROOT/tests/$t.c" 2>/dev/null || continue
    [ -x "$BUILD/tests/$t" ] && run_test "$t" "$BUILD/tests/$t" MLXN_TEST_DEVICES=${MLXN_TEST_DEVICES:-cuda}
done

# ---- an MLX 4-bit model's decode step (the streamed int8-MMA matmuls, which
# the SmolLM2 GGUF never reaches) against its batched prefill: a random
# Llama-3.2-1B-shaped directory (~0.7 GB, made once; GPU_TEST_DECODE=0 skips)
if [ "${GPU_TEST_DECODE:-1}" != 0 ] && [ -x "$BUILD/tests/test_model" ]; then
    DM=${GPU_TEST_DECODE_MODEL:-$BUILD/random-llama3.2-1b}
    [ -f "$DM/config.json" ] || python3 "$ROOT/scripts/make_random_mlx_model.py" --preset llama3.2-1b --out "$DM" \
        > "$OUT/decode_model.log" 2>&1
    if [ -f "$DM/config.json" ]; then
        run_test test_model_mlx4 "$BUILD/tests/test_model" MLXN_TEST_DEVICE=cuda MLXN_TEST_DECODE_MODEL="$DM" \
            MLXN_TEST_FILTER=decode_paths_agree_mlx4
        grep -h "decode vs batched" "$OUT/test_model_mlx4.log" 2>/dev/null
    else
        note test_model_mlx4 MISSING "could not make the random model (see decode_model.log)"
    fi
fi

# ---- compute-sanitizer
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
if [ -n "$CS" ] && [ -x "$BUILD/tests/test_cuda_device" ]; then
    for tool in memcheck racecheck; do
        filt=${MEMCHECK_FILTER:-}
        # racecheck is slow: the cases whose kernels share memory between threads
        [ $tool = racecheck ] && filt="test_norms,test_softmax,test_attention,test_rope_kv_attention,test_graph,test_matmul_fused,test_matmul_streamed"
        t0=$(date +%s)
        MLXN_TEST_FILTER=$filt timeout "${T_SAN:-240}" "$CS" --tool $tool --error-exitcode 99 --print-limit 20 \
            "$BUILD/tests/test_cuda_device" > "$OUT/sanitizer_$tool.log" 2>&1
        rc=$?
        summ=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer_$tool.log" | tail -1)
        line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$OUT/sanitizer_$tool.log" | tail -1)
        dt=$(( $(date +%s) - t0 ))
        if [ $rc -eq 0 ]; then note "sanitizer $tool" PASS "$summ; $line (${dt}s)"
        else note "sanitizer $tool" FAIL "rc $rc; $summ; $line (${dt}s)"; grep -m 10 -E "=========" "$OUT/sanitizer_$tool.log"; fi
    done
else
    note sanitizer MISSING "compute-sanitizer not found or test not built"
fi

# ---- benchmark
if [ "${GPU_TEST_BENCH:-1}" != 0 ] && [ -x "$BUILD/bench_cuda_ops" ]; then
    timeout "${T_BENCH:-300}" "$BUILD/bench_cuda_ops" "$OUT/BENCHMARKS.cuda.md" > "$OUT/bench.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] && note bench PASS "table in BENCHMARKS.cuda.md" || note bench FAIL "rc $rc"
    cat "$OUT/bench.log"
fi

# ---- summary
echo
echo "==== gpu-test summary ($(cat "$OUT/gpu.txt" | head -1)) ===="
fail=0
for i in "${!NAMES[@]}"; do
    printf "%-22s %-8s %s\n" "${NAMES[$i]}" "${RESULTS[$i]}" "${DETAILS[$i]}"
    case "${RESULTS[$i]}" in FAIL|MISSING) fail=1 ;; esac
done
exit $fail
