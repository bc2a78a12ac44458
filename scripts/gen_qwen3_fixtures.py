#!/usr/bin/env python3
"""Generate the qwen3_tiny golden fixtures (tests/data/qwen3_tiny/) with mlx-lm.

Inputs: the random HF directory made by scripts/make_qwen3_tiny.py
(tests/data/qwen3_tiny/hf; created if missing). Outputs, all small:

  mlx_q4/                 mlx_lm.convert(hf, quantize=True, q_bits=4, q_group_size=64):
                          config.json, model.safetensors, model.safetensors.index.json,
                          tokenizer files. The C tests compare `mlxn convert` output with
                          it tensor by tensor, and the model runner can load it directly.
  mixed_4_6_quantization.json   the "quantization" object mlx-lm writes for
                          --quant-predicate mixed_4_6 (per-module bits).
  tokens.i32              int32 [T] prompt token ids (tokenizer of hf/ on PROMPT)
  logits_mlx_q4.f32       float32 [T, V]: mlx-lm forward of mlx_q4 as stored (bf16 activations)
  logits_mlx_q4_f32.f32   float32 [T, V]: mlx-lm forward of mlx_q4 with every float parameter
                          (norms, scales, biases) cast to f32 -> f32 activations, same quantized
                          weights (the tight oracle for an f32 runner)
  logits_bf16_f32.f32     float32 [T, V]: mlx-lm forward of the UNQUANTIZED bf16 weights in f32
                          (what quantization error is measured against)
  logits_numpy_f32.f32    float32 [T, V]: an independent numpy implementation of Qwen3 on the
                          unquantized weights (cross-checks mlx-lm; stands in for transformers,
                          which needs torch)
  fixtures.json           manifest: prompt, tokens, shapes, file names, and the NMSE between
                          the logits sets measured here

    /work/venv/bin/python scripts/gen_qwen3_fixtures.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "qwen3_tiny")
HF = os.path.join(DATA, "hf")
PROMPT = "Hello world, the quick model 123!"


def nmse(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(((a - b) ** 2).sum() / max((b ** 2).sum(), 1e-30))


def bf16_file_to_f32(path):
    """Read our bf16 safetensors (any dtype F32/BF16/F16) into f32 numpy arrays."""
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        buf = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        raw = buf[b:e]
        if v["dtype"] == "BF16":
            a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif v["dtype"] == "F16":
            a = np.frombuffer(raw, np.float16).astype(np.float32)
        else:
            a = np.frombuffer(raw, np.float32)
        out[k] = a.reshape(v["shape"])
    return out


def numpy_qwen3(w, cfg, tokens):
    """Reference Qwen3 forward in f32 (float64 accumulation where cheap)."""
    h, nq, nkv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    T = len(tokens)

    def rms(x, g):
        x = x.astype(np.float64)
        return (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g).astype(np.float32)

    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)  # [hd/2]
    ang = np.arange(T)[:, None] * inv[None, :]  # [T, hd/2]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(x):  # x [T, H, hd], half-split
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        c, s = cos[:, None, :], sin[:, None, :]
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1).astype(np.float32)

    x = w["model.embed_tokens.weight"][tokens]  # [T, h]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = rms(x, w[p + "input_layernorm.weight"])
        q = (a @ w[p + "self_attn.q_proj.weight"].T).reshape(T, nq, hd)
        k = (a @ w[p + "self_attn.k_proj.weight"].T).reshape(T, nkv, hd)
        v = (a @ w[p + "self_attn.v_proj.weight"].T).reshape(T, nkv, hd)
        q = rope(rms(q, w[p + "self_attn.q_norm.weight"]))
        k = rope(rms(k, w[p + "self_attn.k_norm.weight"]))
        o = np.zeros((T, nq, hd), np.float64)
        for hh in range(nq):
            kv = hh // (nq // nkv)
            s = q[:, hh, :].astype(np.float64) @ k[:, kv, :].T.astype(np.float64) / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            o[:, hh, :] = s @ v[:, kv, :]
        x = x + (o.reshape(T, nq * hd).astype(np.float32) @ w[p + "self_attn.o_proj.weight"].T)
        a = rms(x, w[p + "post_attention_layernorm.weight"])
        g = a @ w[p + "mlp.gate_proj.weight"].T
        u = a @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"])
    return (x @ w["lm_head.weight"].T).astype(np.float32)


def mlx_logits(model, tokens, f32=False):
    import mlx.core as mx
    from mlx.utils import tree_map
    if f32:
        model.update(tree_map(lambda p: p.astype(mx.float32) if mx.issubdtype(p.dtype, mx.floating) else p,
                              model.parameters()))
    out = model(mx.array(tokens, dtype=mx.int32)[None])
    return np.array(out[0].astype(mx.float32))


def main():
    import mlx.core as mx
    from mlx_lm import convert, load
    if not os.path.isfile(os.path.join(HF, "model.safetensors")):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "scripts", "make_qwen3_tiny.py"), HF])
    cfg = json.load(open(os.path.join(HF, "config.json")))
    mx.set_default_device(mx.cpu)

    tmp = tempfile.mkdtemp(prefix="qwen3_tiny_")
    q4 = os.path.join(tmp, "mlx_q4")
    convert(HF, q4, quantize=True, q_group_size=64, q_bits=4)
    mixed = os.path.join(tmp, "mlx_mixed")
    convert(HF, mixed, quantize=True, q_group_size=64, q_bits=4, quant_predicate="mixed_4_6")

    dst = os.path.join(DATA, "mlx_q4")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    for f in sorted(os.listdir(q4)):
        if f.endswith((".json", ".safetensors", ".jinja")):
            shutil.copy(os.path.join(q4, f), dst)
    mq = json.load(open(os.path.join(mixed, "config.json")))["quantization"]
    with open(os.path.join(DATA, "mixed_4_6_quantization.json"), "w") as f:
        json.dump(mq, f, indent=2, sort_keys=True)

    model_hf, tok = load(HF)
    tokens = tok.encode(PROMPT)
    tokens = [int(t) for t in tokens]
    T, V = len(tokens), cfg["vocab_size"]

    model_q4, _ = load(dst)
    l_q4 = mlx_logits(model_q4, tokens)
    model_q4f, _ = load(dst)
    l_q4f = mlx_logits(model_q4f, tokens, f32=True)
    l_bf = mlx_logits(model_hf, tokens, f32=True)
    w = bf16_file_to_f32(os.path.join(HF, "model.safetensors"))
    l_np = numpy_qwen3(w, cfg, tokens)

    stats = {
        "numpy_vs_mlx_bf16_f32": nmse(l_np, l_bf),
        "mlx_q4_f32_vs_bf16_f32": nmse(l_q4f, l_bf),
        "mlx_q4_vs_mlx_q4_f32": nmse(l_q4, l_q4f),
        "argmax_agree_q4_f32_vs_bf16": float(np.mean(l_q4f.argmax(-1) == l_bf.argmax(-1))),
    }
    assert stats["numpy_vs_mlx_bf16_f32"] < 1e-8, stats  # two independent f32 implementations agree
    np.asarray(tokens, np.int32).tofile(os.path.join(DATA, "tokens.i32"))
    files = {"logits_mlx_q4": l_q4, "logits_mlx_q4_f32": l_q4f, "logits_bf16_f32": l_bf, "logits_numpy_f32": l_np}
    for k, v in files.items():
        np.ascontiguousarray(v, np.float32).tofile(os.path.join(DATA, k + ".f32"))
    manifest = {
        "prompt": PROMPT,
        "tokens": tokens,
        "T": T,
        "vocab_size": V,
        "logits_files": {k: k + ".f32" for k in files},
        "logits_shape": [T, V],
        "nmse": stats,
        "mlx_version": mx.__version__,
        "generator": "scripts/gen_qwen3_fixtures.py",
    }
    with open(os.path.join(DATA, "fixtures.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(stats, indent=2))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(DATA) for f in fs)
    print(f"tests/data/qwen3_tiny: {total} bytes")


if __name__ == "__main__":
    main()
