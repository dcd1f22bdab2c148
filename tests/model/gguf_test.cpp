// GGUF reader and dequantization: bit-exact against the Python `gguf` package (fixtures from
// scripts/reference/make-gguf-dequant-fixtures), a GGUFWriter file read back, and the real
// SmolLM2-135M-Instruct Q4_1 file. Bad input: gguf_bad_input_test.cpp.
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>

#include "gguf/gguf_file.h"
#include "test_support.h"

namespace fleet {
namespace {

using test::error_of;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string smollm2_gguf() {
  return std::string(FLEET_MODELS_DIR) + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// ---- (a) dequantization, bit for bit against gguf.quants.dequantize ----

class GgufDequant : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufDequant, BitIdenticalToPythonGguf) {
  const std::string path = test::fixture(std::string("gguf/dequant_") + GetParam() + ".bin");
  const std::string bytes = test::read_file(path);
  ASSERT_GE(bytes.size(), 16u) << path;
  ASSERT_EQ(bytes.substr(0, 4), "FGDQ") << path;
  uint32_t raw_type;
  uint64_t n;
  std::memcpy(&raw_type, bytes.data() + 4, 4);
  std::memcpy(&n, bytes.data() + 8, 8);
  const auto type = static_cast<GgmlType>(raw_type);
  std::string lower = ggml_type_name(type);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(lower, GetParam());
  const size_t block_bytes = gguf_row_bytes(type, static_cast<int64_t>(n));
  ASSERT_EQ(bytes.size(), 16 + block_bytes + 4 * n) << path;
  // Copy the blocks to an exact-size heap buffer at an odd address: the decoder must not
  // need alignment and must not read past the blocks (ASan checks the latter).
  const std::vector<uint8_t> exact(bytes.begin() + 16, bytes.begin() + 16 + static_cast<std::ptrdiff_t>(block_bytes));
  std::vector<uint8_t> buf(1, 0);
  buf.insert(buf.end(), exact.begin(), exact.end());
  std::vector<float> out(n, -12345.f);
  gguf_dequantize(type, buf.data() + 1, static_cast<int64_t>(n), out.data());
  std::vector<float> out2(n);
  gguf_dequantize(type, exact.data(), static_cast<int64_t>(n), out2.data());
  int mismatches = 0;
  for (uint64_t k = 0; k < n; ++k) {
    uint32_t want;
    std::memcpy(&want, bytes.data() + 16 + block_bytes + 4 * k, 4);
    if (bits_of(out[k]) != want || bits_of(out2[k]) != want) {
      float w;
      std::memcpy(&w, &want, 4);
      if (++mismatches <= 5)
        ADD_FAILURE() << GetParam() << " value " << k << ": got " << out[k] << " (0x" << std::hex << bits_of(out[k])
                      << "), want " << w << " (0x" << want << ")" << std::dec;
    }
  }
  EXPECT_EQ(mismatches, 0) << GetParam() << ": " << n << " values";
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GgufDequant,
                         ::testing::Values("f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k",
                                           "q5_k", "q6_k"),
                         [](const auto& info) { return std::string(info.param); });

TEST(GgufTypes, RowBytesAndBlockLayouts) {
  EXPECT_EQ(gguf_row_bytes(GgmlType::F32, 3), 12u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::F16, 3), 6u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::BF16, 5), 10u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q4_0, 64), 36u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q4_1, 576), 360u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q5_0, 32), 22u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q5_1, 32), 24u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q8_0, 576), 612u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q4_K, 256), 144u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q5_K, 512), 352u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q6_K, 256), 210u);
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q2_K, 256), 84u);  // known by size, not dequantized
  EXPECT_EQ(gguf_row_bytes(GgmlType::Q4_K, 0), 0u);
  EXPECT_TRUE(contains(error_of([] { gguf_row_bytes(GgmlType::Q4_K, 576); }), "not a whole number of blocks of 256"));
  EXPECT_TRUE(contains(error_of([] { gguf_row_bytes(GgmlType::Q8_0, -32); }), "Q8_0"));
  EXPECT_TRUE(contains(error_of([] { gguf_row_bytes(static_cast<GgmlType>(4), 32); }), "undefined ggml type 4"));
  EXPECT_EQ(ggml_type_traits(31), nullptr);  // Q4_0_4_4: removed from ggml
  EXPECT_STREQ(ggml_type_name(static_cast<GgmlType>(99)), "type99");
  float out[256];
  uint8_t zeros[210] = {};
  EXPECT_TRUE(contains(error_of([&] { gguf_dequantize(GgmlType::Q2_K, zeros, 256, out); }), "not supported"));
  EXPECT_TRUE(contains(error_of([&] { gguf_dequantize(GgmlType::Q6_K, zeros, 100, out); }), "blocks of 256"));
  EXPECT_THROW(gguf_dequantize(GgmlType::I32, zeros, 4, out), GgufError);
}

// Hand-made blocks, independent of the Python reference: documents the layouts.
TEST(GgufTypes, HandMadeBlocks) {
  float out[256];
  // Q8_0: d = 0.5 (f16 0x3800), q = -128, 127, 3, ...
  uint8_t q8[34] = {0x00, 0x38};
  q8[2] = 0x80;
  q8[3] = 0x7f;
  q8[4] = 3;
  gguf_dequantize(GgmlType::Q8_0, q8, 32, out);
  EXPECT_EQ(out[0], -64.f);
  EXPECT_EQ(out[1], 63.5f);
  EXPECT_EQ(out[2], 1.5f);
  EXPECT_EQ(out[3], 0.f);
  // Q4_1: d = 2, m = -1; byte j: low nibble -> value j, high nibble -> value j + 16.
  uint8_t q41[20] = {0x00, 0x40, 0x00, 0xbc};
  q41[4] = 0x93;  // value 0: 3, value 16: 9
  gguf_dequantize(GgmlType::Q4_1, q41, 32, out);
  EXPECT_EQ(out[0], 5.f);
  EXPECT_EQ(out[16], 17.f);
  EXPECT_EQ(out[1], -1.f);
  // Q4_K: d = 1, dmin = 1; sub-block 5 (values 160..191, high nibbles of qs[64..95]) takes
  // scale (scales[9] & 0xF) | (scales[1] >> 6) << 4 and min (scales[9] >> 4) | (scales[5] >> 6) << 4.
  uint8_t q4k[144] = {0x00, 0x3c, 0x00, 0x3c};
  uint8_t* sc = q4k + 4;
  sc[1] = 0xC0 | 7;   // sub-block 1: scale 7, top bits 3 -> sub-block 5's scale + 48
  sc[5] = 0x40 | 2;   // sub-block 1: min 2, top bits 1 -> sub-block 5's min + 16
  sc[9] = 0x35;       // sub-block 5: scale low 5, min low 3
  for (int l = 64; l < 96; ++l) q4k[16 + l] = 0x21;  // sub-block 4: q=1, sub-block 5: q=2
  gguf_dequantize(GgmlType::Q4_K, q4k, 256, out);
  EXPECT_EQ(out[160], 53.f * 2 - 19.f);
  EXPECT_EQ(out[32], 0.f * 7 - 2.f);  // sub-block 1 q=0: -min
  EXPECT_EQ(out[0], 0.f);
}

// ---- (b) a GGUFWriter file read back ----

void expect_sample(const GgufFile& f) {
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  ASSERT_EQ(f.metadata().size(), 32u);
  EXPECT_EQ(f.metadata()[0].key, "general.architecture");
  EXPECT_EQ(f.get<std::string>("general.architecture"), "llama");
  EXPECT_EQ(f.find("test.u8")->type, GgufValueType::U8);
  EXPECT_EQ(f.get<uint8_t>("test.u8"), 200);
  EXPECT_EQ(f.get<int8_t>("test.i8"), -100);
  EXPECT_EQ(f.get<uint16_t>("test.u16"), 60000);
  EXPECT_EQ(f.get<int16_t>("test.i16"), -30000);
  EXPECT_EQ(f.get<uint32_t>("test.u32"), 4000000000u);
  EXPECT_EQ(f.get<int32_t>("test.i32"), -2000000000);
  EXPECT_EQ(f.find("test.f32")->type, GgufValueType::F32);
  EXPECT_EQ(f.get<float>("test.f32"), 3.14159f);
  EXPECT_TRUE(f.get<bool>("test.bool_true"));
  EXPECT_FALSE(f.get<bool>("test.bool_false"));
  EXPECT_EQ(f.get<std::string>("test.string"), "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93");
  EXPECT_EQ(f.get<std::string>("test.empty_string"), "");
  EXPECT_EQ(f.get<uint64_t>("test.u64"), (uint64_t{1} << 63) + 5);
  EXPECT_EQ(f.get<int64_t>("test.i64"), -(int64_t{1} << 62) - 3);
  EXPECT_EQ(f.get<double>("test.f64"), 2.718281828459045);
  EXPECT_EQ(f.get<int64_t>("test.u32"), 4000000000);  // integers convert across types when they fit
  EXPECT_EQ(f.get<std::vector<uint8_t>>("test.arr.u8"), (std::vector<uint8_t>{0, 1, 255}));
  EXPECT_EQ(f.get<std::vector<int8_t>>("test.arr.i8"), (std::vector<int8_t>{-128, 0, 127}));
  EXPECT_EQ(f.get<std::vector<uint16_t>>("test.arr.u16"), (std::vector<uint16_t>{0, 65535}));
  EXPECT_EQ(f.get<std::vector<int16_t>>("test.arr.i16"), (std::vector<int16_t>{-32768, 32767}));
  EXPECT_EQ(f.get<std::vector<uint32_t>>("test.arr.u32"), (std::vector<uint32_t>{0, 4294967295u}));
  EXPECT_EQ(f.get<std::vector<int32_t>>("test.arr.i32"), (std::vector<int32_t>{INT32_MIN, INT32_MAX, 7}));
  EXPECT_EQ(f.get<std::vector<float>>("test.arr.f32"), (std::vector<float>{0.5f, -1.25f, 1e-30f}));
  EXPECT_EQ(f.get<std::vector<bool>>("test.arr.bool"), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(f.get<std::vector<std::string>>("test.arr.string"),
            (std::vector<std::string>{"a", "", "\xc3\xbcml\xc3\xa4ut", "<|im_end|>"}));
  EXPECT_EQ(f.get<std::vector<uint64_t>>("test.arr.u64"), (std::vector<uint64_t>{0, UINT64_MAX}));
  EXPECT_EQ(f.get<std::vector<int64_t>>("test.arr.i64"), (std::vector<int64_t>{INT64_MIN, INT64_MAX}));
  EXPECT_EQ(f.get<std::vector<double>>("test.arr.f64"), (std::vector<double>{1.0 / 3.0, -2.5e300}));
  const GgufValue* nested = f.find("test.arr.nested_i32");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->elem_type, GgufValueType::Array);
  EXPECT_EQ(nested->count, 3u);
  EXPECT_EQ(nested->elements()[2].elem_type, GgufValueType::I32);
  EXPECT_EQ(f.get<std::vector<std::vector<int32_t>>>("test.arr.nested_i32"),
            (std::vector<std::vector<int32_t>>{{1, 2}, {3}, {4, 5, 6}}));
  EXPECT_EQ(f.get<std::vector<std::vector<std::string>>>("test.arr.nested_string"),
            (std::vector<std::vector<std::string>>{{"x", "y"}, {"z"}}));
  EXPECT_EQ(f.get<std::vector<std::vector<std::vector<int>>>>("test.arr.nested3"),
            (std::vector<std::vector<std::vector<int>>>{{{1}}, {{2, 3}, {4}}}));
  EXPECT_EQ(f.get<std::string>("tokenizer.chat_template"), "{{ messages }}");
  // Getters: missing keys, wrong types, out of range, fallbacks.
  EXPECT_EQ(f.get_or<int>("test.missing", 7), 7);
  EXPECT_EQ(f.get_or<int>("test.i32", 7), -2000000000);
  EXPECT_EQ(f.find("test.missing"), nullptr);
  const std::string e1 = error_of([&] { f.get<int>("test.missing"); });
  EXPECT_TRUE(contains(e1, "sample.gguf") && contains(e1, "test.missing") && contains(e1, "missing")) << e1;
  const std::string e2 = error_of([&] { f.get<std::string>("test.u8"); });
  EXPECT_TRUE(contains(e2, "test.u8") && contains(e2, "is u8, expected string")) << e2;
  EXPECT_TRUE(contains(error_of([&] { f.get<uint8_t>("test.u16"); }), "out of range"));
  EXPECT_TRUE(contains(error_of([&] { f.get<uint32_t>("test.i8"); }), "negative"));
  EXPECT_TRUE(contains(error_of([&] { f.get<float>("test.u8"); }), "expected f32 or f64"));
  EXPECT_TRUE(contains(error_of([&] { f.get<std::vector<int>>("test.u8"); }), "expected an array"));
  EXPECT_TRUE(contains(error_of([&] { f.get<std::vector<int>>("test.arr.string"); }), "test.arr.string[0]"));
  EXPECT_TRUE(contains(error_of([&] { f.get_or<int>("test.string", 1); }), "expected an integer"));

  // Tensors: shapes in ggml order, data at aligned offsets, values as written.
  ASSERT_EQ(f.tensors().size(), 21u);
  const GgufTensorInfo* p = f.find_tensor("plain.f32");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->type, GgmlType::F32);
  EXPECT_EQ(p->ne, (std::vector<int64_t>{4, 3, 2}));
  EXPECT_EQ(p->numel, 24);
  EXPECT_EQ(p->rows(), 6);
  EXPECT_EQ(p->nbytes, 96u);
  std::vector<float> v = f.dequantize(*p);
  for (int k = 0; k < 24; ++k) EXPECT_EQ(v[k], k * 0.5f - 3) << k;
  const GgufTensorInfo* h = f.find_tensor("plain.f16");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->type, GgmlType::F16);
  EXPECT_EQ(h->ne, (std::vector<int64_t>{8, 5}));
  v = f.dequantize(*h);
  for (int k = 0; k < 40; ++k) EXPECT_EQ(v[k], k * 0.25f) << k;
  EXPECT_EQ(f.dequantize(*f.find_tensor("plain.vec")), (std::vector<float>{1.5f, -2.f, 0.f}));
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  const std::map<std::string, GgmlType> quant = {
      {"bf16", GgmlType::BF16}, {"q8_0", GgmlType::Q8_0}, {"q4_0", GgmlType::Q4_0},
      {"q4_1", GgmlType::Q4_1}, {"q5_0", GgmlType::Q5_0}, {"q5_1", GgmlType::Q5_1},
      {"q4_k", GgmlType::Q4_K}, {"q5_k", GgmlType::Q5_K}, {"q6_k", GgmlType::Q6_K}};
  for (const auto& [name, type] : quant) {
    const GgufTensorInfo* q = f.find_tensor("quant." + name);
    const GgufTensorInfo* d = f.find_tensor("quant." + name + ".deq");
    ASSERT_TRUE(q && d) << name;
    EXPECT_EQ(q->type, type) << name;
    EXPECT_EQ(q->ne, d->ne) << name;
    EXPECT_EQ(q->nbytes, gguf_row_bytes(type, q->ne[0]) * static_cast<uint64_t>(q->rows())) << name;
    const std::vector<float> got = f.dequantize(*q), want = f.dequantize(*d);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << name;
  }
  for (const GgufTensorInfo& t : f.tensors()) {
    EXPECT_EQ(t.offset % 64, 0u) << t.name;
    EXPECT_LE(f.data_offset() + t.offset + t.nbytes, f.file_size()) << t.name;
  }
}

TEST(GgufSample, GgufWriterFileReadsBack) {
  const GgufFile f = GgufFile::open(test::fixture("gguf/sample.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.path(), test::fixture("gguf/sample.gguf"));
  expect_sample(f);
}

TEST(GgufSample, VersionTwoAndInMemoryParseReadTheSame) {
  std::string bytes = test::read_file(test::fixture("gguf/sample.gguf"));
  std::vector<uint8_t> buf(bytes.begin(), bytes.end());
  buf[4] = 2;  // v2 and v3 share the layout (v3 only added big-endian files)
  const GgufFile f = GgufFile::parse(buf.data(), buf.size(), "mem/sample.gguf");
  EXPECT_EQ(f.version(), 2u);
  expect_sample(f);
  GgufFile moved = GgufFile::parse(buf.data(), buf.size(), "mem/sample.gguf");
  GgufFile target = std::move(moved);
  EXPECT_EQ(target.get<std::vector<std::string>>("test.arr.string").size(), 4u);
}

// ---- (c) the real SmolLM2-135M-Instruct Q4_1 file ----

TEST(GgufSmolLM2, MetadataTensorsAndDequantization) {
  const std::string path = smollm2_gguf();
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: run scripts/fetch-models (it links "
                                             << "../shared/models/smollm2-135m-instruct into models/)";
  const auto t0 = std::chrono::steady_clock::now();
  const GgufFile f = GgufFile::open(path);
  const double open_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.file_size(), 98362432u);
  EXPECT_EQ(f.metadata().size(), 33u);
  EXPECT_EQ(f.get<std::string>("general.architecture"), "llama");
  EXPECT_EQ(f.get<uint32_t>("general.file_type"), 3u);  // MOSTLY_Q4_1
  EXPECT_EQ(f.get<int>("llama.block_count"), 30);
  EXPECT_EQ(f.get<int>("llama.embedding_length"), 576);
  EXPECT_EQ(f.get<int>("llama.feed_forward_length"), 1536);
  EXPECT_EQ(f.get<int>("llama.attention.head_count"), 9);
  EXPECT_EQ(f.get<int>("llama.attention.head_count_kv"), 3);
  EXPECT_EQ(f.get<int>("llama.context_length"), 8192);
  EXPECT_EQ(f.get<int>("llama.vocab_size"), 49152);
  EXPECT_EQ(f.get<float>("llama.rope.freq_base"), 100000.f);
  EXPECT_EQ(f.get<float>("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(f.get<std::string>("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get<std::string>("tokenizer.ggml.pre"), "smollm");
  EXPECT_EQ(f.get<uint32_t>("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(f.get<uint32_t>("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_FALSE(f.get<bool>("tokenizer.ggml.add_bos_token"));
  const std::string tmpl = f.get<std::string>("tokenizer.chat_template");
  EXPECT_TRUE(contains(tmpl, "<|im_start|>system\\nYou are a helpful AI assistant named SmolLM") ||
              contains(tmpl, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM"))
      << tmpl;
  const auto tokens = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 49152u);
  EXPECT_EQ(tokens[0], "<|endoftext|>");
  EXPECT_EQ(tokens[1], "<|im_start|>");
  EXPECT_EQ(tokens[2], "<|im_end|>");
  EXPECT_EQ(f.find("tokenizer.ggml.merges")->count, 48900u);
  EXPECT_EQ(f.get<std::vector<int32_t>>("tokenizer.ggml.token_type").size(), 49152u);

  ASSERT_EQ(f.tensors().size(), 272u);
  std::map<GgmlType, int> by_type;
  for (const GgufTensorInfo& t : f.tensors()) ++by_type[t.type];
  EXPECT_EQ(by_type[GgmlType::Q4_1], 210);
  EXPECT_EQ(by_type[GgmlType::Q8_0], 1);
  EXPECT_EQ(by_type[GgmlType::F32], 61);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // head tied to token_embd
  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, GgmlType::Q8_0);
  EXPECT_EQ(emb->ne, (std::vector<int64_t>{576, 49152}));
  EXPECT_EQ(f.data_offset(), 1785664u);
  EXPECT_EQ(emb->offset, 0u);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->ne, (std::vector<int64_t>{1536, 576}));
  EXPECT_EQ(f.find_tensor("blk.29.attn_k.weight")->type, GgmlType::Q4_1);
  EXPECT_EQ(f.find_tensor("output_norm.weight")->type, GgmlType::F32);

  const auto t1 = std::chrono::steady_clock::now();
  const std::vector<float> e = f.dequantize(*emb);
  const double deq_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
  ASSERT_EQ(e.size(), 576u * 49152u);
  size_t finite = 0, nonzero = 0;
  for (float x : e) {
    finite += std::isfinite(x);
    nonzero += x != 0;
  }
  EXPECT_EQ(finite, e.size());
  EXPECT_GT(nonzero, e.size() / 2);
  // Every other tensor dequantizes to finite values too.
  int64_t total = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    const std::vector<float> x = f.dequantize(t);
    total += t.numel;
    size_t bad = 0;
    for (float y : x) bad += !std::isfinite(y);
    EXPECT_EQ(bad, 0u) << t.name;
  }
  EXPECT_EQ(total, 134515008);
  std::printf("SmolLM2: open (all metadata, 49152 tokens + 48900 merges checked) %.1f ms; token_embd "
              "dequantized (28.3 M values) %.1f ms\n", open_ms, deq_ms);
}

}  // namespace
}  // namespace fleet
