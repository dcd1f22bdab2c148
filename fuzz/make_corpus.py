#!/usr/bin/env python3
"""Regenerates the committed seed corpora under fuzz/corpus/<target>/ from the project's
fixtures (proto/schemas/examples, tests/fixtures) and small hand-built files. Deterministic;
run from anywhere: python3 fuzz/make_corpus.py. Keep the total well under 200 KB."""
import json
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# --- prompts / control: first byte = record-key flag (0x40) | key length; key at the end ----
def contract(target, kind, picks):
    ex = ROOT / "proto" / "schemas" / "examples" / kind
    for sub, name in picks:
        body = (ex / sub / name).read_bytes()
        put(target, f"{sub}-{Path(name).stem}", b"\x00" + body)
    body = (ex / picks[0][0] / picks[0][1]).read_bytes()
    put(target, "with-key", bytes([0x40 | 6]) + body + b"key-01")


contract("prompt_record", "prompt", [("valid", "chat.json"), ("valid", "full.json"), ("valid", "minimal.json"),
                                      ("valid", "json-schema.json"), ("valid", "tools.json"), ("valid", "tool-history.json"),
                                      ("invalid", "tools-without-messages.json"),
                                      ("valid", "nulls-read-as-absent.json"), ("invalid", "both-prompt-and-messages.json"),
                                      ("invalid", "too-many-stop-strings.json")])
contract("control_record", "control", [("valid", "cancel.json"), ("invalid", "bad-id.json"),
                                        ("invalid", "unknown-field.json")])


# --- activation: hand-encoded protobuf (proto/activation.proto) in fuzz_activation's format --
def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_v(num, v):
    return varint(num << 3) + varint(v)


def field_b(num, b):
    return varint((num << 3) | 2) + varint(len(b)) + b


def tensor_chunks(rid, step, rows, cols, dtype, esize, nchunks):
    data = bytes((i * 7) & 0xFF for i in range(rows * cols * esize))
    per = -(-len(data) // nchunks)
    chunks = []
    for k in range(nchunks):
        part = data[k * per:(k + 1) * per]
        t = field_v(1, dtype) + field_b(2, b"".join(varint(x) for x in (rows, cols))) + field_b(3, part)
        m = (field_b(1, rid.encode()) + field_v(2, step) + field_v(4, rows) + field_b(8, t) + field_v(9, k) +
             field_v(10, nchunks) + field_v(11, k * per) + field_v(12, len(data)) + field_b(13, b"sha256:ab"))
        chunks.append(m)
    return chunks


def ops(chunks, op=0):
    return b"".join(bytes([op]) + struct.pack("<H", len(c)) + c for c in chunks)


tokens = field_b(1, b"r1") + field_v(2, 0) + field_v(4, 3) + field_b(7, field_b(1, b"".join(varint(x) for x in (1, 5, 9)))) + \
    field_v(9, 0) + field_v(10, 1)
put("activation", "token-ids", ops([tokens]))
put("activation", "f32-one-chunk", ops(tensor_chunks("r2", 4, 2, 4, 1, 4, 1)))
three = tensor_chunks("r3", 1, 3, 8, 2, 2, 3)
put("activation", "bf16-three-chunks-reordered", ops([three[2], three[0], three[2], three[1]]))
put("activation", "f16-expire-and-forget", ops(tensor_chunks("r4", 2, 2, 8, 3, 2, 2)[:1]) + bytes([6 + 8 * 30, 7]) +
    ops(tensor_chunks("r4", 2, 2, 8, 3, 2, 2)))


# --- safetensors: u64 header length, JSON header, data -----------------------------------
def safetensors(tensors):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, (dtype, shape, esize) in tensors.items():
        n = esize
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes(i & 0xFF for i in range(n))
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


put("safetensors", "f32-bf16-f16", safetensors({"model.embed_tokens.weight": ("F32", [4, 2], 4),
                                               "model.norm.weight": ("BF16", [2], 2), "lm_head.weight": ("F16", [4, 2], 2)}))
put("safetensors", "scalar-and-empty", safetensors({"a": ("F32", [], 4), "b": ("F16", [0, 3], 2)}))

# --- config.json ------------------------------------------------------------------------
base = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": True, "bos_token_id": 1,
        "eos_token_id": [2, 3], "hidden_act": "silu"}
put("model_config", "llama3", json.dumps(dict(base, rope_scaling={"rope_type": "llama3", "factor": 8.0})))
put("model_config", "qwen2", json.dumps(dict(base, architectures=["Qwen2ForCausalLM"], eos_token_id=2)))
put("model_config", "qwen3", json.dumps(dict(base, architectures=["Qwen3ForCausalLM"], head_dim=32, attention_bias=False)))
put("model_config", "mistral-nulls", json.dumps(dict(base, architectures=["MistralForCausalLM"], head_dim=None,
                                                    rope_scaling=None, num_key_value_heads=None)))

# --- tokenizer.json -----------------------------------------------------------------------
put("tokenizer_json", "tok512-metaspace", (ROOT / "tests/fixtures/tokenizer/tok512_metaspace/tokenizer.json").read_bytes())
byte_level = {
    "added_tokens": [{"id": 8, "content": "<|end|>", "special": True, "lstrip": False, "rstrip": False,
                      "single_word": False}],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "ignore_merges": False, "byte_fallback": False,
              "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "He": 5, "ll": 6, "Hell": 7},
              "merges": ["H e", "l l", "He ll"]},
}
put("tokenizer_json", "byte-level-tiny", json.dumps(byte_level, ensure_ascii=False))


# --- llama2.c tokenizer.bin: i32 max_len, then (f32 score, i32 len, bytes) per token -------
def tok_bin(pieces):
    out = struct.pack("<i", max(len(p) for p in pieces))
    for i, p in enumerate(pieces):
        b = p.encode()
        out += struct.pack("<fi", -float(i), len(b)) + b
    return out


put("llama2c_tokenizer", "tiny", tok_bin(["<unk>", "\n<s>\n", "\n</s>\n"] + [f"<0x{b:02X}>" for b in range(256)] +
                                         [" ", "e", "t", " t", "th", " the", "he", "Once", " upon"]))
tok512 = ROOT / "models" / "stories260K" / "tok512.bin"
if tok512.exists():
    put("llama2c_tokenizer", "tok512", tok512.read_bytes())


# --- llama2.c checkpoint: 7 x i32 header, then f32 tensors (layers stacked) ---------------
def checkpoint(dim, hidden, layers, heads, kv_heads, vocab, seq, tied=True):
    head = dim // heads
    kv = kv_heads * head
    n = vocab * dim + layers * (dim + dim * dim + 2 * kv * dim + dim * dim + dim + 3 * hidden * dim) + dim + seq * head
    if not tied:
        n += vocab * dim
    return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if tied else -vocab, seq) + \
        struct.pack(f"<{n}f", *[(i % 17) * 0.01 for i in range(n)])


put("llama2c_checkpoint", "tiny-tied", checkpoint(8, 16, 2, 2, 1, 16, 4))
put("llama2c_checkpoint", "tiny-untied", checkpoint(8, 8, 1, 4, 4, 8, 2, tied=False))

# --- GGUF: the project's fixture ----------------------------------------------------------
put("gguf", "sample", (ROOT / "tests/fixtures/gguf/sample.gguf").read_bytes())

total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
print(f"fuzz/corpus: {sum(1 for p in OUT.rglob('*') if p.is_file())} files, {total} bytes")


# --- response_format: the format's JSON, a 0 byte, then text fed to the grammar ---------------
_schemas = json.loads((ROOT / "tests" / "fixtures" / "structured_outputs" / "schemas.json").read_text())
_texts = {"person": '{"name":"Ann","age":7}', "color_enum_const": '{"color":"red","kind":"fruit"}',
          "code_pattern": '{"code":"ABC-12"}', "order_items": '{"order_id":3,"items":[{"sku":"a","qty":2}]}'}
for _name, _schema in _schemas.items():
    _rf = {"type": "json_schema", "json_schema": {"name": _name, "schema": _schema, "strict": True}}
    put("response_format", _name, json.dumps(_rf) + "\0" + _texts.get(_name, "{"))
put("response_format", "json_object", '{"type": "json_object"}\0{"a":[1,2,{"b":null}]}')
put("response_format", "text", '{"type": "text"}')
put("response_format", "unsupported-keyword", '{"type": "json_schema", "json_schema": {"schema": {"type": "object", "minProperties": 1}}}')
put("response_format", "ref-to-nothing", '{"type": "json_schema", "json_schema": {"schema": {"$ref": "#/$defs/x"}}}')
put("response_format", "pattern-min-above-max-with-blank", '{"type": "json_schema", "json_schema": {"schema": {"type": "string", "pattern": "^a{3, 1}$"}}}')
_deep = '{"type": "string"}'
for _ in range(200):
    _deep = '{"type": "array", "items": ' + _deep + '}'
put("response_format", "deep-nesting", '{"type": "json_schema", "json_schema": {"schema": ' + _deep + '}}')
# tools: {"tools", "tool_choice"}, then text (a call in the Hermes format)
_tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
           "properties": {"city": {"type": "string", "maxLength": 20}, "unit": {"enum": ["c", "f"]}}, "required": ["city"]}}},
          {"type": "function", "function": {"name": "now"}}]
put("response_format", "tools-required", json.dumps({"tools": _tools, "tool_choice": "required"}) +
    '\0<tool_call>\n{"name":"get_weather","arguments":{"city":"Oslo"}}\n</tool_call>')
put("response_format", "tools-named", json.dumps({"tools": _tools, "tool_choice": {"type": "function", "function": {"name": "now"}}}) +
    '\0[TOOL_CALLS][{"name":"now","arguments":{}}]')
put("response_format", "tools-ref", json.dumps({"tools": [{"type": "function", "function": {"name": "f", "parameters":
    {"type": "object", "properties": {"x": {"$ref": "#"}}}}}]}))
