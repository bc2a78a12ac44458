#!/usr/bin/env bash
# gpu-e2e.sh — end-to-end checks and benchmarks on a GPU machine, after
# tools/gpu-test.sh has built mlxn in $BUILD: the model tests and CLI tests
# on CUDA, a generation with the default model, and `mlxn bench` (pp512 /
# tg128) on the real SmolLM2 GGUF (when $MLXN_DEFAULT_MODEL exists) and on
# random-weight MLX 4-bit g64 directories of the SmolLM2-135M and
# Llama-3-8B shapes written by scripts/make_random_mlx_model.py.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-gpu}
MLXN=$BUILD/mlxn
WORK=${WORK:-/tmp/mlxn-e2e}
mkdir -p "$WORK"
export MLXN_TEST_DATA=$ROOT/tests/data MLXN_SOURCE_DIR=$ROOT
step() { echo; echo "=== $*"; }

step "test_model on cuda"
MLXN_TEST_DEVICE=cuda timeout "${T_MODEL:-150}" "$BUILD/tests/test_model" 2>&1 | grep -vE '^ok ' | tail -30

step "cli_test on cuda"
MLXN_TEST_DEVICE=cuda timeout 90 sh "$ROOT/tests/cli_test.sh" "$MLXN" 2>&1 | tail -8

if [ -f "${MLXN_DEFAULT_MODEL:-}" ]; then
  step "generate (default model, cuda)"
  timeout 60 "$MLXN" generate --device cuda -m "$MLXN_DEFAULT_MODEL" -p "What is the capital of France?" -n 40 2>&1 | tail -6
  step "bench SmolLM2-135M-Instruct Q4_1 GGUF (real weights)"
  timeout 120 "$MLXN" bench --device cuda -m "$MLXN_DEFAULT_MODEL" -p 512 -n 128 -d 0,1024 -r 5 2>&1 | tail -8
fi

for preset in smollm2-135m llama3-8b; do
  step "bench random $preset MLX 4-bit g64"
  python3 "$ROOT/scripts/make_random_mlx_model.py" --preset $preset --out "$WORK/$preset" 2>/dev/null >/dev/null || { echo "could not write $preset"; continue; }
  du -sh "$WORK/$preset" | cut -f1
  timeout 150 "$MLXN" bench --device cuda -m "$WORK/$preset" -p 512 -n 128 -r 3 2>&1 | tail -6
  rm -rf "$WORK/$preset"
done
