#!/usr/bin/env python3
"""make_io_fixtures.py - regenerate tests/data/io/: tiny files written by
implementations nobody here wrote, so the C readers are cross-checked
against them:
  py_safetensors.safetensors   safetensors.numpy.save_file (many dtypes, metadata)
  mlx_unaligned.safetensors    mx.save_safetensors (unpadded header -> unaligned data; bf16)
  py_gguf.gguf                 gguf.GGUFWriter: every kv type incl. nested arrays;
                               F32/F16/Q4_0/Q4_1/Q8_0/Q4_K/Q6_K tensors
  py_gguf_expected.safetensors the gguf package's dequantization of each tensor (f32)
  mlx_tiny/                    an MLX model dir made with mx.quantize (4-bit g32,
                               per-module overrides 8-bit g64, 3-bit, 6-bit, and a
                               `false` module), tokenizer files
  mlx_tiny_sharded/            the same weights split over two shards + index.json
  mlx_tiny_expected.safetensors mx.dequantize of the first 4 rows of every quantized
                               module (f32), for the loader's dequant path
Requires the venv (numpy, mlx, safetensors, gguf). Deterministic (fixed seeds).
usage: /work/venv/bin/python scripts/make_io_fixtures.py [OUTDIR]
"""
import json
import os
import shutil
import sys

import mlx.core as mx
import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFWriter, GGUFValueType
from gguf import quants
from safetensors.numpy import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "io")
rng = np.random.default_rng(1234)


def make_st():
    t = {
        "a_f32": rng.standard_normal((3, 5)).astype(np.float32),
        "b_f16": rng.standard_normal((7,)).astype(np.float16),
        "c_i32": np.arange(-2, 2, dtype=np.int32).reshape(2, 2),
        "d_u8": np.arange(5, dtype=np.uint8),
        "e_i64": np.array([-(1 << 40), 7], dtype=np.int64),
        "f_f64": np.array([1.5, -2.25, 3e10]),
        "g_bool": np.array([True, False, True]),
        "h_empty": np.zeros((0, 4), dtype=np.float32),
        "i_scalar": np.array(2.5, dtype=np.float32),
        "j_4d": np.arange(24, dtype=np.int16).reshape(1, 2, 3, 4),
    }
    save_file(t, os.path.join(OUT, "py_safetensors.safetensors"), metadata={"format": "np", "note": "fixture"})
    m = {
        "x_bf16": mx.array(rng.standard_normal((3, 3)).astype(np.float32)).astype(mx.bfloat16),
        "y_f32": mx.array(rng.standard_normal((5,)).astype(np.float32)),
        "z_f16": mx.array(rng.standard_normal((2, 3)).astype(np.float32)).astype(mx.float16),
    }
    m.update({k.split("_")[0] + "_as_f32": v.astype(mx.float32) for k, v in m.items()})
    path = os.path.join(OUT, "mlx_unaligned.safetensors")
    for k in range(8):  # pad the metadata until the data buffer starts at an odd offset
        mx.save_safetensors(path, m, metadata={"format": "mlx", "pad": "x" * k})
        with open(path, "rb") as f:
            if (8 + int.from_bytes(f.read(8), "little")) % 2 == 1:
                break


def make_gguf():
    path = os.path.join(OUT, "py_gguf.gguf")
    w = GGUFWriter(path, "llama")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.15625)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo wörld")
    w.add_uint64("t.u64", (1 << 63) + 5)
    w.add_int64("t.i64", -(1 << 62))
    w.add_float64("t.f64", 2.718281828459045)
    w.add_key_value("t.arr_u32", [1, 2, 3, 4000000000], GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT32)
    w.add_array("t.arr_str", ["a", "", "ünïcode", "<|im_start|>"])
    w.add_key_value("t.arr_i8", [-1, 2, -3], GGUFValueType.ARRAY, sub_type=GGUFValueType.INT8)
    w.add_key_value("t.arr_f32", [0.5, -1.25], GGUFValueType.ARRAY, sub_type=GGUFValueType.FLOAT32)
    w.add_array("t.arr_nested", [[1, 2], [3, 4, 5]])
    w.add_array("t.arr_nested_str", [["x", "yz"], ["w"]])
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_context_length(128)
    exp = {}

    def add(name, qt, shape):
        x = rng.standard_normal(shape).astype(np.float32)
        if qt in (QT.Q4_K, QT.Q6_K):
            # no Python quantizer for K-quants: random blocks with sane f16 scales
            _, bb = quants.GGML_QUANT_SIZES[qt]
            nblk = int(np.prod(shape)) // 256
            raw = rng.integers(0, 256, size=(nblk, bb), dtype=np.uint8)
            d = np.array([0.01], dtype=np.float16).view(np.uint8)
            for i in range(nblk):
                if qt == QT.Q4_K:
                    raw[i, 0:2] = d
                    raw[i, 2:4] = d
                else:
                    raw[i, bb - 2:bb] = d
            q = raw.reshape(shape[0], -1)
        else:
            q = quants.quantize(x, qt)
        w.add_tensor(name, q, raw_dtype=qt)
        exp[name] = quants.dequantize(q, qt).astype(np.float32).reshape(shape)

    add("f32_t", QT.F32, (4, 8))
    add("f16_t", QT.F16, (3, 32))
    add("q4_0_t", QT.Q4_0, (2, 64))
    add("q4_1_t", QT.Q4_1, (2, 32))
    add("q8_0_t", QT.Q8_0, (3, 32))
    add("q4_k_t", QT.Q4_K, (2, 256))
    add("q6_k_t", QT.Q6_K, (1, 256))
    add("f32_3d", QT.F32, (2, 3, 4))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(exp, os.path.join(OUT, "py_gguf_expected.safetensors"))


MODULES = {
    # module path -> (shape [N, K], bits, group) ; bits None = left in float (config false)
    "model.embed_tokens": ((32, 64), 4, 32),
    "model.layers.0.self_attn.q_proj": ((64, 64), 4, 32),
    "model.layers.0.self_attn.k_proj": ((32, 64), 3, 64),
    "model.layers.0.self_attn.v_proj": ((32, 64), 6, 32),
    "model.layers.0.mlp.down_proj": ((64, 128), 8, 64),
    "model.layers.0.mlp.up_proj": ((128, 64), 2, 32),
    "model.layers.0.mlp.gate_proj": ((128, 64), None, None),
}


def make_mlx():
    tensors, expected = {}, {}
    q = {"group_size": 32, "bits": 4}
    for name, (shape, bits, gs) in MODULES.items():
        w = mx.array(rng.standard_normal(shape).astype(np.float32) * 0.05).astype(mx.bfloat16)
        if bits is None:
            tensors[name + ".weight"] = w
            q[name] = False
            continue
        wq, s, b = mx.quantize(w, group_size=gs, bits=bits)
        tensors[name + ".weight"], tensors[name + ".scales"], tensors[name + ".biases"] = wq, s, b
        # dequantize in f32 (scales/biases widened first) so the reference is not rounded to bf16
        expected[name + ".weight"] = mx.dequantize(wq, s.astype(mx.float32), b.astype(mx.float32),
                                                   group_size=gs, bits=bits)[:4]
        if (bits, gs) != (4, 32):
            q[name] = {"group_size": gs, "bits": bits}
    tensors["model.layers.0.input_layernorm.weight"] = mx.array(rng.standard_normal(64).astype(np.float32)).astype(mx.bfloat16)
    tensors["model.layers.0.self_attn.q_proj.bias"] = mx.array(rng.standard_normal(64).astype(np.float32))
    tensors["model.norm.weight"] = mx.ones((64,), dtype=mx.bfloat16)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
              "num_hidden_layers": 1, "intermediate_size": 128, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "tie_word_embeddings": True, "quantization": q, "quantization_config": q}
    tok = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
           "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
    for d, sharded in (("mlx_tiny", False), ("mlx_tiny_sharded", True)):
        p = os.path.join(OUT, d)
        shutil.rmtree(p, ignore_errors=True)
        os.makedirs(p)
        with open(os.path.join(p, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        with open(os.path.join(p, "tokenizer.json"), "w") as f:
            json.dump(tok, f)
        with open(os.path.join(p, "tokenizer_config.json"), "w") as f:
            json.dump({"bos_token": None, "eos_token": "b"}, f)
        if not sharded:
            mx.save_safetensors(os.path.join(p, "model.safetensors"), tensors, metadata={"format": "mlx"})
            continue
        names = sorted(tensors)
        parts = [names[: len(names) // 2], names[len(names) // 2:]]
        wm = {}
        for i, part in enumerate(parts):
            fn = f"model-{i + 1:05d}-of-{len(parts):05d}.safetensors"
            mx.save_safetensors(os.path.join(p, fn), {k: tensors[k] for k in part}, metadata={"format": "mlx"})
            wm.update({k: fn for k in part})
        with open(os.path.join(p, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f, indent=2)
    mx.save_safetensors(os.path.join(OUT, "mlx_tiny_expected.safetensors"), expected)


def main():
    os.makedirs(OUT, exist_ok=True)
    make_st()
    make_gguf()
    make_mlx()
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.relpath(p, OUT):48s} {os.path.getsize(p):8d} bytes")


if __name__ == "__main__":
    main()
