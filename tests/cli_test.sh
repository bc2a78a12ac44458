#!/bin/sh
# cli_test.sh — end-to-end checks of the mlxn command-line tool: --help of
# every command, bad input (missing model file, unsupported architecture,
# prompt longer than the context, non-UTF-8 prompt, bad flag values) gives a
# one-line "error: ..." and a non-zero exit (never a crash: exit codes >= 128
# fail the test), and with a model: generate streams text, chat works under a
# plain pipe and keeps the conversation, bench prints its table.
#
# usage: tests/cli_test.sh MLXN_BINARY [MODEL]
#   MODEL defaults to $MLXN_SMOLLM2_GGUF, $MLXN_DEFAULT_MODEL, then
#   ${MLXN_CACHE:-~/.cache/mlxn}/models/SmolLM2-135M-Instruct.Q4_1.gguf; the
#   model-dependent checks fail (not skip) when it is missing.
# Prints "N passed, N failed" and exits non-zero if anything failed.
set -u
BIN=${1:?usage: cli_test.sh MLXN_BINARY [MODEL]}
MODEL=${2:-${MLXN_SMOLLM2_GGUF:-${MLXN_DEFAULT_MODEL:-${MLXN_CACHE:-$HOME/.cache/mlxn}/models/SmolLM2-135M-Instruct.Q4_1.gguf}}}
DEV=${MLXN_TEST_DEVICE:-cpu}
TMP=$(mktemp -d /tmp/mlxn_cli_test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -f "$TMP/err" ] && sed 's/^/    /' "$TMP/err" | head -5; }

# expect_fail NAME EXPECTED_SUBSTRING CMD...: non-zero exit below 128, message on stderr
expect_fail() {
    name=$1; want=$2; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
    rc=$?
    if [ $rc -eq 0 ]; then bad "$name (exit 0)"; return; fi
    if [ $rc -ge 128 ]; then bad "$name (crashed: exit $rc)"; return; fi
    if ! grep -q -- "$want" "$TMP/err"; then bad "$name (stderr lacks '$want')"; return; fi
    ok "$name"
}

expect_ok() {
    name=$1; shift
    "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc -ne 0 ]; then bad "$name (exit $rc)"; return 1; fi
    ok "$name"
}

for cmd in generate chat bench inspect convert; do
    expect_ok "$cmd --help" "$BIN" $cmd --help </dev/null
    grep -q "usage" "$TMP/out" || bad "$cmd --help prints usage"
done
expect_ok "--help" "$BIN" --help
expect_ok "--version" "$BIN" --version
expect_fail "unknown command" "unknown command" "$BIN" frobnicate
expect_fail "missing model file" "not found" "$BIN" generate -m "$TMP/nope.gguf" -p hi --device "$DEV"
expect_fail "not a model file" "error" "$BIN" generate -m "$0" -p hi --device "$DEV"

# a GGUF v3 with general.architecture = "gpt2" and no tensors
printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000' >"$TMP/gpt2.gguf"
printf '\024\000\000\000\000\000\000\000general.architecture\010\000\000\000' >>"$TMP/gpt2.gguf"
printf '\004\000\000\000\000\000\000\000gpt2' >>"$TMP/gpt2.gguf"
expect_fail "unsupported architecture" "gpt2" "$BIN" generate -m "$TMP/gpt2.gguf" -p hi --device "$DEV"
expect_fail "bad flag value" "--temp" "$BIN" generate -m "$MODEL" -p hi --temp abc
expect_fail "unknown flag" "unknown option" "$BIN" generate -m "$MODEL" -p hi --frobnicate

if [ ! -f "$MODEL" ]; then
    bad "model-dependent checks: model not found at $MODEL (set MLXN_SMOLLM2_GGUF or run scripts/fetch_default_model.sh)"
else
    expect_fail "non-UTF-8 prompt" "UTF-8" "$BIN" generate -m "$MODEL" -p "$(printf 'caf\351 au lait')" --device "$DEV"
    long=$(i=0; while [ $i -lt 200 ]; do printf 'word '; i=$((i + 1)); done)
    expect_fail "prompt longer than the context" "context" "$BIN" generate -m "$MODEL" -p "$long" -c 32 --device "$DEV"
    if expect_ok "generate" "$BIN" generate -m "$MODEL" -p "What is the capital of France?" -n 12 --device "$DEV"; then
        [ -s "$TMP/out" ] || bad "generate printed text"
        grep -q "tok/s" "$TMP/err" && grep -q "peak memory" "$TMP/err" || bad "generate timing summary"
    fi
    if expect_ok "generate --raw --temp --seed" "$BIN" generate -m "$MODEL" -p "Once upon a time" --raw -n 8 \
        --temp 0.8 --top-k 20 --top-p 0.9 --min-p 0.02 --repeat-penalty 1.1 --seed 7 --no-stats --device "$DEV"; then
        cp "$TMP/out" "$TMP/seed1"
        "$BIN" generate -m "$MODEL" -p "Once upon a time" --raw -n 8 --temp 0.8 --top-k 20 --top-p 0.9 \
            --min-p 0.02 --repeat-penalty 1.1 --seed 7 --no-stats --device "$DEV" >"$TMP/seed2" 2>/dev/null
        cmp -s "$TMP/seed1" "$TMP/seed2" && ok "same seed, same text" || bad "same seed, same text"
    fi
    if expect_ok "chat under a pipe" sh -c "printf 'Hello, my name is Bob.\nWhat is my name?\n' | \"$BIN\" chat -m \"$MODEL\" -n 24 --device $DEV"; then
        n=$(grep -c "prompt tok" "$TMP/err")
        [ "$n" -eq 2 ] && ok "chat answered two turns" || bad "chat answered two turns ($n)"
        grep -q "(.* new)" "$TMP/err" && ok "chat reports reused prefix" || bad "chat reports reused prefix"
    fi
    if expect_ok "bench" "$BIN" bench -m "$MODEL" -p 16 -n 4 -r 2 --device "$DEV"; then
        grep -q "pp16" "$TMP/out" && grep -q "tg4" "$TMP/out" && ok "bench table" || bad "bench table"
    fi
    if expect_ok "bench at depth" "$BIN" bench -m "$MODEL" -p 0 -n 4 -d 0,20 -r 1 --device "$DEV"; then
        grep -q "| tg4 |" "$TMP/out" && grep -q "| tg4 @ d20 |" "$TMP/out" && ok "bench depth rows" || bad "bench depth rows"
    fi
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
