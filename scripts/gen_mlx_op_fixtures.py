#!/usr/bin/env python3
"""Generate the MLX golden fixtures for tests/test_ops_mlx.c.

Each case runs one op in MLX itself (PyPI `mlx` + `mlx-cpu`, CPU stream):
  - mx.fast.rms_norm (f32 and f16, with and without weight)
  - mx.fast.rope, traditional=True (adjacent pairs) and False (half-split),
    partial rotary dims, offsets, scale (linear scaling), and mlx-lm's
    Llama3RoPE (Llama-3 frequency scaling, via mx.fast.rope(freqs=...))
  - mx.fast.layer_norm (with weight and bias, and without), mlx.nn.gelu
    (erf), mlx.nn.gelu_approx (tanh form), mlx.nn.silu, and mx.softmax of
    scale * x + an additive mask (f32, precise=True)
  - mx.fast.scaled_dot_product_attention with GQA, causal mask (prefill and
    decode), no mask, and an explicit sliding-window mask; plus one softcapped
    attention composed from MLX ops (mx.fast SDPA has no softcap).
and writes its inputs and outputs as raw little-endian arrays into
tests/data/mlx_ops/<case>.<array>.bin with a line per case in
tests/data/mlx_ops/manifest.txt:

    <op> <case> key=value ...

Array files: f32 unless the case has dtype=f16 (then x/w/y are f16 bits).
Layouts are mlxn's: rope x/y [T, H, D]; attention q/out [T, Hq, D],
k/v [Hkv, C, D] with C = kv_len (positions NULL: query t sits at
kv_len - T + t, which is MLX's causal alignment for Tq < Tk).

Usage: /work/venv/bin/python scripts/gen_mlx_op_fixtures.py [outdir]
"""
import os
import sys

import numpy as np
import mlx.core as mx

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "mlx_ops")
mx.set_default_device(mx.cpu)
rng = np.random.default_rng(20261125)
lines = []


def save(case, name, arr, dtype=np.float32):
    a = np.ascontiguousarray(np.asarray(arr).astype(dtype))
    a.tofile(os.path.join(OUT, f"{case}.{name}.bin"))


def rand(*shape, lo=-2.0, hi=2.0):
    a = rng.uniform(lo, hi, size=shape).astype(np.float32)
    a[a == 0] = 0.5
    return a


def rms_case(case, R, D, eps, weight, dtype="f32"):
    x = rand(R, D)
    w = rand(D, lo=0.5, hi=1.5)
    npdt = np.float16 if dtype == "f16" else np.float32
    x = x.astype(npdt)
    w = w.astype(npdt)
    y = mx.fast.rms_norm(mx.array(x), mx.array(w) if weight else None, eps)
    y = np.array(y)
    save(case, "x", x, npdt)
    if weight:
        save(case, "w", w, npdt)
    save(case, "y", y, npdt)
    lines.append(f"rms_norm {case} R={R} D={D} eps={eps!r} weight={int(weight)} dtype={dtype}")


def rope_case(case, T, H, D, dims, traditional, base, scale, offset):
    x = rand(T, H, D)
    # MLX treats the second-to-last axis as the sequence: feed [H, T, D]
    xm = mx.array(np.transpose(x, (1, 0, 2)))
    y = mx.fast.rope(xm, dims, traditional=traditional, base=base, scale=scale, offset=offset)
    y = np.transpose(np.array(y), (1, 0, 2))
    save(case, "x", x)
    save(case, "y", y)
    mode = "adjacent" if traditional else "half"
    lines.append(f"rope {case} T={T} H={H} D={D} dims={dims} mode={mode} base={base!r} scale={scale!r} offset={offset}")


def rope_llama3_case(case, T, H, D, base, factor, low, high, omp, offset):
    from mlx_lm.models.rope_utils import Llama3RoPE
    r = Llama3RoPE(D, traditional=False, base=base,
                   scaling_config={"factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                                   "original_max_position_embeddings": omp})
    x = rand(T, H, D)
    y = r(mx.array(np.transpose(x, (1, 0, 2))), offset=offset)
    y = np.transpose(np.array(y), (1, 0, 2))
    save(case, "x", x)
    save(case, "y", y)
    lines.append(f"rope_llama3 {case} T={T} H={H} D={D} base={base!r} factor={factor!r} low={low!r} high={high!r} "
                 f"omp={omp} offset={offset}")


def layer_norm_case(case, R, D, eps, affine):
    x = rand(R, D, lo=-3.0, hi=3.0)
    w = rand(D, lo=0.5, hi=1.5)
    b = rand(D, lo=-0.5, hi=0.5)
    y = np.array(mx.fast.layer_norm(mx.array(x), mx.array(w) if affine else None, mx.array(b) if affine else None, eps))
    save(case, "x", x)
    if affine:
        save(case, "w", w)
        save(case, "b", b)
    save(case, "y", y)
    lines.append(f"layer_norm {case} R={R} D={D} eps={eps!r} affine={int(affine)}")


def act_case(case, fn, R, D):
    import mlx.nn as nn
    x = rand(R, D, lo=-6.0, hi=6.0)
    f = {"gelu_erf": nn.gelu, "gelu_tanh": nn.gelu_approx, "silu": nn.silu}[fn]
    y = np.array(f(mx.array(x)))
    save(case, "x", x)
    save(case, "y", y)
    lines.append(f"act {case} fn={fn} R={R} D={D}")


def softmax_case(case, R, N, scale):
    x = rand(R, N, lo=-8.0, hi=8.0)
    m = rand(R, N, lo=-3.0, hi=1.0)
    m[rng.uniform(size=m.shape) < 0.25] = -np.inf
    m[:, 0] = 0.0  # keep every row partly visible (MLX gives NaN for a fully masked row)
    y = np.array(mx.softmax(mx.array(x) * scale + mx.array(m), axis=-1, precise=True))
    save(case, "x", x)
    save(case, "m", m)
    save(case, "y", y)
    lines.append(f"softmax {case} R={R} N={N} scale={scale!r}")


def sdpa_case(case, T, Hq, Hkv, D, L, mode, window=0, softcap=0.0):
    q = rand(T, Hq, D, lo=-1.5, hi=1.5)
    k = rand(Hkv, L, D, lo=-1.5, hi=1.5)
    v = rand(Hkv, L, D)
    scale = 1.0 / np.sqrt(D)
    qm = mx.array(np.transpose(q, (1, 0, 2))[None])  # [1, Hq, T, D]
    km = mx.array(k[None])                            # [1, Hkv, L, D]
    vm = mx.array(v[None])
    qpos = np.arange(L - T, L)[:, None]
    kpos = np.arange(L)[None, :]
    if softcap > 0:
        # composed from MLX ops: scores, softcap, causal mask, softmax, weighted sum
        g = Hq // Hkv
        kr = mx.repeat(km, g, axis=1)
        vr = mx.repeat(vm, g, axis=1)
        s = (qm * scale) @ mx.swapaxes(kr, -1, -2)
        s = softcap * mx.tanh(s / softcap)
        allowed = mx.array(kpos <= qpos)
        s = mx.where(allowed, s, mx.array(-np.inf, dtype=mx.float32))
        o = mx.softmax(s, axis=-1, precise=True) @ vr
        causal = 1
    elif mode == "causal":
        o = mx.fast.scaled_dot_product_attention(qm, km, vm, scale=scale, mask="causal")
        causal = 1
    elif mode == "window":
        allowed = (kpos <= qpos) & (qpos - kpos < window)
        o = mx.fast.scaled_dot_product_attention(qm, km, vm, scale=scale, mask=mx.array(allowed))
        causal = 1
    else:
        o = mx.fast.scaled_dot_product_attention(qm, km, vm, scale=scale)
        causal = 0
    o = np.transpose(np.array(o)[0], (1, 0, 2))  # [T, Hq, D]
    save(case, "q", q)
    save(case, "k", k)
    save(case, "v", v)
    save(case, "out", o)
    lines.append(f"sdpa {case} T={T} Hq={Hq} Hkv={Hkv} D={D} L={L} causal={causal} window={window} "
                 f"softcap={softcap!r} scale={float(scale)!r}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".bin"):
            os.remove(os.path.join(OUT, f))
    rms_case("rms_w", 4, 96, 1e-5, True)
    rms_case("rms_now", 3, 77, 1e-6, False)
    rms_case("rms_f16", 2, 64, 1e-5, True, dtype="f16")
    layer_norm_case("ln_affine", 3, 200, 1e-5, True)
    layer_norm_case("ln_plain", 2, 64, 1e-6, False)
    act_case("gelu_erf", "gelu_erf", 3, 100)
    act_case("gelu_tanh", "gelu_tanh", 3, 100)
    act_case("silu", "silu", 3, 100)
    softmax_case("softmax_mask", 4, 257, 0.5)
    rope_case("rope_adj", 5, 3, 64, 64, True, 10000.0, 1.0, 0)
    rope_case("rope_half", 5, 3, 64, 64, False, 10000.0, 1.0, 0)
    rope_case("rope_adj_partial_off", 4, 2, 96, 32, True, 10000.0, 1.0, 37)
    rope_case("rope_half_partial_off", 4, 2, 96, 48, False, 500000.0, 1.0, 1000)
    rope_case("rope_half_scaled", 3, 2, 64, 64, False, 10000.0, 0.25, 12)
    rope_case("rope_adj_d128", 2, 4, 128, 128, True, 1000000.0, 1.0, 5)
    rope_llama3_case("rope_llama3", 3, 2, 128, 500000.0, 8.0, 1.0, 4.0, 8192, 300)
    sdpa_case("sdpa_gqa_causal", 6, 8, 2, 64, 6, "causal")
    sdpa_case("sdpa_gqa_causal_tail", 5, 4, 2, 128, 19, "causal")
    sdpa_case("sdpa_decode_gqa", 1, 8, 2, 128, 33, "causal")
    sdpa_case("sdpa_nomask", 4, 2, 2, 64, 9, "none")
    sdpa_case("sdpa_window", 7, 4, 1, 64, 20, "window", window=5)
    sdpa_case("sdpa_d256", 3, 2, 1, 256, 8, "causal")
    sdpa_case("sdpa_softcap", 4, 4, 2, 64, 10, "causal", softcap=5.0)
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write(f"# generated by scripts/gen_mlx_op_fixtures.py with mlx {mx.__version__}; do not edit\n")
        for line in lines:
            f.write(line + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(lines)} cases, {total} bytes to {OUT}")


if __name__ == "__main__":
    main()
