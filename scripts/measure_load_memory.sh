#!/bin/sh
# measure_load_memory.sh — peak host memory of loading a whole model onto a
# device with `mlxn inspect --load DEVICE`, measured by /usr/bin/time -v
# (falls back to the ru_maxrss that inspect prints). Runs on a generated
# llama-shaped Q4_0 GGUF of SIZE_MB (scripts/make_big_gguf.py) and on the
# SmolLM2 GGUF from the cache when present. The loader's target: peak RSS
# well under twice the model size (CPU is zero-copy; CUDA streams staged
# uploads and drops uploaded pages).
# usage: scripts/measure_load_memory.sh [DEVICE (default cpu)] [SIZE_MB (default 2048)]
# env:   MLXN (path of the mlxn binary; default build/mlxn), TMPDIR
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEV="${1:-cpu}"
SIZE="${2:-2048}"
MLXN="${MLXN:-$ROOT/build/mlxn}"
BIG="${TMPDIR:-/tmp}/mlxn_big_${SIZE}.gguf"
[ -x "$MLXN" ] || { echo "measure_load_memory: $MLXN not built" >&2; exit 1; }
[ -f "$BIG" ] || python3 "$ROOT/scripts/make_big_gguf.py" "$BIG" "$SIZE"
SMOL="${MLXN_DEFAULT_MODEL:-${MLXN_CACHE:-$HOME/.cache/mlxn}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
for m in "$BIG" "$SMOL"; do
    [ -f "$m" ] || { echo "measure_load_memory: $m absent, skipped"; continue; }
    sz=$(stat -c %s "$m")
    echo "== $m ($((sz / 1048576)) MiB) -> $DEV"
    log="${TMPDIR:-/tmp}/mlxn_measure_$$"
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -v "$MLXN" inspect --no-tensors --load "$DEV" "$m" >"$log.inspect" 2>"$log.time" || {
            cat "$log.inspect" "$log.time"; exit 1; }
        grep -E "^load onto|peak host RSS" "$log.inspect"
        rss=$(grep "Maximum resident set size" "$log.time" | awk '{print $NF}')
        rm -f "$log.inspect" "$log.time"
        awk -v r="$rss" -v s="$sz" 'BEGIN { printf "  /usr/bin/time -v: max RSS %.1f MiB = %.3fx the file size\n", r/1024, r*1024/s }'
    else
        "$MLXN" inspect --no-tensors --load "$DEV" "$m" | grep -E "^load onto|peak host RSS"
    fi
done
