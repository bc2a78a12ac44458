#!/usr/bin/env python3
"""make_random_mlx_model.py — write an MLX-format model directory with random
weights of a given Llama-family shape (MLX affine quantized linear layers,
f16 norms), for end-to-end benchmarks of shapes too large to ship around
(e.g. Llama-3-8B: --preset llama3-8b). Packed words are uniform random; scales
are small and random (some negative, as MLX produces); biases random. The
output loads in mlxn (and in mlx-lm). Needs only numpy.

  python3 scripts/make_random_mlx_model.py --preset llama3-8b --out /tmp/l8b
"""
import argparse, json, os, struct, sys
import numpy as np

PRESETS = {
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                      rope_theta=500000.0, max_position_embeddings=8192, tie_word_embeddings=False),
    "llama3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                        rope_theta=500000.0, max_position_embeddings=8192, tie_word_embeddings=True),
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         rope_theta=100000.0, max_position_embeddings=8192, tie_word_embeddings=True),
    "tiny": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=1024,
                 rope_theta=10000.0, max_position_embeddings=2048, tie_word_embeddings=False),
}


class ShardWriter:
    """Streams tensors into safetensors shards of at most max_bytes each."""

    def __init__(self, out, max_bytes):
        self.out, self.max_bytes = out, max_bytes
        self.shards, self.cur, self.cur_bytes, self.weight_map = [], [], 0, {}

    def add(self, name, arr):
        if self.cur and self.cur_bytes + arr.nbytes > self.max_bytes:
            self.flush()
        self.cur.append((name, arr))
        self.cur_bytes += arr.nbytes

    def flush(self):
        if not self.cur:
            return
        idx = len(self.shards)
        fname = f"model-{idx + 1:05d}.safetensors"
        header, off = {"__metadata__": {"format": "mlx"}}, 0
        dt = {np.dtype(np.uint32): "U32", np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}
        for name, a in sorted(self.cur):
            header[name] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
            off += a.nbytes
        hb = json.dumps(header, separators=(",", ":")).encode()
        hb += b" " * ((8 - len(hb) % 8) % 8)
        with open(os.path.join(self.out, fname), "wb") as f:
            f.write(struct.pack("<Q", len(hb)))
            f.write(hb)
            for name, a in sorted(self.cur):
                f.write(np.ascontiguousarray(a).tobytes())
                self.weight_map[name] = fname
        self.shards.append(fname)
        self.cur, self.cur_bytes = [], 0

    def close(self):
        self.flush()
        n = len(self.shards)
        final = {}
        for i, old in enumerate(self.shards):
            new = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            os.replace(os.path.join(self.out, old), os.path.join(self.out, new))
            final[old] = new
        wm = {k: final[v] for k, v in self.weight_map.items()}
        with open(os.path.join(self.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": wm}, f, indent=1, sort_keys=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--out", required=True)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-gb", type=float, default=2.0)
    a = ap.parse_args()
    cfg = dict(PRESETS[a.preset])
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    d, ff, nl = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    hd = d // cfg["num_attention_heads"]
    kvd = hd * cfg["num_key_value_heads"]
    w = ShardWriter(a.out, int(a.shard_gb * (1 << 30)))

    def quant(name, n, k):
        words = k * a.bits // 32
        w.add(name + ".weight", rng.integers(0, 2**32, size=(n, words), dtype=np.uint32))
        g = k // a.group_size
        # scales ~ weights of std ~0.02 spread over 2^bits levels, random sign
        sc = (rng.standard_normal((n, g)).astype(np.float32) * 0.002 + 0.004)
        sc *= np.where(rng.random((n, g)) < 0.5, -1, 1)
        w.add(name + ".scales", sc.astype(np.float16))
        w.add(name + ".biases", (-sc * (2**a.bits - 1) / 2).astype(np.float16))

    total = 0
    quant("model.embed_tokens", cfg["vocab_size"], d)
    for i in range(nl):
        p = f"model.layers.{i}."
        quant(p + "self_attn.q_proj", d, d)
        quant(p + "self_attn.k_proj", kvd, d)
        quant(p + "self_attn.v_proj", kvd, d)
        quant(p + "self_attn.o_proj", d, d)
        quant(p + "mlp.gate_proj", ff, d)
        quant(p + "mlp.up_proj", ff, d)
        quant(p + "mlp.down_proj", d, ff)
        w.add(p + "input_layernorm.weight", (1 + 0.1 * rng.standard_normal(d)).astype(np.float16))
        w.add(p + "post_attention_layernorm.weight", (1 + 0.1 * rng.standard_normal(d)).astype(np.float16))
        print(f"\rlayer {i + 1}/{nl}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    w.add("model.norm.weight", (1 + 0.1 * rng.standard_normal(d)).astype(np.float16))
    if not cfg["tie_word_embeddings"]:
        quant("lm_head", cfg["vocab_size"], d)
    w.close()
    cfg.update(model_type="llama", architectures=["LlamaForCausalLM"], rms_norm_eps=1e-5, head_dim=hd,
               hidden_act="silu", torch_dtype="float16",
               quantization={"group_size": a.group_size, "bits": a.bits, "mode": "affine"},
               quantization_config={"group_size": a.group_size, "bits": a.bits, "mode": "affine"},
               bos_token_id=1, eos_token_id=2)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print(a.out)


if __name__ == "__main__":
    main()
