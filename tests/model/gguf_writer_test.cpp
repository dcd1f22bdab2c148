// GgufWriter: files read back by GgufFile (metadata of every value type, tensors of every type,
// alignment, streamed data), byte-identical to gguf-py's GGUFWriter (the committed
// tests/fixtures/gguf/sample.gguf rewritten from its own contents), and clear errors.
#include <cmath>
#include <cstring>
#include <filesystem>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "model/synth_random.h"
#include "test_support.h"

namespace fleet {
namespace {

namespace fs = std::filesystem;
using test::error_of;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A metadata value read by GgufFile, as a value to write (arrays recursively).
GgufMeta to_meta(const GgufValue& v) {
  GgufMeta m;
  m.type = v.type;
  m.u = v.u;
  m.i = v.i;
  m.f = v.f;
  m.s = v.s;
  if (v.is_array()) {
    m.elem_type = v.elem_type;
    for (const GgufValue& e : v.elements()) m.items.push_back(to_meta(e));
  }
  return m;
}

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                              GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

TEST(GgufWriter, RewritingGgufPySampleGivesTheSameBytes) {
  const std::string path = test::fixture("gguf/sample.gguf");
  const std::string want = test::read_file(path);
  const GgufFile in = GgufFile::open(path);
  ASSERT_EQ(in.alignment(), 64u);
  GgufWriter w;
  for (const GgufKV& kv : in.metadata()) w.add(kv.key, to_meta(kv.value));
  w.set_alignment(static_cast<uint32_t>(in.alignment()));  // the key is already there
  for (const GgufTensorInfo& t : in.tensors()) {
    const uint8_t* data = in.tensor_data(t);
    const uint64_t n = t.nbytes;
    w.add_tensor({t.name, t.type, t.ne, [data, n](const GgufSink& put) {
                    for (uint64_t k = 0; k < n; k += 7) put(data + k, static_cast<size_t>(std::min<uint64_t>(7, n - k)));
                  }});
  }
  const std::string out = test::scratch_dir("gguf_writer") + "/sample.gguf";
  w.write(out);
  const std::string got = test::read_file(out);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "first difference at byte "
                           << std::mismatch(got.begin(), got.end(), want.begin()).first - got.begin();
  EXPECT_FALSE(fs::exists(out + ".partial"));
}

TEST(GgufWriter, MetadataOfEveryValueTypeRoundTrips) {
  GgufWriter w;
  w.add("t.u8", GgufMeta::u8(250));
  w.add("t.i8", GgufMeta::i8(-120));
  w.add("t.u16", GgufMeta::u16(65000));
  w.add("t.i16", GgufMeta::i16(-32000));
  w.add("t.u32", GgufMeta::u32(4000000001u));
  w.add("t.i32", GgufMeta::i32(-2000000001));
  w.add("t.f32", GgufMeta::f32(0.1f));
  w.add("t.bool", GgufMeta::boolean(true));
  w.add("t.string", GgufMeta::string("\xE2\x96\x81h\xC3\xA9llo"));
  w.add("t.u64", GgufMeta::u64(18446744073709551615ull));
  w.add("t.i64", GgufMeta::i64(-9223372036854775807ll));
  w.add("t.f64", GgufMeta::f64(1.0 / 3.0));
  w.add("t.strings", GgufMeta::strings({"<s>", "", "\xE2\x96\x81the"}));
  w.add("t.i32s", GgufMeta::i32s({1, -2, 3}));
  w.add("t.f32s", GgufMeta::f32s({0.5f, -1e-30f}));
  w.add("t.empty", GgufMeta::i32s({}));
  w.add("t.nested", GgufMeta::array(GgufValueType::Array, {GgufMeta::strings({"a"}), GgufMeta::strings({"b", "c"})}));
  const std::string out = test::scratch_dir("gguf_writer") + "/meta.gguf";
  w.write(out);

  const GgufFile f = GgufFile::open(out);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.find("general.alignment"), nullptr);  // default alignment: no key, like GGUFWriter
  ASSERT_EQ(f.metadata().size(), 17u);
  EXPECT_EQ(f.metadata()[0].key, "t.u8");  // insertion order
  auto type_of = [&](const char* k) { return f.find(k)->type; };
  EXPECT_EQ(type_of("t.u8"), GgufValueType::U8);
  EXPECT_EQ(f.get<uint8_t>("t.u8"), 250);
  EXPECT_EQ(type_of("t.i8"), GgufValueType::I8);
  EXPECT_EQ(f.get<int>("t.i8"), -120);
  EXPECT_EQ(type_of("t.u16"), GgufValueType::U16);
  EXPECT_EQ(f.get<int>("t.u16"), 65000);
  EXPECT_EQ(type_of("t.i16"), GgufValueType::I16);
  EXPECT_EQ(f.get<int>("t.i16"), -32000);
  EXPECT_EQ(type_of("t.u32"), GgufValueType::U32);
  EXPECT_EQ(f.get<uint32_t>("t.u32"), 4000000001u);
  EXPECT_EQ(type_of("t.i32"), GgufValueType::I32);
  EXPECT_EQ(f.get<int32_t>("t.i32"), -2000000001);
  EXPECT_EQ(type_of("t.f32"), GgufValueType::F32);
  EXPECT_EQ(f.get<float>("t.f32"), 0.1f);
  EXPECT_EQ(type_of("t.bool"), GgufValueType::Bool);
  EXPECT_TRUE(f.get<bool>("t.bool"));
  EXPECT_EQ(f.get<std::string>("t.string"), "\xE2\x96\x81h\xC3\xA9llo");
  EXPECT_EQ(type_of("t.u64"), GgufValueType::U64);
  EXPECT_EQ(f.get<uint64_t>("t.u64"), 18446744073709551615ull);
  EXPECT_EQ(type_of("t.i64"), GgufValueType::I64);
  EXPECT_EQ(f.get<int64_t>("t.i64"), -9223372036854775807ll);
  EXPECT_EQ(type_of("t.f64"), GgufValueType::F64);
  EXPECT_EQ(f.get<double>("t.f64"), 1.0 / 3.0);
  EXPECT_EQ(f.get<std::vector<std::string>>("t.strings"), (std::vector<std::string>{"<s>", "", "\xE2\x96\x81the"}));
  EXPECT_EQ(f.find("t.i32s")->elem_type, GgufValueType::I32);
  EXPECT_EQ(f.get<std::vector<int>>("t.i32s"), (std::vector<int>{1, -2, 3}));
  EXPECT_EQ(f.get<std::vector<float>>("t.f32s"), (std::vector<float>{0.5f, -1e-30f}));
  EXPECT_EQ(f.find("t.empty")->count, 0u);
  const std::vector<GgufValue> nested = f.find("t.nested")->elements();
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(nested[1].elements()[1].s, "c");
  EXPECT_TRUE(f.tensors().empty());
}

TEST(GgufWriter, TensorsOfEveryTypeAtAlignedOffsets) {
  for (uint32_t alignment : {32u, 64u, 4096u}) {
    GgufWriter w;
    w.add("general.architecture", GgufMeta::string("llama"));
    w.set_alignment(alignment);
    std::vector<std::string> expect_bytes;
    SynthRng rng(7, "tensors");
    for (GgmlType t : kAllTypes) {
      const int64_t row = ggml_traits(t).block_size == 1 ? 37 : 256;  // odd sizes exercise padding
      std::vector<int64_t> ne = {row, 3};
      std::string bytes(gguf_row_bytes(t, row) * 3, '\0');
      for (char& c : bytes) c = static_cast<char>(rng.next());
      expect_bytes.push_back(bytes);
      w.add_tensor({std::string("t.") + ggml_type_name(t), t, ne, [bytes](const GgufSink& put) {
                      put(bytes.data(), 5);  // in pieces
                      put(bytes.data() + 5, bytes.size() - 5);
                    }});
    }
    w.add_tensor({"t.scalar", GgmlType::F32, {}, [](const GgufSink& put) { const float x = 2.5f; put(&x, 4); }});
    const std::string out = test::scratch_dir("gguf_writer") + "/tensors.gguf";
    w.write(out);

    const GgufFile f = GgufFile::open(out);
    EXPECT_EQ(f.alignment(), alignment);
    if (alignment == 32) {
      EXPECT_EQ(f.find("general.alignment"), nullptr);
    } else {
      EXPECT_EQ(f.get<uint32_t>("general.alignment"), alignment);
    }
    EXPECT_EQ(f.data_offset() % alignment, 0u);
    ASSERT_EQ(f.tensors().size(), std::size(kAllTypes) + 1);
    for (size_t k = 0; k < std::size(kAllTypes); ++k) {
      const GgufTensorInfo& t = f.tensors()[k];
      SCOPED_TRACE(t.name);
      EXPECT_EQ(t.type, kAllTypes[k]);
      EXPECT_EQ(t.ne[1], 3);
      EXPECT_EQ(t.offset % alignment, 0u);
      ASSERT_EQ(t.nbytes, expect_bytes[k].size());
      EXPECT_EQ(std::memcmp(f.tensor_data(t), expect_bytes[k].data(), t.nbytes), 0);
    }
    EXPECT_EQ(f.dequantize(f.tensors().back()), std::vector<float>{2.5f});
    EXPECT_EQ(f.file_size() % alignment, 0u);  // the last tensor is padded too
  }
}

TEST(GgufWriter, ClearErrors) {
  GgufWriter w;
  w.add("k", GgufMeta::u32(1));
  EXPECT_TRUE(contains(error_of([&] { w.add("k", GgufMeta::u32(2)); }), "k: duplicate key"));
  EXPECT_TRUE(contains(error_of([&] { w.add("arr", GgufMeta::array(GgufValueType::I32, {GgufMeta::u8(1)})); }),
                       "arr[0]: element is u8"));
  EXPECT_TRUE(contains(error_of([&] { w.set_alignment(48); }), "not a power of two"));
  auto none = [](const GgufSink&) {};
  EXPECT_TRUE(contains(error_of([&] { w.add_tensor({"q", GgmlType::Q4_K, {128, 2}, none}); }),
                       "row length 128 is not a multiple of Q4_K's block size 256"));
  EXPECT_TRUE(contains(error_of([&] { w.add_tensor({"big", GgmlType::F32, {1, 1, 1, 1, 1}, none}); }), "5 dimensions"));
  w.add_tensor({"short", GgmlType::F32, {4}, [](const GgufSink& put) { const float x[3] = {}; put(x, sizeof x); }});
  EXPECT_TRUE(contains(error_of([&] { w.add_tensor({"short", GgmlType::F32, {4}, none}); }), "duplicate name"));
  const std::string out = test::scratch_dir("gguf_writer") + "/bad.gguf";
  const std::string e = error_of([&] { w.write(out); });
  EXPECT_TRUE(contains(e, out)) << e;
  EXPECT_TRUE(contains(e, "tensor short produced 12 bytes, expected 16")) << e;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));
  EXPECT_TRUE(contains(error_of([&] { w.write("/nonexistent-dir/x.gguf"); }), "cannot open for writing"));
}

}  // namespace
}  // namespace fleet
