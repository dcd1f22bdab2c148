"""Writes the GGUF test fixtures in tests/fixtures/gguf/ with the Python `gguf` package.

Run by scripts/reference/make-gguf-dequant-fixtures (which makes the venv and pins versions);
tests/model/gguf_test.cpp reads the results.

1. dequant_<type>.bin, one per ggml type the C++ reader dequantizes: random blocks and
   gguf.quants.dequantize's f32 output for them. Layout (little-endian):
     "FGDQ", u32 ggml type, u64 n (values), the blocks (n / block_size * type_size bytes),
     then n f32 (the expected dequantization, bit for bit).
   The block bytes are random, except that every f16 scale/min field is a random *finite*
   f16 (any finite bit pattern: zeros, subnormals, negatives, up to 65504), and F16/BF16/F32
   values are random finite bit patterns.
2. sample.gguf: a GGUFWriter file (v3, general.alignment 64) with metadata of every value
   type, typed arrays of every element type, nested arrays, and tensors of several types;
   each quantized tensor X comes with an F32 tensor "X.deq" holding gguf.quants.dequantize(X)
   (X is gguf.quants.quantize of normal noise, or random blocks for the K types, which gguf-py
   cannot quantize).
   The values are listed in SAMPLE below; the C++ test states the same literals.
"""
import argparse
import importlib.metadata
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V

SEED = 20240601
N_BLOCKS = 8           # blocks per quantized type
N_PLAIN = 256          # values for F32 / F16 / BF16

# Byte offsets of the f16 scale fields inside one block (ggml-common.h).
F16_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}


def random_finite(rng, n, bits, exp_mask):
    """n random unsigned integers of `bits` bits whose float reading is finite."""
    dt = {16: np.uint16, 32: np.uint32}[bits]
    v = rng.integers(0, 1 << bits, size=n, dtype=np.uint64).astype(dt)
    bad = (v & dt(exp_mask)) == dt(exp_mask)
    while bad.any():
        v[bad] = rng.integers(0, 1 << bits, size=int(bad.sum()), dtype=np.uint64).astype(dt)
        bad = (v & dt(exp_mask)) == dt(exp_mask)
    return v


def random_blocks(rng, qtype, n_blocks):
    """n_blocks random blocks of qtype whose f16 scale fields are random finite f16 values."""
    _, tsize = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, tsize), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        raw[:, off:off + 2] = random_finite(rng, n_blocks, 16, 0x7C00).view(np.uint8).reshape(n_blocks, 2)
    return raw


def dequant_fixture(rng, qtype):
    block, tsize = gguf.GGML_QUANT_SIZES[qtype]
    if qtype in (Q.F32, Q.F16, Q.BF16):
        n = N_PLAIN
        if qtype == Q.F32:
            raw = random_finite(rng, n, 32, 0x7F800000).view(np.uint8)
        elif qtype == Q.F16:
            raw = random_finite(rng, n, 16, 0x7C00).view(np.uint8)
        else:
            raw = random_finite(rng, n, 16, 0x7F80).view(np.uint8)
    else:
        n = N_BLOCKS * block
        raw = random_blocks(rng, qtype, N_BLOCKS).reshape(-1)
    assert raw.size == n // block * tsize
    out = gguf.quants.dequantize(raw.copy(), qtype).astype(np.float32, copy=False).reshape(-1)
    assert out.size == n and np.isfinite(out).all(), qtype.name
    return struct.pack("<4sIQ", b"FGDQ", int(qtype), n) + raw.tobytes() + out.astype("<f4").tobytes()


# Metadata of sample.gguf: (key, value, value type, array element type).
SAMPLE = [
    ("test.u8", 200, V.UINT8, None),
    ("test.i8", -100, V.INT8, None),
    ("test.u16", 60000, V.UINT16, None),
    ("test.i16", -30000, V.INT16, None),
    ("test.u32", 4000000000, V.UINT32, None),
    ("test.i32", -2000000000, V.INT32, None),
    ("test.f32", 3.14159, V.FLOAT32, None),
    ("test.bool_true", True, V.BOOL, None),
    ("test.bool_false", False, V.BOOL, None),
    ("test.string", "h\u00e9llo w\u00f6rld \u2713", V.STRING, None),
    ("test.empty_string", "", V.STRING, None),
    ("test.u64", 2**63 + 5, V.UINT64, None),
    ("test.i64", -(2**62) - 3, V.INT64, None),
    ("test.f64", 2.718281828459045, V.FLOAT64, None),
    ("test.arr.u8", [0, 1, 255], V.ARRAY, V.UINT8),
    ("test.arr.i8", [-128, 0, 127], V.ARRAY, V.INT8),
    ("test.arr.u16", [0, 65535], V.ARRAY, V.UINT16),
    ("test.arr.i16", [-32768, 32767], V.ARRAY, V.INT16),
    ("test.arr.u32", [0, 4294967295], V.ARRAY, V.UINT32),
    ("test.arr.i32", [-2147483648, 2147483647, 7], V.ARRAY, V.INT32),
    ("test.arr.f32", [0.5, -1.25, 1e-30], V.ARRAY, V.FLOAT32),
    ("test.arr.bool", [True, False, True], V.ARRAY, V.BOOL),
    ("test.arr.string", ["a", "", "\u00fcml\u00e4ut", "<|im_end|>"], V.ARRAY, V.STRING),
    ("test.arr.u64", [0, 2**64 - 1], V.ARRAY, V.UINT64),
    ("test.arr.i64", [-(2**63), 2**63 - 1], V.ARRAY, V.INT64),
    ("test.arr.f64", [1.0 / 3.0, -2.5e300], V.ARRAY, V.FLOAT64),
    ("test.arr.nested_i32", [[1, 2], [3], [4, 5, 6]], V.ARRAY, V.ARRAY),
    ("test.arr.nested_string", [["x", "y"], ["z"]], V.ARRAY, V.ARRAY),
    ("test.arr.nested3", [[[1]], [[2, 3], [4]]], V.ARRAY, V.ARRAY),
]


def write_sample(path):
    w = gguf.GGUFWriter(path, "llama")
    w.add_custom_alignment(64)
    for key, val, vtype, sub in SAMPLE:
        w.add_key_value(key, val, vtype, sub_type=sub)
    w.add_string("tokenizer.chat_template", "{{ messages }}")
    # Plain tensors with values the C++ test recomputes.
    w.add_tensor("plain.f32", (np.arange(2 * 3 * 4, dtype=np.float32) * 0.5 - 3).reshape(2, 3, 4))
    w.add_tensor("plain.f16", (np.arange(40, dtype=np.float32) * 0.25).astype(np.float16).reshape(5, 8))
    w.add_tensor("plain.vec", np.array([1.5, -2.0, 0.0], dtype=np.float32))
    # Quantized tensors of smooth data, each with its Python dequantization beside it.
    rng = np.random.default_rng(SEED + 1)
    for qtype, shape in [(Q.BF16, (2, 64)), (Q.Q8_0, (3, 64)), (Q.Q4_0, (2, 32)), (Q.Q4_1, (2, 64)),
                         (Q.Q5_0, (1, 64)), (Q.Q5_1, (2, 32)), (Q.Q4_K, (2, 256)), (Q.Q5_K, (1, 256)),
                         (Q.Q6_K, (2, 256))]:
        if qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K):  # gguf-py cannot quantize K types: random blocks
            block, tsize = gguf.GGML_QUANT_SIZES[qtype]
            nb = shape[1] // block
            q = random_blocks(rng, qtype, shape[0] * nb).reshape(shape[0], nb * tsize)
        else:
            q = gguf.quants.quantize(rng.standard_normal(shape).astype(np.float32), qtype)
        name = "quant." + qtype.name.lower()
        w.add_tensor(name, q, raw_dtype=qtype)
        w.add_tensor(name + ".deq", gguf.quants.dequantize(q, qtype).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", default="tests/fixtures/gguf")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for qtype in [Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]:
        path = os.path.join(args.out_dir, f"dequant_{qtype.name.lower()}.bin")
        with open(path, "wb") as f:
            f.write(dequant_fixture(rng, qtype))
        print(f"{path}: {os.path.getsize(path)} bytes")
    path = os.path.join(args.out_dir, "sample.gguf")
    write_sample(path)
    print(f"{path}: {os.path.getsize(path)} bytes (gguf {importlib.metadata.version('gguf')})")


if __name__ == "__main__":
    sys.exit(main())
