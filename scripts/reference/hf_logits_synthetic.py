#!/usr/bin/env python3
"""Reference logits for fleet's synthetic test shapes from Hugging Face transformers.

Run through scripts/reference/make-hf-logits-synthetic, which sets up the environment
(the same build/reference-venv as make-hf-logits) and writes each model directory with
`fleet synth --shape SHAPE --dtype f32 --seed 3 --out DIR`.

    hf_logits_synthetic.py --shape SHAPE --model-dir DIR --out FIXTURE.json

Loads DIR with AutoModelForCausalLM (CPU, float32, eager attention, eval, no grad) and
writes the logits at every position of a fixed prompt. Before writing it checks that
transformers really runs the architecture's distinguishing features:
  * every tensor of the file was loaded and none was left at random init;
  * tiny-llama3: the rotary embedding is of type "llama3", its inv_freq equals an
    independent computation of Llama 3's scaling and differs from the unscaled one,
    and the prompt is 80 tokens long so positions beyond original_max_position (64)
    are used;
  * tiny-qwen2: q/k/v projections have biases equal to the file's (o_proj none);
  * tiny-mistral: no sliding window shorter than the prompt;
and it runs an independent numpy float64 forward pass (written from the architectures'
definitions, reading the safetensors directly) that must match transformers to 1e-4.
Qwen3ForCausalLM needs transformers >= 4.51, which needs torch >= 2; with Debian's torch
1.13 and transformers 4.46 the script refuses tiny-qwen3 (exit code 3).
"""

import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

SEED = 3
BASE_PROMPT = [1, 17, 300, 42, 511, 7, 99, 250, 3, 128, 64, 5]
CHECK_TOL = 1e-4


def prompt_for(shape):
    """12 fixed tokens; tiny-llama3 continues to 80 so RoPE positions pass 64."""
    if shape != "tiny-llama3":
        return list(BASE_PROMPT)
    toks = list(BASE_PROMPT)
    while len(toks) < 80:
        toks.append((toks[-1] * 37 + 11 * len(toks) + 5) % 997 + 3)
    return toks


# ---------------------------------------------------------------- numpy reference
def llama3_inv_freq(inv_freq, rs):
    """Llama 3 frequency-dependent scaling, from Meta's reference apply_scaling."""
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for f in inv_freq:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return np.asarray(out, dtype=np.float64)


def numpy_forward(model_dir, tokens):
    """Float64 forward pass of Llama / Mistral / Qwen2 / Qwen3 (HF half-split RoPE)."""
    from safetensors.numpy import load_file

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = {}
    for name in sorted(os.listdir(model_dir)):
        if name.endswith(".safetensors"):
            w.update({k: v.astype(np.float64) for k, v in load_file(os.path.join(model_dir, name)).items()})
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or D // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    T = len(tokens)
    inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    rs = cfg.get("rope_scaling")
    if rs:
        assert rs.get("rope_type", rs.get("type")) == "llama3", rs
        inv = llama3_inv_freq(inv, rs)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]       # [T, hd/2]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    def rope(v):  # [T, n, hd], halves (i, i + hd/2)
        a, b = v[..., :hd // 2], v[..., hd // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)

    x = w["model.embed_tokens.weight"][np.asarray(tokens)]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        xb = rms(x, w[p + "input_layernorm.weight"])

        def proj(n):
            y = xb @ w[p + f"self_attn.{n}_proj.weight"].T
            b = w.get(p + f"self_attn.{n}_proj.bias")
            return y if b is None else y + b

        q, k, v = proj("q").reshape(T, H, hd), proj("k").reshape(T, KV, hd), proj("v").reshape(T, KV, hd)
        if p + "self_attn.q_norm.weight" in w:
            q, k = rms(q, w[p + "self_attn.q_norm.weight"]), rms(k, w[p + "self_attn.k_norm.weight"])
        q, k = rope(q), rope(k)
        out = np.empty((T, H, hd))
        for h in range(H):
            g = h // (H // KV)
            s = q[:, h] @ k[:, g].T / math.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            out[:, h] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, g]
        x = x + out.reshape(T, H * hd) @ w[p + "self_attn.o_proj.weight"].T
        xb = rms(x, w[p + "post_attention_layernorm.weight"])
        g1, u = xb @ w[p + "mlp.gate_proj.weight"].T, xb @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g1 / (1.0 + np.exp(-g1))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


# ---------------------------------------------------------------- transformers
def torch_description(torch):
    desc = f"torch {torch.__version__}"
    if torch.__file__.startswith("/usr/lib/python3/"):
        try:
            deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"],
                                 capture_output=True, text=True, check=True).stdout
            desc += f" (Debian python3-torch {deb})"
        except (OSError, subprocess.CalledProcessError):
            pass
    return desc


def check_features(shape, model, cfg, file_tensors, T):
    import torch

    notes = []
    inner = model.model
    if shape == "tiny-llama3":
        rs = cfg["rope_scaling"]
        assert rs["rope_type"] == "llama3" and rs["original_max_position_embeddings"] < T, rs
        rot = inner.rotary_emb
        assert getattr(rot, "rope_type", None) == "llama3", getattr(rot, "rope_type", None)
        for layer in inner.layers:  # 4.46 layers share model.rotary_emb; guard anyway
            r = getattr(layer.self_attn, "rotary_emb", None)
            assert r is None or getattr(r, "rope_type", "llama3") == "llama3"
        hd = cfg["head_dim"]
        plain = 1.0 / cfg["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
        want = llama3_inv_freq(plain, rs)
        got = rot.inv_freq.double().numpy()
        assert np.allclose(got, want, rtol=1e-6, atol=0), (got, want)
        n_scaled = int(np.sum(np.abs(want - plain) > 1e-6 * plain))
        n_smooth = int(np.sum((want != plain) & (np.abs(want - plain / rs["factor"]) > 1e-9 * plain)))
        assert n_scaled > 0 and n_smooth > 0, (n_scaled, n_smooth)
        notes.append(f"rotary_emb.rope_type=llama3; inv_freq matches the independent llama3 scaling "
                     f"({n_scaled} of {len(plain)} frequencies scaled, {n_smooth} of them smoothed); "
                     f"prompt of {T} tokens (original_max_position_embeddings "
                     f"{rs['original_max_position_embeddings']})")
    if shape == "tiny-qwen2":
        for l, layer in enumerate(inner.layers):
            a = layer.self_attn
            for n in ("q", "k", "v"):
                b = getattr(a, f"{n}_proj").bias
                assert b is not None, (l, n)
                ref = file_tensors[f"model.layers.{l}.self_attn.{n}_proj.bias"]
                assert torch.equal(b.detach(), torch.from_numpy(ref)), (l, n)
            assert a.o_proj.bias is None
        notes.append("q/k/v_proj biases present and equal to the file's; o_proj without bias")
    if shape == "tiny-mistral":
        sw = getattr(model.config, "sliding_window", None)
        assert sw is None or sw >= T, sw
        notes.append(f"sliding_window={sw} (>= prompt length, no effect)")
    return notes


def run(shape, model_dir, out_path):
    import torch
    import transformers
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    arch = cfg["architectures"][0]
    if not hasattr(transformers, arch):
        print(f"{shape}: transformers {transformers.__version__} has no {arch} "
              f"(Qwen3 arrived in 4.51, which needs torch >= 2); skipped", file=sys.stderr)
        return 3
    assert cfg.get("fleet_synthetic", {}).get("seed") == SEED, cfg.get("fleet_synthetic")
    tokens = prompt_for(shape)
    T, V = len(tokens), cfg["vocab_size"]
    assert max(tokens) < V, (max(tokens), V)

    torch.manual_seed(0)
    model, info = AutoModelForCausalLM.from_pretrained(
        model_dir, torch_dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    model.eval()
    assert type(model).__name__ == arch, (type(model).__name__, arch)
    assert model.config._attn_implementation == "eager"
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"loading info: {bad}"
    file_tensors = {}
    for name in sorted(os.listdir(model_dir)):
        if name.endswith(".safetensors"):
            file_tensors.update(load_file(os.path.join(model_dir, name)))
    state = model.state_dict()
    for k, v in file_tensors.items():  # every file tensor really is in the model
        assert torch.equal(state[k], torch.from_numpy(v)), k
    params = {k for k, _ in model.named_parameters()}
    tied = {"lm_head.weight"} if cfg["tie_word_embeddings"] else set()
    assert params - tied <= set(file_tensors), params - tied - set(file_tensors)
    notes = check_features(shape, model, cfg, file_tensors, T)

    ids = torch.tensor([tokens], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0].float().numpy()
    assert logits.shape == (T, V), logits.shape
    assert np.all(np.isfinite(logits))

    ref = numpy_forward(model_dir, tokens)
    diff = float(np.max(np.abs(ref - logits.astype(np.float64))))
    print(f"{shape}: self-check max abs diff numpy(float64) vs transformers = {diff:.3e}")
    if not diff <= CHECK_TOL:
        raise SystemExit(f"{shape}: self-check FAILED: {diff} > {CHECK_TOL}")

    source = (f"transformers {transformers.__version__} {arch} via AutoModelForCausalLM "
              f"(CPU, float32, eager attention), {torch_description(torch)}, numpy {np.__version__}; "
              f"model written by `fleet synth --shape {shape} --dtype f32 --seed {SEED}`; "
              f"checked: " + "; ".join(notes + [f"numpy float64 forward within {diff:.2e}"]))
    rows = ",\n    ".join("[" + ", ".join("%.9g" % float(v) for v in row) + "]" for row in logits)
    text = ("{\n"
            f'  "shape": {json.dumps(shape)},\n'
            f'  "seed": {SEED},\n'
            '  "dtype": "f32",\n'
            f'  "source": {json.dumps(source)},\n'
            f'  "tokens": {json.dumps(tokens)},\n'
            f'  "vocab_size": {V},\n'
            '  "logits": [\n    ' + rows + "\n  ]\n"
            "}\n")
    back = json.loads(text)  # %.9g round-trips float32 exactly
    assert np.array_equal(np.asarray(back["logits"], dtype=np.float32), logits)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        f.write(text)
    print(f"wrote {out_path}: {T} x {V} logits; " + "; ".join(notes))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", required=True)
    ap.add_argument("--model-dir", required=True, help="output of fleet synth --seed 3 --dtype f32")
    ap.add_argument("--out", required=True, help="fixture JSON to write")
    a = ap.parse_args()
    return run(a.shape, a.model_dir, a.out)


if __name__ == "__main__":
    sys.exit(main())
