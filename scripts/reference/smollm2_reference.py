#!/usr/bin/env python3
"""Reference fixture for SmolLM2-135M-Instruct (GGUF Q4_1) from Hugging Face transformers.

Run through scripts/reference/make-smollm2-reference, which sets up the environment:

    smollm2_reference.py [PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf] [--out FIXTURE.json]

Default model: models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch-models
links it). Default output: tests/fixtures/smollm2/reference.json.

What it does:
  1. checks the file's SHA-256 (the SHA256SUMS beside the file, and the pinned value below);
  2. loads the model with transformers from the GGUF (dequantized to float32 by the `gguf`
     package; transformers un-permutes llama.cpp's Q/K rows), ties lm_head to the token
     embedding by hand (transformers 4.46 leaves it untied for GGUF llama), eval, CPU, float32,
     eager attention;
  3. self-checks the weights: every tensor transformers holds equals the `gguf` package's own
     dequantization of the file (Q/K after the inverse of llama.cpp's row permutation), and a
     float64 numpy forward pass straight from the GGUF tensors (llama.cpp's layout: no
     un-permutation, adjacent-pair RoPE) agrees with transformers' logits;
  4. for each chat conversation below (given as `messages`, no system message, no digits),
     renders the prompt with the model's own `tokenizer.chat_template` read from the GGUF
     metadata through apply_chat_template (add_generation_prompt=True) and checks it equals a
     plain jinja2 render (trim_blocks, lstrip_blocks); tokenizes it with add_special_tokens=False
     (ChatML control tokens must come out as single ids 1 / 2);
  5. one forward pass over the prompt (logits at every prompt position), then a greedy loop of
     N_NEW tokens (argmax, append, full recompute), cross-checked by a KV-cache greedy loop;
  6. writes the fixture (format in tests/fixtures/smollm2/README.md).

Why no digits: the tokenizer.json transformers derives from this GGUF lacks the `smollm`
pre-tokenizer's one-digit-at-a-time split, so it is only trusted on digit-free text; the script
checks it against llama.cpp's ids (tokenizer_reference.jsonl beside the model) on every
digit-free line of that file.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

DEFAULT_MODEL = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = "tests/fixtures/smollm2/reference.json"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
N_NEW = 40
LOGIT_STRIDE = 61
TOP_K = 8
NUMPY_CHECK_TOL = 1e-3      # float64 numpy (llama.cpp layout) vs transformers float32
KV_CHECK_TOL = 1e-3         # KV-cache loop vs full recompute, every greedy step
MIN_MARGIN = 1e-2           # the script fails if a greedy step's top-1/top-2 margin is smaller

# Chat conversations, no system message, no digits anywhere (see the docstring).
CONVERSATIONS = [
    [{"role": "user", "content": "Hello! Can you help me plan a relaxing weekend?"}],
    [{"role": "user", "content": "Why is the sky blue?"}],
    [{"role": "user", "content": "Write a haiku about autumn leaves and explain it."}],
    [{"role": "user", "content": "What is a good name for a pet cat?"},
     {"role": "assistant", "content": "How about Whiskers? It is a classic name for a playful cat."},
     {"role": "user", "content": "How should I take care of a new kitten?"}],
    [{"role": "user", "content": "Pourquoi le ciel est-il bleu ?"}],
    [{"role": "user", "content": "How do I reverse a list in Python?"}],
]


def g7(x):
    return float(f"{float(x):.7g}")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha(path):
    have = sha256_of(path)
    sums = os.path.join(os.path.dirname(os.path.abspath(path)), "SHA256SUMS")
    want = MODEL_SHA256
    if os.path.exists(sums):
        for line in open(sums):
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == os.path.basename(path):
                if parts[0] != MODEL_SHA256:
                    raise SystemExit(f"{sums} says {parts[0]}, this script pins {MODEL_SHA256}")
        print(f"sha256: checked against {sums} and the pinned value")
    if have != want:
        raise SystemExit(f"{path}: sha256 {have} != {want}")
    return have


def torch_description(torch):
    desc = torch.__version__
    if torch.__file__.startswith("/usr/lib/python3/"):
        try:
            deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"],
                                 capture_output=True, text=True, check=True).stdout
            desc += f" (Debian python3-torch {deb})"
        except (OSError, subprocess.CalledProcessError):
            pass
    return desc


# ------------------------------------------------------------------ GGUF, straight
def gguf_metadata_and_tensors(path):
    """(chat_template, config dict, {name: float32 ndarray in GGUF row layout}) via gguf."""
    import gguf
    r = gguf.GGUFReader(path)

    def val(key):
        return r.fields[key].contents()

    template = val("tokenizer.chat_template")
    cfg = dict(
        n_layers=int(val("llama.block_count")),
        dim=int(val("llama.embedding_length")),
        n_heads=int(val("llama.attention.head_count")),
        n_kv_heads=int(val("llama.attention.head_count_kv")),
        rope_theta=float(val("llama.rope.freq_base")),
        eps=float(val("llama.attention.layer_norm_rms_epsilon")),
    )
    tensors = {}
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(x) for x in reversed(t.shape))  # GGUF lists ne0 (row length) first
        tensors[t.name] = np.asarray(w, dtype=np.float32).reshape(shape)
    return template, cfg, tensors


def llamacpp_permute(w, n_head):
    """llama.cpp convert_hf_to_gguf's Q/K permute (HF half-split -> adjacent pairs)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
             .swapaxes(1, 2).reshape(w.shape))


def numpy_forward(cfg, t, tokens):
    """llama.cpp-style forward in float64 from raw GGUF tensors: Q/K rows as stored
    (no un-permutation), RoPE on adjacent pairs (i, i+1); logits [T, vocab]."""
    dim, H, KV = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    hs = dim // H
    T = len(tokens)
    eps, theta = cfg["eps"], cfg["rope_theta"]
    f64 = lambda name: t[name].astype(np.float64)

    def rmsnorm(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    i = np.arange(0, hs, 2, dtype=np.float64)
    ang = np.arange(T, dtype=np.float64)[:, None] * (1.0 / theta ** (i / hs))
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(v, n_h):
        v = v.reshape(T, n_h, hs // 2, 2)
        a, b = v[..., 0], v[..., 1]
        return np.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(T, n_h, hs)

    emb = f64("token_embd.weight")
    x = emb[np.asarray(tokens)]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(cfg["n_layers"]):
        p = f"blk.{l}."
        xb = rmsnorm(x, f64(p + "attn_norm.weight"))
        q = rope(xb @ f64(p + "attn_q.weight").T, H)
        k = rope(xb @ f64(p + "attn_k.weight").T, KV)
        v = (xb @ f64(p + "attn_v.weight").T).reshape(T, KV, hs)
        out = np.empty((T, H, hs))
        for h in range(H):
            kv = h // (H // KV)
            s = q[:, h] @ k[:, kv].T / np.sqrt(hs) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[:, h] = s @ v[:, kv]
        x = x + out.reshape(T, dim) @ f64(p + "attn_output.weight").T
        xb = rmsnorm(x, f64(p + "ffn_norm.weight"))
        g = xb @ f64(p + "ffn_gate.weight").T
        u = xb @ f64(p + "ffn_up.weight").T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ f64(p + "ffn_down.weight").T
    x = rmsnorm(x, f64("output_norm.weight"))
    return x @ emb.T


def check_weights(model, cfg, t):
    """Every transformers tensor equals the gguf package's dequantization (bit for bit)."""
    sd = model.state_dict()
    H, KV = cfg["n_heads"], cfg["n_kv_heads"]
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
             "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    pairs = [("token_embd.weight", "model.embed_tokens.weight", None),
             ("token_embd.weight", "lm_head.weight", None),
             ("output_norm.weight", "model.norm.weight", None)]
    for l in range(cfg["n_layers"]):
        for g, h in names.items():
            n_perm = H if g == "attn_q" else KV if g == "attn_k" else None
            pairs.append((f"blk.{l}.{g}.weight", f"model.layers.{l}.{h}.weight", n_perm))
    assert len(pairs) == len(t) + 1, (len(pairs), len(t))
    permuted_differs = 0
    for gname, hname, n_perm in pairs:
        hw = sd[hname].detach().cpu().numpy()
        gw = t[gname]
        if n_perm is not None:
            # transformers' tensor, put back into llama.cpp's row order, is the GGUF tensor ...
            if not np.array_equal(llamacpp_permute(hw, n_perm), gw):
                raise SystemExit(f"weight check: {hname} is not the un-permuted {gname}")
            # ... and the permutation is not the identity for it
            permuted_differs += int(not np.array_equal(hw, gw))
        elif not np.array_equal(hw, gw):
            raise SystemExit(f"weight check: {hname} != {gname}")
    print(f"weight check: {len(pairs)} transformers tensors equal the gguf package's "
          f"dequantization bit for bit (lm_head tied to token_embd; {permuted_differs} Q/K "
          f"tensors equal only after llama.cpp's row permutation)")


# ------------------------------------------------------------------ tokenizer check
def check_tokenizer_against_llamacpp(tok, model_path):
    import regex
    ref = os.path.join(os.path.dirname(os.path.abspath(model_path)), "tokenizer_reference.jsonl")
    if not os.path.exists(ref):
        print(f"tokenizer check: {ref} not found, skipped")
        return None
    digit = regex.compile(r"\p{N}")
    n = same = 0
    bad = []
    for line in open(ref, encoding="utf-8"):
        d = json.loads(line)
        if not d["parse_special"] or digit.search(d["text"]):
            continue
        n += 1
        ids = tok(d["text"], add_special_tokens=False)["input_ids"]
        if ids == d["ids"]:
            same += 1
        else:
            bad.append(d["text"])
    print(f"tokenizer check: transformers' GGUF-derived tokenizer equals llama.cpp on "
          f"{same}/{n} digit-free reference strings (parse_special=true)")
    for b in bad[:5]:
        print(f"  differs: {b!r}")
    return {"checked": n, "equal": same}


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--skip-numpy-check", action="store_true",
                    help="skip the float64 numpy forward pass (saves about a minute)")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")

    import gguf
    import jinja2
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

    t0 = time.time()
    sha = check_sha(a.model)
    torch.manual_seed(0)
    torch.set_grad_enabled(False)

    template, cfg, gt = gguf_metadata_and_tensors(a.model)
    print(f"gguf: {len(gt)} tensors, config {cfg}")

    d, fname = os.path.split(os.path.abspath(a.model))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=fname)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=fname, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    untied = model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    model.lm_head.weight = model.model.embed_tokens.weight
    model.eval()
    print(f"model: {type(model).__name__}, lm_head was {'untied' if untied else 'tied'} "
          f"after loading; tied now; config.vocab_size {model.config.vocab_size}")
    assert model.config.num_hidden_layers == cfg["n_layers"]
    assert model.config.rope_theta == cfg["rope_theta"], model.config.rope_theta
    assert abs(model.config.rms_norm_eps - cfg["eps"]) < 1e-12, model.config.rms_norm_eps
    check_weights(model, cfg, gt)

    assert tok.convert_tokens_to_ids("<|im_start|>") == 1
    assert tok.convert_tokens_to_ids("<|im_end|>") == 2
    tok_check = check_tokenizer_against_llamacpp(tok, a.model)
    jenv = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    jtemplate = jenv.from_string(template)

    prompts = []
    numpy_diff = None
    min_margin = (float("inf"), None, None)
    max_kv_diff = 0.0
    for pi, messages in enumerate(CONVERSATIONS):
        for m in messages:
            assert not any(c.isdigit() for c in m["content"]), m
        rendered = tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                           add_generation_prompt=True)
        plain = jtemplate.render(messages=messages, add_generation_prompt=True)
        if rendered != plain:
            raise SystemExit(f"prompt {pi}: apply_chat_template != plain jinja2 render:\n"
                             f"{rendered!r}\n{plain!r}")
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
        n_start = rendered.count("<|im_start|>")
        n_end = rendered.count("<|im_end|>")
        if ids.count(1) != n_start or ids.count(2) != n_end or ids[0] != 1:
            raise SystemExit(f"prompt {pi}: control tokens not single ids: {ids}")
        if tok.decode(ids, clean_up_tokenization_spaces=False) != rendered:
            raise SystemExit(f"prompt {pi}: decode(encode(rendered)) != rendered")
        print(f"\nprompt {pi}: {len(ids)} tokens: {ids}")

        x = torch.tensor([ids], dtype=torch.long)
        logits = model(input_ids=x, use_cache=False).logits[0].float()       # [T, V]
        lp = logits.numpy()
        assert lp.shape == (len(ids), model.config.vocab_size) and np.all(np.isfinite(lp))
        if pi == 0 and not a.skip_numpy_check:
            ref = numpy_forward(cfg, gt, ids)
            numpy_diff = float(np.max(np.abs(ref - lp.astype(np.float64))))
            print(f"numpy check: float64 llama.cpp-layout forward vs transformers, "
                  f"max |diff| over all {len(ids)} positions x {lp.shape[1]} logits = "
                  f"{numpy_diff:.3e}")
            if not numpy_diff <= NUMPY_CHECK_TOL:
                raise SystemExit(f"numpy check FAILED: {numpy_diff} > {NUMPY_CHECK_TOL}")

        # greedy, full recompute
        seq = list(ids)
        greedy, margins, step_logits = [], [], []
        for step in range(N_NEW):
            if step == 0:
                last = logits[-1]
            else:
                last = model(input_ids=torch.tensor([seq], dtype=torch.long),
                             use_cache=False).logits[0, -1].float()
            step_logits.append(last.numpy().copy())
            top2 = torch.topk(last, 2)
            nxt = int(top2.indices[0])
            margin = float(top2.values[0] - top2.values[1])
            margins.append(margin)
            if margin < min_margin[0]:
                min_margin = (margin, pi, step)
            greedy.append(nxt)
            seq.append(nxt)

        # cross-check: KV-cache greedy loop gives the same ids, logits close
        out = model(input_ids=x, past_key_values=DynamicCache(), use_cache=True)
        past, last = out.past_key_values, out.logits[0, -1].float()
        kv_diff = 0.0
        for step in range(N_NEW):
            kv_diff = max(kv_diff, float(np.max(np.abs(last.numpy() - step_logits[step]))))
            nxt = int(torch.argmax(last))
            if nxt != greedy[step]:
                raise SystemExit(f"prompt {pi} step {step}: KV-cache loop picks {nxt}, "
                                 f"full recompute {greedy[step]}")
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past, last = out.past_key_values, out.logits[0, -1].float()
        max_kv_diff = max(max_kv_diff, kv_diff)
        if not kv_diff <= KV_CHECK_TOL:
            raise SystemExit(f"prompt {pi}: KV-cache vs full recompute logits {kv_diff}")

        text = tok.decode(greedy, skip_special_tokens=False,
                          clean_up_tokenization_spaces=False)
        eos_at = greedy.index(2) if 2 in greedy else None
        print(f"greedy ids: {greedy}")
        print(f"greedy text: {text!r}")
        print(f"min top-1/top-2 margin {min(margins):.4g} at step {int(np.argmin(margins))}; "
              f"KV-cache vs recompute max |diff| {kv_diff:.2e}; first <|im_end|> at "
              f"{eos_at}")

        top = torch.topk(logits, TOP_K, dim=-1)
        prompts.append({
            "messages": messages,
            "rendered": rendered,
            "prompt_ids": ids,
            "greedy_ids": greedy,
            "greedy_text": text,
            "first_eos_step": eos_at,
            "greedy_margins": [g7(m) for m in margins],
            "logits": [[g7(v) for v in row[::LOGIT_STRIDE]] for row in lp],
            "top_ids": top.indices.tolist(),
            "top_logits": [[g7(v) for v in row] for row in top.values.tolist()],
        })

    if min_margin[0] < MIN_MARGIN:
        raise SystemExit(f"greedy margin {min_margin[0]} at prompt {min_margin[1]} step "
                         f"{min_margin[2]} is below {MIN_MARGIN}: choose another prompt")

    vocab = model.config.vocab_size
    doc = {
        "model": os.path.basename(a.model),
        "sha256": sha,
        "transformers": transformers.__version__,
        "torch": torch_description(torch),
        "gguf": gguf.__version__ if hasattr(gguf, "__version__") else _dist_version("gguf"),
        "jinja2": jinja2.__version__,
        "numpy": np.__version__,
        "made_by": "scripts/reference/make-smollm2-reference",
        "dtype": "float32, CPU, eager attention; lm_head tied to token_embd",
        "chat_template": template,
        "vocab_size": vocab,
        "n_new": N_NEW,
        "logit_stride": LOGIT_STRIDE,
        "logit_ids": list(range(0, vocab, LOGIT_STRIDE)),
        "self_check": {
            "numpy_float64_llamacpp_layout_max_abs_diff_prompt0": numpy_diff,
            "kv_cache_vs_recompute_max_abs_diff": max_kv_diff,
            "min_greedy_margin": min_margin[0],
            "min_greedy_margin_at": {"prompt": min_margin[1], "step": min_margin[2]},
            "tokenizer_vs_llamacpp_digit_free": tok_check,
        },
        "prompts": prompts,
    }
    write_fixture(doc, a.out)
    size = os.path.getsize(a.out)
    print(f"\nwrote {a.out}: {size} bytes, {len(prompts)} prompts, "
          f"{sum(len(p['prompt_ids']) for p in prompts)} prompt positions x "
          f"{len(doc['logit_ids'])} logits")
    print(f"min top-1/top-2 margin over all greedy steps: {min_margin[0]:.4g} "
          f"(prompt {min_margin[1]}, step {min_margin[2]}); KV-cache vs recompute max |diff| "
          f"{max_kv_diff:.2e}; {time.time() - t0:.0f} s")


def _dist_version(name):
    from importlib.metadata import version
    return version(name)


def write_fixture(doc, path):
    """Readable but compact JSON: one line per prompt position for the big arrays."""
    c = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    big = ("logits", "top_ids", "top_logits")
    lines = ["{"]
    top_items = [(k, v) for k, v in doc.items() if k != "prompts"]
    for k, v in top_items:
        lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
    lines.append('  "prompts": [')
    for i, p in enumerate(doc["prompts"]):
        lines.append("    {")
        items = list(p.items())
        for j, (k, v) in enumerate(items):
            end = "," if j < len(items) - 1 else ""
            if k in big:
                rows = ",\n        ".join(c(r) for r in v)
                lines.append(f"      {json.dumps(k)}: [\n        {rows}\n      ]{end}")
            else:
                lines.append(f"      {json.dumps(k)}: {c(v)}{end}")
        lines.append("    }" + ("," if i < len(doc["prompts"]) - 1 else ""))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    back = json.loads(text)
    assert back == json.loads(json.dumps(doc)), "fixture does not round-trip"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
