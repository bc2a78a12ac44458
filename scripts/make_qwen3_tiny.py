#!/usr/bin/env python3
"""Build the tiny random Qwen3 test model as a Hugging Face directory.

Writes OUT (default tests/data/qwen3_tiny/hf) with config.json, model.safetensors
(bf16, written by hand: numpy has no bf16), tokenizer.json (byte-level BPE with a
Qwen2-style pre-tokenizer regex, trained deterministically on a fixed text),
tokenizer_config.json (ChatML template) and generation_config.json.

Shape: 2 layers, hidden 64, 4 query heads / 2 KV heads, head_dim 64 (the fast
attention path), intermediate 128, vocab 512, untied lm_head. About 210k
parameters, ~420 KB. Fully deterministic (numpy seed), so re-running gives
byte-identical files.

    /work/venv/bin/python scripts/make_qwen3_tiny.py [OUT]
"""
import json
import os
import struct
import sys

import numpy as np

CONFIG = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": None,
    "eos_token_id": 511,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
    "model_type": "qwen3",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 512,
}

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

CORPUS = """The quick brown fox jumps over the lazy dog. A tiny model with random weights is still a model:
it has layers, heads, norms and a vocabulary. Numbers like 12, 345 and 6789 are split into single digits.
Hello world! How are you today? I am fine, thank you. This is a test of the tokenizer and the converter.
def main():\n    print("hello")\n    return 0\n
MLX affine quantization stores packed weights, scales and biases; GGUF stores blocks.
"""


def f32_to_bf16_bits(x):
    """Round-to-nearest-even f32 -> bf16 (uint16 bits)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def make_weights(cfg, seed=1234):
    rng = np.random.default_rng(seed)
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    nq, nkv, ff, v = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"]

    def lin(out_f, in_f):
        return rng.standard_normal((out_f, in_f)).astype(np.float32) / np.sqrt(in_f)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": rng.standard_normal((v, h)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(h)
        w[p + "post_attention_layernorm.weight"] = norm(h)
        w[p + "self_attn.q_proj.weight"] = lin(nq * hd, h)
        w[p + "self_attn.k_proj.weight"] = lin(nkv * hd, h)
        w[p + "self_attn.v_proj.weight"] = lin(nkv * hd, h)
        w[p + "self_attn.o_proj.weight"] = lin(h, nq * hd)
        w[p + "self_attn.q_norm.weight"] = norm(hd)
        w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "mlp.gate_proj.weight"] = lin(ff, h)
        w[p + "mlp.up_proj.weight"] = lin(ff, h)
        w[p + "mlp.down_proj.weight"] = lin(h, ff)
    w["model.norm.weight"] = norm(h)
    w["lm_head.weight"] = lin(v, h) * 4.0  # sharper logits than 1/sqrt(h)
    return w


def write_safetensors_bf16(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = f32_to_bf16_bits(tensors[name]).tobytes()
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


def make_tokenizer(vocab_size):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    words = ("model layer head norm token vocabulary weight scale bias group quantize convert tensor matrix vector "
             "attention rotary position embedding logits softmax random seed python numpy the a of and to in is "
             "that for on with as by at from this it be are was were not or which can will more into").split()
    rng = np.random.default_rng(7)
    extra = [" ".join(words[j] for j in rng.integers(0, len(words), 40)) for _ in range(200)]
    tok.train_from_iterator([CORPUS] * 4 + extra, trainer=trainer)
    tok.add_special_tokens(SPECIALS)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "data", "qwen3_tiny", "hf")
    os.makedirs(out, exist_ok=True)
    cfg = dict(CONFIG)
    tok = make_tokenizer(cfg["vocab_size"])
    assert tok.token_to_id("<|im_end|>") == cfg["eos_token_id"]
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"add_bos_token": False, "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                   "unk_token": None, "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
                   "model_max_length": cfg["max_position_embeddings"], "tokenizer_class": "PreTrainedTokenizerFast"},
                  f, indent=2, sort_keys=True)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": cfg["eos_token_id"], "pad_token_id": 509}, f, indent=2)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    w = make_weights(cfg)
    write_safetensors_bf16(os.path.join(out, "model.safetensors"), w)
    n = sum(v.size for v in w.values())
    print(f"wrote {out}: {len(w)} tensors, {n} parameters")


if __name__ == "__main__":
    main()
