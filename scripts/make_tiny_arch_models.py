#!/usr/bin/env python3
"""make_tiny_arch_models.py — tiny random models for the architecture
differences tests/test_model.c must cover besides SmolLM2 and Qwen3:

  qwen2_tiny/    Qwen2: biases on the q/k/v projections, untied lm_head
  llama3_tiny/   Llama 3.x RoPE frequency scaling (rope_scaling llama3,
                 factor 8, low 1, high 4, original context 64) and tied
                 embeddings

Each model is written twice:
  <name>/hf/       config.json + model.safetensors (bf16, Hugging Face names
                   and row order: half-split RoPE)
  <name>.gguf      the same weights (matrices f16, vectors f32) as a GGUF of architecture qwen2 /
                   llama, the way llama.cpp's converter writes them (llama: Q/K
                   rows permuted for adjacent-pair RoPE, Llama-3 scaling as the
                   rope_freqs.weight table; qwen2: no permutation)
and mlx-lm (PyPI mlx + mlx-cpu) computes the reference: the hf/ directory
loaded with mlx_lm.utils.load_model, cast to float32, logits [T, V] for a
fixed token sequence -> <name>/logits_f32.f32, tokens -> <name>/tokens.i32.

Shapes: 2 layers, hidden 64, 2 query heads / 1 KV head (head_dim 32), ff 96,
vocab 96 (~75k parameters, ~150 KB per directory). Deterministic.

    /work/venv/bin/python scripts/make_tiny_arch_models.py
"""
import json
import os
import pathlib
import struct

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "model")
TOKENS = [5, 17, 42, 3, 88, 61, 29, 70, 11, 94, 50, 7]

BASE = {
    "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
    "head_dim": 32, "intermediate_size": 96, "vocab_size": 96, "rms_norm_eps": 1e-5,
    "max_position_embeddings": 256, "hidden_act": "silu",
}
MODELS = {
    "qwen2_tiny": dict(BASE, model_type="qwen2", architectures=["Qwen2ForCausalLM"], rope_theta=1000000.0,
                       tie_word_embeddings=False),
    "llama3_tiny": dict(BASE, model_type="llama", architectures=["LlamaForCausalLM"], rope_theta=10000.0,
                        tie_word_embeddings=True,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
}


def bf16_round(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32) << 16
    return r.astype(np.uint32).view(np.float32)


def make_weights(cfg, seed):
    rng = np.random.default_rng(seed)
    h, hd, nq, nkv = cfg["hidden_size"], cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    ff, v = cfg["intermediate_size"], cfg["vocab_size"]

    def lin(o, i):
        return rng.standard_normal((o, i)).astype(np.float32) / np.sqrt(i)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": rng.standard_normal((v, h)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = norm(h)
        w[p + "post_attention_layernorm.weight"] = norm(h)
        w[p + "self_attn.q_proj.weight"] = lin(nq * hd, h)
        w[p + "self_attn.k_proj.weight"] = lin(nkv * hd, h)
        w[p + "self_attn.v_proj.weight"] = lin(nkv * hd, h)
        w[p + "self_attn.o_proj.weight"] = lin(h, nq * hd)
        if cfg["model_type"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = (0.5 * rng.standard_normal(nq * hd)).astype(np.float32)
            w[p + "self_attn.k_proj.bias"] = (0.5 * rng.standard_normal(nkv * hd)).astype(np.float32)
            w[p + "self_attn.v_proj.bias"] = (0.5 * rng.standard_normal(nkv * hd)).astype(np.float32)
        w[p + "mlp.gate_proj.weight"] = lin(ff, h)
        w[p + "mlp.up_proj.weight"] = lin(ff, h)
        w[p + "mlp.down_proj.weight"] = lin(h, ff)
    w["model.norm.weight"] = norm(h)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = lin(v, h) * 4.0
    return {k: bf16_round(a) for k, a in w.items()}


def write_safetensors_bf16(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = (np.ascontiguousarray(tensors[name]).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def llama3_freq_factors(cfg):
    """Per-frequency divisors as llama.cpp's converter writes rope_freqs."""
    rs, hd, base = cfg["rope_scaling"], cfg["head_dim"], cfg["rope_theta"]
    lo, hi, factor, orig = rs["low_freq_factor"], rs["high_freq_factor"], rs["factor"], rs["original_max_position_embeddings"]
    freqs = 1.0 / (base ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    out = []
    for f in freqs:
        wl = 2 * np.pi / f
        if wl < orig / hi:
            out.append(1.0)
        elif wl > orig / lo:
            out.append(factor)
        else:
            s = (orig / wl - lo) / (hi - lo)
            out.append(1.0 / ((1 - s) / factor + s))
    return np.array(out, dtype=np.float32)


def write_gguf(path, cfg, w):
    import gguf

    arch = cfg["model_type"]
    g = gguf.GGUFWriter(path, arch)
    g.add_block_count(cfg["num_hidden_layers"])
    g.add_context_length(cfg["max_position_embeddings"])
    g.add_embedding_length(cfg["hidden_size"])
    g.add_feed_forward_length(cfg["intermediate_size"])
    g.add_head_count(cfg["num_attention_heads"])
    g.add_head_count_kv(cfg["num_key_value_heads"])
    g.add_rope_dimension_count(cfg["head_dim"])
    g.add_rope_freq_base(cfg["rope_theta"])
    g.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    g.add_vocab_size(cfg["vocab_size"])
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
           "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for hf, a in sorted(w.items()):
        if hf in names:
            name = names[hf]
        else:
            parts = hf.split(".")
            i, mod, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
            name = "blk.%s.%s.%s" % (i, per[mod], kind)
            if arch == "llama" and per[mod] in ("attn_q", "attn_k"):
                nh = cfg["num_attention_heads"] if per[mod] == "attn_q" else cfg["num_key_value_heads"]
                # llama.cpp convert_hf_to_gguf permute()
                a = a.reshape(nh, 2, a.shape[0] // nh // 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)
        # matrices as F16 (exact for these bf16-rounded values except rare subnormals), vectors F32
        g.add_tensor(name, np.ascontiguousarray(a, dtype=np.float16 if a.ndim == 2 else np.float32))
    if "rope_scaling" in cfg:
        g.add_tensor("rope_freqs.weight", llama3_freq_factors(cfg))
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()


def mlx_logits(d):
    import mlx.core as mx
    from mlx_lm.utils import load_model

    model, _ = load_model(pathlib.Path(d))
    model.set_dtype(mx.float32)
    return np.array(model(mx.array([TOKENS]))[0].astype(mx.float32))


def main():
    for seed, (name, cfg) in enumerate(sorted(MODELS.items())):
        d = os.path.join(OUT, name, "hf")
        os.makedirs(d, exist_ok=True)
        w = make_weights(cfg, 100 + seed)
        write_safetensors_bf16(os.path.join(d, "model.safetensors"), w)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        write_gguf(os.path.join(OUT, name, name + ".gguf"), cfg, w)
        lg = mlx_logits(d)
        lg.astype("<f4").tofile(os.path.join(OUT, name, "logits_f32.f32"))
        np.array(TOKENS, dtype="<i4").tofile(os.path.join(OUT, name, "tokens.i32"))
        print(name, "logits", lg.shape, "argmax", lg.argmax(-1)[:6], "params", sum(a.size for a in w.values()))


if __name__ == "__main__":
    main()
