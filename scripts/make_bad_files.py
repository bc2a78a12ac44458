#!/usr/bin/env python3
"""make_bad_files.py - regenerate tests/data/bad/: small hand-made corrupt
safetensors and GGUF files and broken MLX model directories. Each one breaks
exactly one rule; tests/test_safetensors.c, test_gguf.c and
test_model_files.c assert the error code and message each must produce.
Uses only the Python standard library (files are built byte by byte).

usage: scripts/make_bad_files.py [OUTDIR]   (default: tests/data/bad)
"""
import json
import os
import shutil
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "bad")


def w(name, data):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- safetensors

def st_bytes(header, data=b"", raw_header=None, pad=True):
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st(name, header, data=b"", **kw):
    w(name, st_bytes(header, data, **kw))


def t(dtype, shape, b, e):
    return {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}


def make_safetensors():
    w("st_truncated_header.safetensors", b"\x10\x00\x00\x00\x00")
    w("st_header_past_eof.safetensors", struct.pack("<Q", 123456) + b'{"a":1}')
    w("st_header_too_big.safetensors", struct.pack("<Q", 200_000_000) + b"{}" + b" " * 6)
    st("st_overlap.safetensors", {"a": t("F32", [4], 0, 16), "b": t("F32", [2], 8, 16)}, bytes(16))
    st("st_gap.safetensors", {"a": t("F32", [2], 0, 8), "b": t("F32", [2], 12, 20)}, bytes(20))
    st("st_size_mismatch.safetensors", {"a": t("F32", [4], 0, 12)}, bytes(12))
    big = 1 << 40
    st("st_dims_overflow.safetensors", {"a": t("U8", [big, big, big], 0, 8)}, bytes(8))
    st("st_5dims.safetensors", {"a": t("U8", [1, 1, 1, 1, 2], 0, 2)}, bytes(2))
    hdr = b'{"a\xff\xfe":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}'
    st("st_bad_utf8_name.safetensors", None, bytes(2), raw_header=hdr)
    hdr = b'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}'
    st("st_duplicate_name.safetensors", None, bytes(4), raw_header=hdr)
    st("st_unknown_dtype.safetensors", {"a": t("F12", [2], 0, 2)}, bytes(2))
    st("st_trailing_data.safetensors", {"a": t("F32", [4], 0, 16)}, bytes(20))
    st("st_not_json.safetensors", None, b"", raw_header=b"{this is not json}")
    st("st_metadata_not_string.safetensors", {"__metadata__": {"format": 3}, "a": t("U8", [1], 0, 1)}, bytes(1))
    st("st_negative_offset.safetensors", {"a": t("U8", [2], -2, 0)}, bytes(2))
    st("st_offsets_past_eof.safetensors", {"a": t("F32", [4], 0, 16)}, bytes(8))


# ---------------------------------------------------------------- gguf

def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv_u32(key, v):
    return gstr(key) + struct.pack("<II", 4, v)


def kv_str(key, v):
    return gstr(key) + struct.pack("<I", 8) + gstr(v)


def tinfo(name, dims_inner_first, ggml_type, offset, n_dims=None):
    nd = len(dims_inner_first) if n_dims is None else n_dims
    return gstr(name) + struct.pack("<I", nd) + b"".join(struct.pack("<Q", d) for d in dims_inner_first) + \
        struct.pack("<IQ", ggml_type, offset)


def gguf(kvs, tinfos, data=b"", version=3, n_t=None, n_kv=None, align=32):
    b = b"GGUF" + struct.pack("<IQQ", version, len(tinfos) if n_t is None else n_t, len(kvs) if n_kv is None else n_kv)
    b += b"".join(kvs) + b"".join(tinfos)
    if tinfos:
        b += bytes((align - len(b) % align) % align)
    return b + data


def make_gguf():
    arch = kv_str("general.architecture", "llama")
    good_t = tinfo("w", [8, 2], 0, 0)  # F32 [2, 8]
    w("gg_bad_magic.gguf", b"GGML" + bytes(60))
    full = gguf([arch, kv_u32("llama.block_count", 2)], [good_t], bytes(64))
    w("gg_truncated.gguf", full[:90])  # cut inside the second key
    w("gg_version1.gguf", gguf([arch], [], version=1))
    w("gg_version_bigendian.gguf", gguf([arch], [], version=3 << 24))
    w("gg_ndims5.gguf", gguf([arch], [tinfo("blk.0.attn_q.weight", [1, 1, 1, 1, 2], 0, 0)], bytes(64)))
    big = 1 << 40
    w("gg_dims_overflow.gguf", gguf([arch], [tinfo("a", [big, big, big], 0, 0)], bytes(64)))
    w("gg_dim_negative.gguf", gguf([arch], [tinfo("a", [(1 << 64) - 4], 0, 0)], bytes(64)))
    w("gg_unknown_type.gguf", gguf([arch], [tinfo("a", [32], 99, 0)], bytes(64)))
    w("gg_unknown_kv_type.gguf", gguf([gstr("x") + struct.pack("<I", 13) + bytes(8)], []))
    w("gg_tensor_past_eof.gguf", gguf([arch], [tinfo("a", [64, 4], 0, 0)], bytes(64)))
    w("gg_overlap.gguf", gguf([arch], [tinfo("a", [16], 0, 0), tinfo("b", [16], 0, 32)], bytes(128)))
    w("gg_misaligned_offset.gguf", gguf([arch], [tinfo("a", [4], 0, 4)], bytes(64)))
    w("gg_duplicate_tensor.gguf", gguf([arch], [tinfo("a", [8], 0, 0), tinfo("a", [8], 0, 32)], bytes(64)))
    w("gg_duplicate_key.gguf", gguf([arch, kv_u32("general.architecture", 1)], []))
    w("gg_huge_kv_count.gguf", gguf([arch], [], n_kv=1 << 60))
    w("gg_huge_tensor_count.gguf", gguf([arch], [], n_t=1 << 60))
    w("gg_string_past_eof.gguf", gguf([gstr("k") + struct.pack("<IQ", 8, 1 << 40) + b"abc"], []))
    nested = struct.pack("<I", 9)
    for _ in range(20):
        nested += struct.pack("<IQ", 9, 1)
    nested += struct.pack("<IQ", 4, 0)
    w("gg_nested_too_deep.gguf", gguf([gstr("deep") + nested], []))
    w("gg_bad_alignment.gguf", gguf([kv_u32("general.alignment", 3)], []))
    w("gg_row_not_multiple.gguf", gguf([arch], [tinfo("a", [33, 2], 2, 0)], bytes(128)))
    w("gg_array_past_eof.gguf", gguf([gstr("arr") + struct.pack("<IIQ", 9, 6, 1 << 50) + bytes(16)], []))
    w("gg_bad_utf8_name.gguf", gguf([arch], [tinfo(b"bad\xff\xfename", [8], 0, 0)], bytes(64)))
    w("gg_nul_in_key.gguf", gguf([kv_u32("gen\x00eral", 1)], []))


# ---------------------------------------------------------------- MLX directories

def st_file(tensors, metadata=None):
    """tensors: name -> (dtype, shape, bytes). Returns safetensors bytes (unpadded, like MLX)."""
    hdr = {}
    if metadata:
        hdr["__metadata__"] = metadata
    data = b""
    for name in sorted(tensors):
        dt, shape, raw = tensors[name]
        hdr[name] = t(dt, shape, len(data), len(data) + len(raw))
        data += raw
    return st_bytes(hdr, data, pad=False)


CFG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
       "quantization": {"group_size": 32, "bits": 4}}


def mlx_dir(name, tensors, config=CFG, shards=None, index=None, raw_config=None):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "wb") as f:
        f.write(raw_config if raw_config is not None else json.dumps(config, indent=1).encode())
    if shards is None:
        w(os.path.join(name, "model.safetensors"), st_file(tensors, {"format": "mlx"}))
    else:
        for fname, names in shards.items():
            w(os.path.join(name, fname), st_file({k: tensors[k] for k in names}, {"format": "mlx"}))
    if index is not None:
        w(os.path.join(name, "model.safetensors.index.json"), json.dumps(index, indent=1).encode())


def make_mlx_dirs():
    # a valid 4-bit g32 module [8, 64]: weight u32 [8, 8], scales/biases f16 [8, 2]
    q = {
        "model.layers.0.mlp.up_proj.weight": ("U32", [8, 8], bytes(8 * 8 * 4)),
        "model.layers.0.mlp.up_proj.scales": ("F16", [8, 2], bytes(32)),
        "model.layers.0.mlp.up_proj.biases": ("F16", [8, 2], bytes(32)),
        "model.norm.weight": ("F32", [64], bytes(256)),
    }
    shards = {"model-00001-of-00002.safetensors": ["model.norm.weight"],
              "model-00002-of-00002.safetensors": [k for k in q if k != "model.norm.weight"]}
    index = {"metadata": {"total_size": 0}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    mlx_dir("mlx_missing_shard", q, shards={"model-00001-of-00002.safetensors": ["model.norm.weight"]}, index=index)
    bad_index = json.loads(json.dumps(index))
    bad_index["weight_map"]["model.norm.weight"] = "model-00002-of-00002.safetensors"
    mlx_dir("mlx_index_wrong_shard", q, shards=shards, index=bad_index)
    s = dict(q)
    s["model.layers.0.mlp.gate_proj.scales"] = ("F16", [8, 2], bytes(32))
    s["model.layers.0.mlp.gate_proj.biases"] = ("F16", [8, 2], bytes(32))
    mlx_dir("mlx_scales_without_weight", s)
    u = dict(q)
    u["model.layers.0.mlp.down_proj.weight"] = ("U32", [8, 8], bytes(256))
    mlx_dir("mlx_u32_without_scales", u)
    m = dict(q)
    m["model.layers.0.mlp.up_proj.scales"] = ("F16", [8, 3], bytes(48))
    m["model.layers.0.mlp.up_proj.biases"] = ("F16", [8, 3], bytes(48))
    mlx_dir("mlx_quant_shape_mismatch", m)
    cfg = dict(CFG)
    del cfg["quantization"]
    mlx_dir("mlx_scales_no_quant_config", q, config=cfg)
    mlx_dir("mlx_bad_config_json", q, raw_config=b'{"model_type": "llama", ')
    nb = dict(q)
    del nb["model.layers.0.mlp.up_proj.biases"]
    mlx_dir("mlx_affine_without_biases", nb)
    mlx_dir("mlx_bad_shard", {}, raw_config=None)
    w(os.path.join("mlx_bad_shard", "model.safetensors"), struct.pack("<Q", 999999) + b"{}")
    d = os.path.join(OUT, "mlx_no_config")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    w(os.path.join("mlx_no_config", "model.safetensors"), st_file(q))


def main():
    os.makedirs(OUT, exist_ok=True)
    make_safetensors()
    make_gguf()
    make_mlx_dirs()
    n = sum(len(files) for _, _, files in os.walk(OUT))
    print(f"wrote {n} files under {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
