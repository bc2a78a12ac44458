#!/usr/bin/env python3
"""gen_quant_fixtures.py — regenerate tests/data/quant/*: golden quantization
fixtures produced by implementations nobody on mlxn wrote.

MLX affine (PyPI mlx + mlx-cpu): for every bits in {2,3,4,5,6,8} x group_size in
{32,64,128} x source dtype in {f32,f16,bf16}, a [4, 256] weight (row 0 normal,
row 1 all positive -> negative scales, row 2 all negative, row 3 mixed with a
constant group, a zero group and a two-value group) is quantized with
mx.quantize, dequantized with mx.dequantize (scales/biases upcast to f32 so
the result is the exact f32 value scale*q+bias), and multiplied with
mx.quantized_matmul against x [3, 256] f32. File affine_b{bits}_g{gs}_{dt}.bin
is the raw concatenation (little endian, no header):
    w       [4, 256]        source dtype (f32 / f16 / bf16 bits)
    packed  [4, 256*bits/8] u8 (the uint32 tensor as bytes)
    scales  [4, 256/gs]     source dtype
    biases  [4, 256/gs]     source dtype
    deq     [4, 256]        f32
    x       [3, 256]        f32
    y       [3, 4]          f32 = quantized_matmul(x, packed, scales, biases, transpose=True)

GGUF (PyPI gguf, its numpy dequantizers): for Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K
Q3_K Q4_K Q5_K Q6_K, 4 rows of 512 values made of random bytes with the f16
scale fields overwritten by sane random values. File gguf_{TYPE}.bin:
    blocks  [4 * row_bytes] u8
    deq     [4, 512]        f32 = gguf.quants.dequantize(blocks, TYPE)
And gguf_quant_{Q4_0,Q8_0}.bin:
    x       [4, 256]        f32
    blocks  [4 * row_bytes] u8 = gguf.quants.quantize(x, TYPE)

Run: /work/venv/bin/python scripts/gen_quant_fixtures.py [outdir]
"""
import os
import sys

import numpy as np
import mlx.core as mx
from gguf import GGMLQuantizationType as T
from gguf import quants

ROWS, COLS, M = 4, 256, 3


def affine_weight(rng):
    w = np.empty((ROWS, COLS), np.float32)
    w[0] = rng.standard_normal(COLS) * 0.05
    w[1] = rng.uniform(0.1, 1.0, COLS)          # all positive: edge = max, scale < 0
    w[2] = rng.uniform(-1.0, -0.1, COLS)        # all negative: scale > 0
    w[3] = rng.uniform(-2.0, 1.0, COLS)
    w[3, 0:32] = 0.25                            # constant group (32-aligned)
    w[3, 128:160] = 0.0                          # zero group
    w[3, 224:256] = np.where(np.arange(32) % 2 == 0, -0.5, 0.75)  # two values
    return w


def mx_dtype(name):
    return {"f32": mx.float32, "f16": mx.float16, "bf16": mx.bfloat16}[name]


def raw_bytes(a):
    """bytes of an mx array in its own dtype (bf16 via uint16 view)."""
    if a.dtype == mx.bfloat16:
        return np.array(a.view(mx.uint16)).tobytes()
    return np.array(a).tobytes()


def gen_affine(out, rng):
    n = 0
    for bits in (2, 3, 4, 5, 6, 8):
        for gs in (32, 64, 128):
            for dt in ("f32", "f16", "bf16"):
                w = mx.array(affine_weight(rng)).astype(mx_dtype(dt))
                wq, scales, biases = mx.quantize(w, group_size=gs, bits=bits)
                s32, b32 = scales.astype(mx.float32), biases.astype(mx.float32)
                deq = mx.dequantize(wq, s32, b32, group_size=gs, bits=bits)
                x = mx.array(rng.uniform(-1, 1, (M, COLS)).astype(np.float32))
                y = mx.quantized_matmul(x, wq, s32, b32, transpose=True, group_size=gs, bits=bits)
                mx.eval(wq, scales, biases, deq, y)
                packed = np.array(wq).view(np.uint8)
                assert packed.size == ROWS * COLS * bits // 8
                blob = b"".join([raw_bytes(w), packed.tobytes(), raw_bytes(scales), raw_bytes(biases),
                                 np.array(deq, np.float32).tobytes(), np.array(x).tobytes(),
                                 np.array(y, np.float32).tobytes()])
                with open(os.path.join(out, f"affine_b{bits}_g{gs}_{dt}.bin"), "wb") as f:
                    f.write(blob)
                n += 1
    return n


GGUF_TYPES = {
    # name: (type, block values, block bytes, offsets of f16 scale fields)
    "Q4_0": (T.Q4_0, 32, 18, [0]),
    "Q4_1": (T.Q4_1, 32, 20, [0, 2]),
    "Q5_0": (T.Q5_0, 32, 22, [0]),
    "Q5_1": (T.Q5_1, 32, 24, [0, 2]),
    "Q8_0": (T.Q8_0, 32, 34, [0]),
    "Q2_K": (T.Q2_K, 256, 84, [80, 82]),
    "Q3_K": (T.Q3_K, 256, 110, [108]),
    "Q4_K": (T.Q4_K, 256, 144, [0, 2]),
    "Q5_K": (T.Q5_K, 256, 176, [0, 2]),
    "Q6_K": (T.Q6_K, 256, 210, [208]),
}


def gen_gguf(out, rng):
    n = 0
    GCOLS = 512
    for name, (qt, bv, bb, f16_offs) in GGUF_TYPES.items():
        nblk = ROWS * GCOLS // bv
        blocks = rng.integers(0, 256, (nblk, bb), dtype=np.uint8)
        for off in f16_offs:
            d = (rng.uniform(0.001, 0.05, nblk) * rng.choice([-1.0, 1.0], nblk)).astype(np.float16)
            blocks[:, off:off + 2] = d.view(np.uint8).reshape(nblk, 2)
        flat = blocks.reshape(ROWS, -1)
        deq = quants.dequantize(flat, qt).astype(np.float32)
        assert deq.shape == (ROWS, GCOLS), deq.shape
        with open(os.path.join(out, f"gguf_{name}.bin"), "wb") as f:
            f.write(flat.tobytes() + deq.tobytes())
        n += 1
    for name, qt in (("Q4_0", T.Q4_0), ("Q8_0", T.Q8_0)):
        x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
        x[1, 0:32] = 0.0                  # all-zero block: d = 0
        x[2, 32:64] = np.linspace(-1, 1, 32, dtype=np.float32)
        q = quants.quantize(x, qt)
        with open(os.path.join(out, f"gguf_quant_{name}.bin"), "wb") as f:
            f.write(x.tobytes() + np.ascontiguousarray(q).tobytes())
        n += 1
    return n


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "data", "quant")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261125)
    mx.set_default_device(mx.cpu)
    na = gen_affine(out, rng)
    ng = gen_gguf(out, rng)
    print(f"wrote {na} affine and {ng} gguf fixtures to {out} (mlx {mx.__version__})")


if __name__ == "__main__":
    main()
