#pragma once
// ggml tensor element types as stored in GGUF files, their block layouts, and dequantization
// to f32.
//
// A row of a quantized tensor is a sequence of blocks; each block encodes `block_size` values
// in `type_size` bytes (little-endian, f16 scales). The layouts are exactly ggml's
// (ggml-common.h / ggml-quants.c):
//
//   type   block  bytes  layout
//   F32        1      4  f32
//   F16        1      2  IEEE binary16
//   BF16       1      2  bfloat16 (upper half of an f32)
//   Q4_0      32     18  d:f16, qs[16]  (value j: low nibble of qs[j], j+16: high nibble; (q-8)*d)
//   Q4_1      32     20  d:f16, m:f16, qs[16]  (q*d + m)
//   Q5_0      32     22  d:f16, qh:u32 (5th bits), qs[16]  ((q-16)*d)
//   Q5_1      32     24  d:f16, m:f16, qh:u32, qs[16]  (q*d + m)
//   Q8_0      32     34  d:f16, qs[32] int8  (q*d)
//   Q4_K     256    144  d:f16, dmin:f16, scales[12] (8 x 6-bit scale + 8 x 6-bit min), qs[128]
//   Q5_K     256    176  d:f16, dmin:f16, scales[12], qh[32], qs[128]
//   Q6_K     256    210  ql[128], qh[64], scales[16] int8, d:f16
//
// Dequantization uses the same f32 operation order as ggml's reference dequantize_row_* (and
// the Python `gguf` package's gguf.quants.dequantize): results are bit-identical to both.
// The other ggml types (Q2_K, Q3_K, IQ*, I8..I64, F64, ...) are known by size so that a file
// holding them can be opened, but gguf_dequantize rejects them.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace fleet {

// Thrown for every problem with a GGUF file or a ggml type; the message names the file (where
// there is one) and what is wrong.
class GgufError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ggml_type values, as written in GGUF tensor infos.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

struct GgmlTypeTraits {
  const char* name;       // "Q4_K"
  int64_t block_size;     // values per block
  size_t type_size;       // bytes per block
  bool dequantizable;     // gguf_dequantize supports it
};

// Traits of a raw type number from a file; nullptr when ggml does not define it (or no longer
// does: the removed Q4_2/Q4_3 and the repacked Q4_0_4_4-style types).
const GgmlTypeTraits* ggml_type_traits(uint32_t raw);
// Same, for a GgmlType value; throws GgufError for an undefined one.
const GgmlTypeTraits& ggml_traits(GgmlType t);
const char* ggml_type_name(GgmlType t);  // "Q4_K"; "type<N>" for an undefined one

// Bytes of a row of n values of type t. Throws GgufError when n is negative or not a multiple
// of the block size, or when the size overflows size_t.
size_t gguf_row_bytes(GgmlType t, int64_t n);

// Decodes n values (a whole number of blocks, starting at `blocks`, which need no alignment)
// into out[0..n). Throws GgufError for a type it does not support or an n that is not a
// multiple of the block size; it never reads more than gguf_row_bytes(t, n) bytes.
void gguf_dequantize(GgmlType t, const void* blocks, int64_t n, float* out);

}  // namespace fleet
