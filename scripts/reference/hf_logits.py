#!/usr/bin/env python3
"""Reference logits for stories260K from Hugging Face transformers (CPU, fp32).

Run through scripts/reference/make-hf-logits, which sets up the environment.

Mode A: independent llama2.c -> HF Llama conversion (needs numpy + safetensors only)
    hf_logits.py --llama2c stories260K.bin --out-dir DIR
  Writes DIR/config.json (LlamaForCausalLM) and DIR/model.safetensors. wq/wk are
  permuted from llama2.c's adjacent-pair RoPE layout (i, i+1) to HF's half-split
  layout (i, i + head_dim/2), as transformers' convert_llama_weights_to_hf does.

Mode B: logits from transformers' LlamaForCausalLM for the fixed 20-token prompt
    hf_logits.py --model-dir DIR --out FIXTURE.json [--check-llama2c stories260K.bin]
  With --check-llama2c, also runs a plain numpy llama2.c-style forward pass (float64,
  adjacent-pair RoPE, straight from the .bin, no permutation) and fails unless it
  matches transformers to 1e-4 max abs error on every logit.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

# Fixed prompt: BOS (1), then the tok512 (SentencePiece) encoding of
# "Once upon a time, there was a little girl named Lily. She loved to".
PROMPT_TEXT = "Once upon a time, there was a little girl named Lily. She loved to"
PROMPT_TOKENS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376,
                 298, 315, 421, 395, 317, 426, 338, 401, 396, 267]
assert len(PROMPT_TOKENS) == 20

ROPE_THETA = 10000.0
RMS_EPS = 1e-5
CHECK_TOL = 1e-4


# ---------------------------------------------------------------- llama2.c reader
def read_llama2c(path):
    """Returns (config dict, dict of float32 numpy arrays) from a legacy llama2.c .bin."""
    with open(path, "rb") as f:
        data = f.read()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack("<7i", data[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    head_size = dim // n_heads
    kv_dim = n_kv_heads * head_size
    cfg = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads,
               n_kv_heads=n_kv_heads, vocab_size=vocab, seq_len=seq_len,
               head_size=head_size, kv_dim=kv_dim, shared_classifier=shared)
    L = n_layers
    shapes = [
        ("token_embedding", (vocab, dim)),
        ("rms_att", (L, dim)),
        ("wq", (L, dim, dim)),
        ("wk", (L, kv_dim, dim)),
        ("wv", (L, kv_dim, dim)),
        ("wo", (L, dim, dim)),
        ("rms_ffn", (L, dim)),
        ("w1", (L, hidden, dim)),
        ("w2", (L, dim, hidden)),
        ("w3", (L, hidden, dim)),
        ("rms_final", (dim,)),
        ("freq_cis_real", (seq_len * head_size // 2,)),
        ("freq_cis_imag", (seq_len * head_size // 2,)),
    ]
    if not shared:
        shapes.append(("wcls", (vocab, dim)))
    floats = np.frombuffer(data, dtype="<f4", offset=28)
    need = sum(int(np.prod(s)) for _, s in shapes)
    if floats.size != need:
        raise SystemExit(f"{path}: expected {need} floats after the header, found {floats.size}")
    w, off = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        w[name] = floats[off:off + n].reshape(shape).astype(np.float32)
        off += n
    if shared:
        w["wcls"] = w["token_embedding"]
    return cfg, w


# ---------------------------------------------------------------- mode A
def permute_rope(w, n_heads, dim1, dim2):
    """transformers' convert_llama_weights_to_hf permute: adjacent pairs -> half split."""
    return (w.reshape(n_heads, dim1 // n_heads // 2, 2, dim2)
             .transpose(0, 2, 1, 3)
             .reshape(dim1, dim2))


def convert(llama2c_path, out_dir):
    from safetensors.numpy import save_file

    c, w = read_llama2c(llama2c_path)
    if not c["shared_classifier"]:
        raise SystemExit("this converter expects a tied classifier (positive vocab_size)")
    os.makedirs(out_dir, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c["vocab_size"],
        "hidden_size": c["dim"],
        "intermediate_size": c["hidden_dim"],
        "num_hidden_layers": c["n_layers"],
        "num_attention_heads": c["n_heads"],
        "num_key_value_heads": c["n_kv_heads"],
        "head_dim": c["head_size"],
        "hidden_act": "silu",
        "max_position_embeddings": c["seq_len"],
        "rms_norm_eps": RMS_EPS,
        "rope_theta": ROPE_THETA,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "torch_dtype": "float32",
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    dim, kv_dim, H, KV = c["dim"], c["kv_dim"], c["n_heads"], c["n_kv_heads"]
    t = {"model.embed_tokens.weight": w["token_embedding"],
         "model.norm.weight": w["rms_final"]}
    for l in range(c["n_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = w["rms_att"][l]
        t[p + "post_attention_layernorm.weight"] = w["rms_ffn"][l]
        t[p + "self_attn.q_proj.weight"] = permute_rope(w["wq"][l], H, dim, dim)
        t[p + "self_attn.k_proj.weight"] = permute_rope(w["wk"][l], KV, kv_dim, dim)
        t[p + "self_attn.v_proj.weight"] = w["wv"][l]
        t[p + "self_attn.o_proj.weight"] = w["wo"][l]
        t[p + "mlp.gate_proj.weight"] = w["w1"][l]
        t[p + "mlp.down_proj.weight"] = w["w2"][l]
        t[p + "mlp.up_proj.weight"] = w["w3"][l]
    t = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items()}
    save_file(t, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    print(f"wrote {out_dir}/config.json and model.safetensors ({len(t)} tensors)")


# ---------------------------------------------------------------- numpy reference
def numpy_forward(llama2c_path, tokens):
    """llama2.c run.c forward pass in float64, all positions; returns [T, vocab]."""
    c, w = read_llama2c(llama2c_path)
    w = {k: v.astype(np.float64) for k, v in w.items()}
    dim, hs, H, KV = c["dim"], c["head_size"], c["n_heads"], c["n_kv_heads"]
    kv_mul = H // KV
    T = len(tokens)

    def rmsnorm(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + RMS_EPS) * g

    def rope(v, n_h):  # v: [T, n_h*hs], rotate adjacent pairs (i, i+1) within each head
        v = v.reshape(T, n_h, hs // 2, 2).copy()
        i = np.arange(0, hs, 2, dtype=np.float64)
        freq = 1.0 / (ROPE_THETA ** (i / hs))                  # [hs/2]
        ang = np.arange(T, dtype=np.float64)[:, None] * freq   # [T, hs/2]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        v0, v1 = v[..., 0].copy(), v[..., 1].copy()
        v[..., 0] = v0 * cos - v1 * sin
        v[..., 1] = v0 * sin + v1 * cos
        return v.reshape(T, n_h * hs)

    x = w["token_embedding"][np.asarray(tokens)]              # [T, dim]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(c["n_layers"]):
        xb = rmsnorm(x, w["rms_att"][l])
        q = rope(xb @ w["wq"][l].T, H).reshape(T, H, hs)
        k = rope(xb @ w["wk"][l].T, KV).reshape(T, KV, hs)
        v = (xb @ w["wv"][l].T).reshape(T, KV, hs)
        out = np.empty((T, H, hs))
        for h in range(H):
            kh, vh = k[:, h // kv_mul], v[:, h // kv_mul]
            s = q[:, h] @ kh.T / np.sqrt(hs) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[:, h] = s @ vh
        x = x + out.reshape(T, dim) @ w["wo"][l].T
        xb = rmsnorm(x, w["rms_ffn"][l])
        h1 = xb @ w["w1"][l].T
        h3 = xb @ w["w3"][l].T
        x = x + ((h1 / (1.0 + np.exp(-h1))) * h3) @ w["w2"][l].T
    x = rmsnorm(x, w["rms_final"])
    return x @ w["wcls"].T


# ---------------------------------------------------------------- mode B
def hf_logits(model_dir, out_path, check_llama2c):
    import torch
    import transformers
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                             attn_implementation="eager")
    model.eval()
    ids = torch.tensor([PROMPT_TOKENS], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0].float().numpy()
    T, V = logits.shape
    assert T == len(PROMPT_TOKENS) and V == model.config.vocab_size, logits.shape
    assert np.all(np.isfinite(logits))

    if check_llama2c:
        ref = numpy_forward(check_llama2c, PROMPT_TOKENS)
        diff = float(np.max(np.abs(ref - logits.astype(np.float64))))
        print(f"self-check: max abs diff numpy(llama2.c, float64) vs transformers = {diff:.3e}")
        if not diff <= CHECK_TOL:
            raise SystemExit(f"self-check FAILED: {diff} > {CHECK_TOL}")
        # The numpy pass uses llama2.c's own layout (no permutation), so agreement
        # shows the wq/wk permutation maps adjacent-pair RoPE onto HF's half split.

    torch_desc = f"torch {torch.__version__}"
    if torch.__file__.startswith("/usr/lib/python3/"):
        try:
            import subprocess
            deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"],
                                 capture_output=True, text=True, check=True).stdout
            torch_desc += f" (Debian python3-torch {deb})"
        except (OSError, subprocess.CalledProcessError):
            pass
    source = (f"transformers {transformers.__version__} LlamaForCausalLM (CPU, float32, "
              f"eager attention), {torch_desc}, numpy {np.__version__}; "
              f"weights converted from llama2.c stories260K.bin by "
              f"scripts/reference/hf_logits.py; prompt: BOS + tok512 encoding of "
              f"{PROMPT_TEXT!r}")
    rows = ",\n    ".join("[" + ", ".join("%.9g" % float(v) for v in row) + "]"
                         for row in logits)
    text = ("{\n"
            '  "model": "stories260K",\n'
            f'  "source": {json.dumps(source)},\n'
            f'  "tokens": {json.dumps(PROMPT_TOKENS)},\n'
            f'  "vocab_size": {V},\n'
            '  "logits": [\n    ' + rows + "\n  ]\n"
            "}\n")
    back = json.loads(text)  # round-trip: %.9g is exact for float32
    assert np.array_equal(np.asarray(back["logits"], dtype=np.float32), logits)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        f.write(text)
    print(f"wrote {out_path}: {T} x {V} logits; argmax per position: "
          f"{logits.argmax(axis=-1).tolist()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama2c", help="mode A: llama2.c checkpoint to convert")
    ap.add_argument("--out-dir", help="mode A: HF model directory to write")
    ap.add_argument("--model-dir", help="mode B: HF model directory to load")
    ap.add_argument("--out", help="mode B: fixture JSON to write")
    ap.add_argument("--check-llama2c", help="mode B: .bin for the numpy self-check")
    a = ap.parse_args()
    if a.llama2c and a.out_dir and not (a.model_dir or a.out):
        convert(a.llama2c, a.out_dir)
    elif a.model_dir and a.out and not (a.llama2c or a.out_dir):
        hf_logits(a.model_dir, a.out, a.check_llama2c)
    else:
        ap.error("use either --llama2c FILE --out-dir DIR, or --model-dir DIR --out FILE")


if __name__ == "__main__":
    sys.exit(main())
