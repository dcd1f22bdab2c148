// GGUF reader on bad input: every defect must give a GgufError naming the file and the
// problem, never a crash, an overread or a huge allocation. The images are parsed from
// exact-size heap buffers, so an ASan build catches a read one byte past the end.
#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "gguf/gguf_file.h"
#include "test_support.h"
#include "util/mapped_file.h"

namespace fleet {
namespace {

bool mentions(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Little-endian GGUF bytes; each writer returns the offset of what it wrote.
struct Image {
  std::vector<uint8_t> b;
  size_t raw(const void* p, size_t n) {
    const size_t at = b.size();
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    return at;
  }
  size_t u32(uint32_t v) { return raw(&v, 4); }
  size_t u64(uint64_t v) { return raw(&v, 8); }
  size_t str(const std::string& s) {
    const size_t at = u64(s.size());
    raw(s.data(), s.size());
    return at;
  }
  void pad(size_t align) { b.resize((b.size() + align - 1) / align * align, 0); }
  void put_u32(size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }
  void put_u64(size_t at, uint64_t v) { std::memcpy(&b[at], &v, 8); }
};

// A small valid v3 file: 4 metadata entries (alignment, string, i32 array, nested array) and
// 2 tensors (Q8_0 [32, 2] at 0, F32 [4] at 96); it ends exactly at the last tensor's data.
struct Valid {
  Image img;
  size_t version, n_tensors, n_kv, key0_len, name_type, name_len, arr_type, arr_count, nest_type;
  size_t t0_ndims, t0_dim0, t0_type, t0_offset, t1_dim0, t1_type, t1_offset, t1_name;
};

Valid make_valid() {
  Valid v;
  Image& m = v.img;
  m.raw("GGUF", 4);
  v.version = m.u32(3);
  v.n_tensors = m.u64(2);
  v.n_kv = m.u64(4);
  v.key0_len = m.str("general.alignment");
  m.u32(4);
  m.u32(32);
  m.str("name");
  v.name_type = m.u32(8);
  v.name_len = m.str("tiny");
  m.str("arr");
  m.u32(9);
  v.arr_type = m.u32(5);
  v.arr_count = m.u64(3);
  for (int32_t k = 1; k <= 3; ++k) m.raw(&k, 4);
  m.str("nest");
  m.u32(9);
  v.nest_type = m.u32(9);
  m.u64(2);
  m.u32(8);  // ["a"]
  m.u64(1);
  m.str("a");
  m.u32(5);  // []
  m.u64(0);
  m.str("w");
  v.t0_ndims = m.u32(2);
  v.t0_dim0 = m.u64(32);
  m.u64(2);
  v.t0_type = m.u32(8);
  v.t0_offset = m.u64(0);
  v.t1_name = m.str("b");
  m.u32(1);
  v.t1_dim0 = m.u64(4);
  v.t1_type = m.u32(0);
  v.t1_offset = m.u64(96);
  m.pad(32);
  const size_t data = m.b.size();
  for (int r = 0; r < 2; ++r) {
    m.u32(0x3c00 | (r ? 0x80000000u : 0));  // d = 1 (f16), then q[0], q[1] = 0, 0x80 on row 1
    for (int k = 0; k < 30; ++k) m.b.push_back(static_cast<uint8_t>(k));
  }
  m.b.resize(data + 96, 0);
  const float f[4] = {1, 2, 3, 4};
  m.raw(f, 16);
  return v;
}

// The GgufError message of parsing `bytes` (copied to an exact-size buffer); "" if it parses.
std::string parse_error(const std::vector<uint8_t>& bytes, const std::string& name = "bad.gguf") {
  std::unique_ptr<uint8_t[]> exact(new uint8_t[bytes.size() ? bytes.size() : 1]);
  if (!bytes.empty()) std::memcpy(exact.get(), bytes.data(), bytes.size());
  try {
    GgufFile::parse(exact.get(), bytes.size(), name);
  } catch (const GgufError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a GgufError: " << e.what();
    return e.what();
  }
  return "";
}

#define EXPECT_BAD(bytes, part)                                                        \
  do {                                                                                 \
    const std::string msg_ = parse_error(bytes);                                       \
    EXPECT_TRUE(mentions(msg_, "bad.gguf: ") && mentions(msg_, part)) << "message: " << msg_; \
  } while (0)

TEST(GgufBadInput, TheValidImageParses) {
  Valid v = make_valid();
  ASSERT_EQ(parse_error(v.img.b), "");
  const GgufFile f = GgufFile::parse(v.img.b.data(), v.img.b.size(), "ok.gguf");
  EXPECT_EQ(f.get<std::string>("name"), "tiny");
  EXPECT_EQ(f.get<std::vector<std::vector<std::string>>>("nest"), (std::vector<std::vector<std::string>>{{"a"}, {}}));
  EXPECT_EQ(f.dequantize(*f.find_tensor("b")), (std::vector<float>{1, 2, 3, 4}));
  const std::vector<float> w = f.dequantize(*f.find_tensor("w"));
  EXPECT_EQ(w[3], 1.f);
  EXPECT_EQ(w[33], -128.f);
}

TEST(GgufBadInput, TruncatedAtEveryByte) {
  const std::vector<uint8_t> full = make_valid().img.b;
  for (size_t cut = 0; cut < full.size(); ++cut) {
    const std::string msg = parse_error(std::vector<uint8_t>(full.begin(), full.begin() + cut));
    EXPECT_TRUE(mentions(msg, "bad.gguf: ") && (mentions(msg, "truncated") || mentions(msg, "too short") ||
                                                mentions(msg, "past the end")))
        << "cut at " << cut << ": " << msg;
  }
}

TEST(GgufBadInput, SampleTruncatedAtEveryByte) {
  const std::string s = test::read_file(test::fixture("gguf/sample.gguf"));
  const std::vector<uint8_t> full(s.begin(), s.end());
  const GgufFile f = GgufFile::parse(full.data(), full.size(), "sample.gguf");
  uint64_t end = 0;
  for (const auto& t : f.tensors()) end = std::max(end, f.data_offset() + t.offset + t.nbytes);
  for (size_t cut = 0; cut < full.size(); ++cut) {
    const std::string msg = parse_error(std::vector<uint8_t>(full.begin(), full.begin() + cut));
    if (cut < end)
      EXPECT_FALSE(msg.empty()) << "cut at " << cut;
    else
      EXPECT_EQ(msg, "") << "cut at " << cut << " (only trailing padding lost)";
  }
}

TEST(GgufBadInput, SmolLM2TruncatedInMetadataAndData) {
  const std::string path = test::smollm2_gguf();
  MappedFile m(path);
  const size_t cuts[] = {0, 3, 4, 7, 8, 23, 24, 100, 1000, 40000, 400000, 900000, 1500000, 1700000,
                         1785000, 1785663, 1785664, 1785665, 30000000, 98362431};
  for (size_t cut : cuts) {
    std::string msg;
    try {
      GgufFile::parse(m.data(), cut, "smol.gguf");
    } catch (const GgufError& e) {
      msg = e.what();
    }
    EXPECT_TRUE(mentions(msg, "smol.gguf: ")) << "cut at " << cut << ": " << msg;
  }
}

TEST(GgufBadInput, WrongMagic) {
  EXPECT_BAD(std::vector<uint8_t>{}, "too short");
  EXPECT_BAD((std::vector<uint8_t>{'G', 'G', 'U'}), "too short");
  Valid v = make_valid();
  v.img.b[3] = 'G';
  EXPECT_BAD(v.img.b, "not a GGUF file: magic \"GGUG\"");
  std::vector<uint8_t> zeros(64, 0);
  EXPECT_BAD(zeros, "not a GGUF file");
  // Through open(): the message names the path.
  const std::string path = test::scratch_dir("gguf-bad") + "/model.safetensors.gguf";
  std::ofstream(path, std::ios::binary) << "{\"__metadata__\":{}}";
  const std::string msg = test::error_of([&] { GgufFile::open(path); });
  EXPECT_TRUE(mentions(msg, path + ": not a GGUF file")) << msg;
  EXPECT_TRUE(mentions(test::error_of([&] { GgufFile::open(path + ".missing"); }), path + ".missing"));
  std::ofstream(path, std::ios::binary | std::ios::trunc).close();  // empty: nothing to map
  EXPECT_TRUE(mentions(test::error_of([&] { GgufFile::open(path); }), path + ": not a GGUF file: 0 bytes"));
}

TEST(GgufBadInput, BadVersion) {
  for (uint32_t version : {0u, 1u, 4u, 0xFFFFFFFFu, 0x03000000u}) {
    Valid v = make_valid();
    v.img.put_u32(v.version, version);
    EXPECT_BAD(v.img.b, version == 1 ? "GGUF version 1 is not supported"
                        : version == 0x03000000u ? "big-endian GGUF (version field 0x03000000)"
                                                 : "unsupported GGUF version " + std::to_string(version));
  }
}

TEST(GgufBadInput, UnknownTypes) {
  for (uint32_t t : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 42u, 1000u, 0xFFFFFFFFu}) {
    Valid v = make_valid();
    v.img.put_u32(v.t0_type, t);
    EXPECT_BAD(v.img.b, "tensor 0 (w): unknown ggml tensor type " + std::to_string(t));
  }
  Valid v = make_valid();
  v.img.put_u32(v.name_type, 13);
  EXPECT_BAD(v.img.b, "metadata entry 1 (name): unknown value type 13");
  v = make_valid();
  v.img.put_u32(v.arr_type, 0x80000000u);
  EXPECT_BAD(v.img.b, "metadata entry 2 (arr): unknown array element type 2147483648");
  v = make_valid();
  v.img.put_u32(v.nest_type, 77);
  EXPECT_BAD(v.img.b, "(nest): unknown array element type 77");
}

TEST(GgufBadInput, AbsurdCountsAndLengths) {
  for (uint64_t n : {uint64_t{1} << 60, UINT64_MAX, uint64_t{1} << 32, uint64_t{100000}}) {
    const std::string ns = std::to_string(n);
    Valid v = make_valid();
    v.img.put_u64(v.n_tensors, n);
    EXPECT_BAD(v.img.b, "tensor count " + ns);
    v = make_valid();
    v.img.put_u64(v.n_kv, n);
    EXPECT_BAD(v.img.b, "metadata entry count " + ns);
    v = make_valid();
    v.img.put_u64(v.arr_count, n);
    EXPECT_BAD(v.img.b, "(arr): array length " + ns);
    v = make_valid();
    v.img.put_u64(v.key0_len, n);
    EXPECT_BAD(v.img.b, "metadata entry 0: key: string length " + ns);
    v = make_valid();
    v.img.put_u64(v.name_len, n);
    EXPECT_BAD(v.img.b, "(name): string value: string length " + ns);
  }
}

TEST(GgufBadInput, StringLengthPastTheEnd) {
  Valid v = make_valid();
  const uint64_t left = v.img.b.size() - (v.name_len + 8);
  v.img.put_u64(v.name_len, left + 1);
  EXPECT_BAD(v.img.b, "string length " + std::to_string(left + 1) + " at offset " + std::to_string(v.name_len) +
                          " runs past the end of the data (" + std::to_string(left) + " bytes left)");
  v = make_valid();
  v.img.put_u64(v.name_len, left);  // fits the file, but then the rest is gone
  EXPECT_BAD(v.img.b, "truncated");
}

TEST(GgufBadInput, TensorDataOutOfBoundsAndOverflow) {
  Valid v = make_valid();
  v.img.put_u64(v.t1_offset, 128);
  EXPECT_BAD(v.img.b, "tensor b (F32 [4], 16 bytes at data offset 128) runs past the end of the file");
  v = make_valid();
  v.img.put_u64(v.t1_offset, UINT64_MAX - 31);  // aligned; offset + size wraps around
  EXPECT_BAD(v.img.b, "runs past the end of the file");
  v = make_valid();
  v.img.put_u64(v.t1_dim0, uint64_t{1} << 61);  // 2^63 bytes
  EXPECT_BAD(v.img.b, "tensor b (F32 [2305843009213693952]");
  v = make_valid();
  v.img.put_u64(v.t1_dim0, UINT64_MAX);
  EXPECT_BAD(v.img.b, "tensor 1 (b): dimension 0 is 18446744073709551615");
  v = make_valid();
  v.img.put_u64(v.t0_dim0, uint64_t{1} << 32);
  v.img.put_u64(v.t0_dim0 + 8, uint64_t{1} << 32);
  EXPECT_BAD(v.img.b, "tensor 0 (w): shape [4294967296, 4294967296] has more than 2^63 elements");
  v = make_valid();
  v.img.put_u32(v.t1_type, 27);  // I64: 2^62 values are 2^65 bytes
  v.img.put_u64(v.t1_dim0, uint64_t{1} << 62);
  EXPECT_BAD(v.img.b, "byte size overflows");
  v = make_valid();
  v.img.put_u64(v.t1_offset, 8);
  EXPECT_BAD(v.img.b, "tensor 1 (b): data offset 8 is not a multiple of the alignment 32");
  v = make_valid();
  v.img.put_u64(v.t0_dim0, 33);
  EXPECT_BAD(v.img.b, "Q8_0 shape [33, 2]: row length 33 is not a multiple of the block size 32");
  v = make_valid();
  v.img.put_u32(v.t0_ndims, 5);
  EXPECT_BAD(v.img.b, "tensor 0 (w): 5 dimensions (at most 4)");
  v = make_valid();
  v.img.b[v.t1_name + 8] = 'w';
  EXPECT_BAD(v.img.b, "tensor 1 (w): duplicate tensor name");
}

TEST(GgufBadInput, BadAlignmentDuplicateKeysDeepNesting) {
  for (uint32_t al : {0u, 3u, 48u, 0x80000000u}) {
    Valid v = make_valid();
    v.img.put_u32(v.key0_len + 8 + 17 + 4, al);
    EXPECT_BAD(v.img.b, "general.alignment " + std::to_string(al) + " is not a power of two");
  }
  Valid v = make_valid();
  v.img.put_u32(v.key0_len + 8 + 17, 6);  // an f32 alignment
  EXPECT_BAD(v.img.b, "general.alignment is f32, expected u32");
  v = make_valid();
  std::memcpy(&v.img.b[v.name_type - 4], "nest", 4);  // key "name" -> "nest": entry 3 repeats it
  EXPECT_BAD(v.img.b, "metadata entry 3 (nest): duplicate key");
  // Arrays nested 16 deep parse; 17 deep are refused (no unbounded recursion).
  for (int depth : {16, 17, 100000}) {
    Image m;
    m.raw("GGUF", 4);
    m.u32(3);
    m.u64(0);
    m.u64(1);
    m.str("deep");
    m.u32(9);
    for (int d = 0; d < depth - 1; ++d) {
      m.u32(9);
      m.u64(1);
    }
    m.u32(0);
    m.u64(1);
    m.b.push_back(42);
    const std::string msg = parse_error(m.b);
    if (depth <= 16) {
      EXPECT_EQ(msg, "");
    } else {
      EXPECT_TRUE(mentions(msg, "bad.gguf: metadata entry 0 (deep): arrays nested deeper than 16")) << msg;
    }
  }
}

// Random corruption of the sample file's header: each variant either parses (then every
// value and tensor can be read) or throws GgufError; never anything else.
TEST(GgufBadInput, RandomCorruptionNeverCrashes) {
  const std::string s = test::read_file(test::fixture("gguf/sample.gguf"));
  const std::vector<uint8_t> full(s.begin(), s.end());
  const size_t header = GgufFile::parse(full.data(), full.size(), "sample.gguf").data_offset();
  std::mt19937_64 rng(1234);
  int parsed = 0, refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = full;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % header;
      switch (rng() % 3) {
        case 0: b[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: b[at] = static_cast<uint8_t>(rng()); break;
        default: {  // a large little-endian number
          const uint64_t big = rng() >> (rng() % 64);
          for (size_t k = 0; k < 8 && at + k < b.size(); ++k) b[at + k] = static_cast<uint8_t>(big >> (8 * k));
        }
      }
    }
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    try {
      const GgufFile f = GgufFile::parse(b.data(), b.size(), "fuzz.gguf");
      std::function<void(const GgufValue&)> walk = [&](const GgufValue& v) {
        if (v.is_array())
          for (const GgufValue& e : v.elements()) walk(e);
      };
      for (const GgufKV& kv : f.metadata()) walk(kv.value);
      for (const GgufTensorInfo& t : f.tensors())
        if (ggml_traits(t.type).dequantizable && t.numel < (1 << 20)) (void)f.dequantize(t);
      ++parsed;
    } catch (const GgufError& e) {
      EXPECT_TRUE(mentions(e.what(), "fuzz.gguf: ")) << e.what();
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace fleet
