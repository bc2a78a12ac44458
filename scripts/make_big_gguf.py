#!/usr/bin/env python3
"""make_big_gguf.py - write a large llama-shaped GGUF (Q4_0 matrices, F32
norms, random bytes) for loader memory/throughput measurements. Standard
library only (runs on a bare GPU host). The data is one random tensor image
repeated, so generating it needs little memory.
usage: scripts/make_big_gguf.py OUT.gguf [SIZE_MB (default 2048)] [DIM (default 4096)]
"""
import os
import struct
import sys

out = sys.argv[1]
size_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
dim = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
Q4_0, F32 = 2, 0
ALIGN = 32


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


mat_bytes = dim * (dim // 32) * 18
n_layers = max(1, (size_mb << 20) // (4 * mat_bytes))
tensors = []  # (name, dims inner-first, type, nbytes)
for i in range(n_layers):
    for p in ("attn_q", "attn_output", "ffn_up", "ffn_down"):
        tensors.append((f"blk.{i}.{p}.weight", [dim, dim], Q4_0, mat_bytes))
    tensors.append((f"blk.{i}.attn_norm.weight", [dim], F32, dim * 4))
kvs = gstr("general.architecture") + struct.pack("<I", 8) + gstr("llama")
kvs += gstr("llama.block_count") + struct.pack("<II", 4, n_layers)
kvs += gstr("llama.embedding_length") + struct.pack("<II", 4, dim)
infos = b""
off = 0
for name, dims, ty, nb in tensors:
    infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
    infos += struct.pack("<IQ", ty, off)
    off += (nb + ALIGN - 1) // ALIGN * ALIGN
head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 3) + kvs + infos
head += bytes((ALIGN - len(head) % ALIGN) % ALIGN)
blob = bytearray(os.urandom(mat_bytes))
for b in range(0, mat_bytes, 18):  # sane f16 scales (0x2000 ~ 0.0078) so dequantized values are finite
    blob[b:b + 2] = b"\x00\x20"
norm = struct.pack(f"<{dim}f", *([1.0] * dim))
tmp = out + ".part"
with open(tmp, "wb") as f:
    f.write(head)
    for name, dims, ty, nb in tensors:
        f.write(blob if ty == Q4_0 else norm)
        f.write(bytes((ALIGN - nb % ALIGN) % ALIGN))
os.replace(tmp, out)
print(f"make_big_gguf: wrote {out}: {len(tensors)} tensors, {os.path.getsize(out) / 2**20:.0f} MiB", file=sys.stderr)
