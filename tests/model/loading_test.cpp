// Model files: formats, layer-range loading, and clear errors for bad files.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "model/model_writer.h"
#include "model/fingerprint.h"
#include "model/weights.h"
#include "test_support.h"

namespace fleet {
namespace {

namespace fs = std::filesystem;
using test::error_of;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(ModelLoading, Llama2cHeaderGivesStoriesConfig) {
  ModelSource s = open_model(test::stories_bin());
  EXPECT_EQ(s.config.dim, 64);
  EXPECT_EQ(s.config.hidden_dim, 172);
  EXPECT_EQ(s.config.n_layers, 5);
  EXPECT_EQ(s.config.n_heads, 8);
  EXPECT_EQ(s.config.n_kv_heads, 4);
  EXPECT_EQ(s.config.vocab_size, 512);
  EXPECT_EQ(s.config.max_seq_len, 512);
  EXPECT_TRUE(s.config.tie_embeddings);
  EXPECT_EQ(s.config.rope_layout, RopeLayout::Adjacent);
}

TEST(ModelLoading, LayerRangeHoldsOnlyItsTensors) {
  ModelSource s = open_model(test::stories_bin());
  LoadOptions mid;
  mid.layer_begin = 1;
  mid.layer_end = 3;
  StageWeights w = load_stage_weights(s, mid);
  EXPECT_FALSE(w.has_embedding());
  EXPECT_FALSE(w.has_head());
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.layers[0].index, 1);
  EXPECT_EQ(w.bytes(), layer_file_bytes(s, 1, 3));
  LoadOptions first;
  first.layer_end = 1;
  StageWeights f = load_stage_weights(s, first);
  EXPECT_TRUE(f.has_embedding());
  EXPECT_FALSE(f.has_head());
  LoadOptions last;
  last.layer_begin = 4;
  StageWeights l = load_stage_weights(s, last);
  EXPECT_FALSE(l.has_embedding());
  EXPECT_TRUE(l.has_head());  // tied: the head reads the embedding tensor
  LoadOptions bad;
  bad.layer_begin = 3;
  bad.layer_end = 7;
  EXPECT_TRUE(contains(error_of([&] { load_stage_weights(s, bad); }), "not within the model's 5 layers"));
}

TEST(ModelLoading, ZeroCopyForMatchingDtypeAndCopiesOtherwise) {
  ModelSource s = open_model(test::stories_bin());
  StageWeights f32 = load_stage_weights(s, {});
  EXPECT_TRUE(f32.layers[0].wq.owned.empty());
  LoadOptions q;
  q.weight_dtype = "q8_0";
  StageWeights q8 = load_stage_weights(s, q);
  EXPECT_EQ(q8.layers[0].wq.dtype, DType::Q8_0);
  EXPECT_LT(q8.bytes(), f32.bytes() / 3);
  // Dequantized rows stay within half a quantization step of the original.
  const size_t cols = static_cast<size_t>(f32.layers[0].w_down.cols);  // 172: a partial last block
  ASSERT_EQ(cols, 172u);
  std::vector<float> a(cols), b(cols);
  f32.layers[0].w_down.row_to_f32(3, a.data());
  q8.layers[0].w_down.row_to_f32(3, b.data());
  float amax = 0;
  for (float x : a) amax = std::max(amax, std::fabs(x));
  for (size_t i = 0; i < cols; ++i) EXPECT_NEAR(a[i], b[i], amax / 127 * 0.51f) << i;
}

TEST(ModelLoading, TruncatedLlama2cNamesTheTensor) {
  std::string d = test::scratch_dir("trunc-llama2c");
  std::string bytes = test::read_file(test::stories_bin());
  write_bytes(d + "/short.bin", bytes.substr(0, 300000));
  std::string err = error_of([&] { open_model(d + "/short.bin"); });
  EXPECT_TRUE(contains(err, "truncated llama2.c checkpoint")) << err;
  EXPECT_TRUE(contains(err, "short.bin")) << err;
  EXPECT_TRUE(contains(err, "model.layers.")) << err;
  write_bytes(d + "/tiny.bin", bytes.substr(0, 10));
  EXPECT_TRUE(contains(error_of([&] { open_model(d + "/tiny.bin"); }), "header needs 28"));
  std::string garbage(4096, '\x7f');
  write_bytes(d + "/garbage.bin", garbage);
  EXPECT_TRUE(contains(error_of([&] { open_model(d + "/garbage.bin"); }), "not a llama2.c checkpoint"));
}

// Found by fuzz/fuzz_llama2c_checkpoint (UBSan): vocab_size -2^31 was negated (signed overflow).
TEST(ModelLoading, Llama2cVocabSizeMinusTwoToThe31IsRejected) {
  std::string d = test::scratch_dir("llama2c-intmin");
  const int32_t h[7] = {8, 16, 1, 2, 2, std::numeric_limits<int32_t>::min(), 4};
  std::string bytes(reinterpret_cast<const char*>(h), sizeof h);
  bytes.resize(4096, '\0');
  write_bytes(d + "/intmin.bin", bytes);
  std::string err = error_of([&] { open_model(d + "/intmin.bin"); });
  EXPECT_TRUE(contains(err, "vocab_size -2147483648")) << err;
}

// A small valid Hugging Face directory to damage in various ways.
std::string hf_copy(const std::string& name) {
  std::string d = test::scratch_dir(name);
  write_synthetic_model(synth_shape("tiny-mistral"), DType::BF16, 1, d);
  return d;
}

TEST(ModelLoading, SafetensorsErrorsNameFileAndTensor) {
  std::string d = hf_copy("st-errors");
  std::string st = test::read_file(d + "/model.safetensors");
  EXPECT_NO_THROW(load_stage_weights(open_model(d), {}));

  write_bytes(d + "/model.safetensors", st.substr(0, st.size() - 1000));  // truncated
  std::string err = error_of([&] { open_model(d); });
  EXPECT_TRUE(contains(err, "past the end of the file")) << err;
  EXPECT_TRUE(contains(err, "model.safetensors: tensor ")) << err;

  std::string corrupt = st;
  corrupt[8] = '#';  // the header's JSON
  write_bytes(d + "/model.safetensors", corrupt);
  EXPECT_TRUE(contains(error_of([&] { open_model(d); }), "corrupt safetensors header"));

  std::string huge = st;
  huge[6] = '\x7f';  // header length beyond the file
  write_bytes(d + "/model.safetensors", huge);
  EXPECT_TRUE(contains(error_of([&] { open_model(d); }), "exceeds the file size"));

  std::string i8 = st;
  size_t at = i8.find("\"BF16\"");
  ASSERT_NE(at, std::string::npos);
  i8.replace(at, 6, "\"I16\" ");
  write_bytes(d + "/model.safetensors", i8);
  EXPECT_TRUE(contains(error_of([&] { open_model(d); }), "unsupported dtype I16"));

  fs::remove(d + "/model.safetensors");
  EXPECT_TRUE(contains(error_of([&] { open_model(d); }), "neither model.safetensors"));
}

TEST(ModelLoading, ConfigMismatchesAreClearErrors) {
  std::string d = hf_copy("cfg-errors");
  auto cfg = nlohmann::json::parse(test::read_file(d + "/config.json"));
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    auto j = cfg;
    edit(j);
    write_bytes(d + "/config.json", j.dump());
    return error_of([&] { load_stage_weights(open_model(d), {}); });
  };
  std::string err = with([](nlohmann::json& j) { j["intermediate_size"] = 999; });
  EXPECT_TRUE(contains(err, "mlp.gate_proj.weight has shape [352, 128], expected [999, 128]")) << err;
  err = with([](nlohmann::json& j) { j["architectures"] = {"GPT2LMHeadModel"}; });
  EXPECT_TRUE(contains(err, "unsupported architecture \"GPT2LMHeadModel\"")) << err;
  err = with([](nlohmann::json& j) { j["num_hidden_layers"] = 4; });
  EXPECT_TRUE(contains(err, "missing tensor model.layers.3.")) << err;
  err = with([](nlohmann::json& j) { j["num_key_value_heads"] = 3; });
  EXPECT_TRUE(contains(err, "multiple of num_key_value_heads")) << err;
  err = with([](nlohmann::json& j) { j.erase("hidden_size"); });
  EXPECT_TRUE(contains(err, "config.json: missing or non-integer \"hidden_size\"")) << err;
  // Found by fuzz/fuzz_model_config (UBSan): get<int>() cast an out-of-range float to int.
  err = with([](nlohmann::json& j) { j["num_key_value_heads"] = 1e12; });
  EXPECT_TRUE(contains(err, "config.json: \"num_key_value_heads\" must be an integer")) << err;
  err = with([](nlohmann::json& j) { j["eos_token_id"] = {2.5}; });
  EXPECT_TRUE(contains(err, "\"eos_token_id\" must be an integer")) << err;
  err = with([](nlohmann::json& j) { j["hidden_size"] = 4294967424LL; });  // 2^32 + 128 used to wrap to 128
  EXPECT_TRUE(contains(err, "\"hidden_size\" is out of range")) << err;
  auto integral_float = cfg;
  integral_float["num_key_value_heads"] = static_cast<double>(cfg["num_key_value_heads"].get<int>());
  EXPECT_EQ(ModelConfig::from_hf_json(integral_float, "c").n_kv_heads, cfg["num_key_value_heads"].get<int>());
  write_bytes(d + "/config.json", "{not json");
  EXPECT_TRUE(contains(error_of([&] { open_model(d); }), "config.json"));
  EXPECT_TRUE(contains(error_of([&] { open_model(d + "/nope"); }), "no such file or directory"));
}

TEST(ModelLoading, Float16FilesStayF16InMemoryCloseToTheF32File) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.5f), 0xc100);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(5.96046448e-8f), 0x0001);  // smallest subnormal
  for (uint32_t h = 0; h < 0x7c00; ++h) ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << h;
  std::string a = test::scratch_dir("f16-a"), b = test::scratch_dir("f16-b");
  write_synthetic_model(synth_shape("tiny-mistral"), DType::F32, 4, a);
  write_synthetic_model(synth_shape("tiny-mistral"), DType::F16, 4, b);
  ModelSource s32 = open_model(a), s16 = open_model(b);
  EXPECT_EQ(s16.store->find("model.layers.0.mlp.up_proj.weight")->dtype, DType::F16);
  StageWeights w32 = load_stage_weights(s32, {}), w16 = load_stage_weights(s16, {});
  EXPECT_EQ(w16.layers[0].w_up.dtype, DType::F16);  // auto: the file's type, a zero-copy view
  EXPECT_TRUE(w16.layers[0].w_up.owned.empty());
  std::vector<float> r32(128), r16(128);
  w32.layers[1].w_up.row_to_f32(5, r32.data());
  w16.layers[1].w_up.row_to_f32(5, r16.data());
  for (size_t i = 0; i < 128; ++i) EXPECT_NEAR(r32[i], r16[i], std::fabs(r32[i]) / 1024 + 1e-7f) << i;
}

TEST(ModelLoading, ShardedSafetensorsLoadLikeOneFile) {
  std::string one = test::scratch_dir("shard-one"), many = test::scratch_dir("shard-many");
  ModelConfig c = synth_shape("tiny-qwen2");
  write_synthetic_model(c, DType::F32, 3, one);
  write_synthetic_model(c, DType::F32, 3, many, 200000);  // forces several shards
  EXPECT_TRUE(fs::exists(many + "/model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(many + "/model-00002-of-00008.safetensors") || fs::exists(many + "/model-00002-of-00009.safetensors") ||
              fs::exists(many + "/model-00002-of-00007.safetensors"));
  ModelSource a = open_model(one), b = open_model(many);
  ASSERT_EQ(a.store->tensors().size(), b.store->tensors().size());
  for (auto& [name, t] : a.store->tensors()) {
    const TensorRef* u = b.store->find(name);
    ASSERT_NE(u, nullptr) << name;
    ASSERT_EQ(t.nbytes, u->nbytes);
    EXPECT_EQ(0, std::memcmp(t.data, u->data, t.nbytes)) << name;
  }
  EXPECT_EQ(a.config.qkv_bias, true);
  EXPECT_NO_THROW(load_stage_weights(b, {}));
}

TEST(ModelLoading, ConvertedStoriesRoundTripsConfigAndPermutesQK) {
  std::string d = test::scratch_dir("convert");
  convert_llama2c_to_hf(test::stories_bin(), test::stories_tok(), d);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(d + "/" + f)) << f;
  ModelSource hf = open_model(d), l2 = open_model(test::stories_bin());
  EXPECT_EQ(hf.config.rope_layout, RopeLayout::HalfSplit);
  EXPECT_EQ(hf.config.dim, l2.config.dim);
  EXPECT_TRUE(hf.config.tie_embeddings);
  // wq row (head 0, element d/2) in HF order is row 1 (pair 0, second element) in llama2.c order.
  const TensorRef* a = hf.store->find("model.layers.0.self_attn.q_proj.weight");
  const TensorRef* b = l2.store->find("model.layers.0.self_attn.q_proj.weight");
  const int hd = hf.config.head_dim, dim = hf.config.dim;
  EXPECT_EQ(0, std::memcmp(a->data + static_cast<size_t>(hd / 2 * dim * 4), b->data + static_cast<size_t>(dim * 4), static_cast<size_t>(dim) * 4));
  const TensorRef* va = hf.store->find("model.layers.2.self_attn.v_proj.weight");
  const TensorRef* vb = l2.store->find("model.layers.2.self_attn.v_proj.weight");
  EXPECT_EQ(0, std::memcmp(va->data, vb->data, va->nbytes));
  EXPECT_TRUE(contains(error_of([&] { convert_llama2c_to_hf(test::stories_bin(), test::stories_bin(), d); }),
                       "stories260K.bin"));
}

TEST(ModelLoading, EveryArchitectureShapeLoads) {
  for (const std::string name : {"tiny-llama3", "tiny-mistral", "tiny-qwen2", "tiny-qwen3"}) {
    std::string d = test::scratch_dir("arch-" + name);
    write_synthetic_model(synth_shape(name), DType::BF16, 2, d);
    ModelSource s = open_model(d);
    StageWeights w = load_stage_weights(s, {});
    EXPECT_EQ(w.layers.size(), static_cast<size_t>(s.config.n_layers)) << name;
    EXPECT_EQ(!w.layers[0].bq.empty(), name == "tiny-qwen2") << name;
    EXPECT_EQ(!w.layers[0].q_norm.empty(), name == "tiny-qwen3") << name;
    if (name == "tiny-llama3") {
      EXPECT_EQ(s.config.rope_scaling.factor, 8.0);
    }
  }
}

}  // namespace
}  // namespace fleet

namespace fleet {
namespace {

TEST(WeightFingerprint, SameBytesSameHashAnyChangeDiffers) {
  std::string a = test::scratch_dir("fp-a"), b = test::scratch_dir("fp-b");
  write_synthetic_model(synth_shape("tiny-mistral"), DType::BF16, 11, a);
  write_synthetic_model(synth_shape("tiny-mistral"), DType::BF16, 11, b);
  ModelSource sa = open_model(a);
  EXPECT_EQ(layer_fingerprint(sa, 1), layer_fingerprint(open_model(b), 1));
  EXPECT_NE(layer_fingerprint(sa, 0), layer_fingerprint(sa, 1));
  // Flip one byte inside layer 1's down projection: layer 1's hash changes, layer 0's does not.
  std::string bytes = test::read_file(b + "/model.safetensors");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  auto header = nlohmann::json::parse(bytes.substr(8, hlen));
  size_t off = header["model.layers.1.mlp.down_proj.weight"]["data_offsets"][0].get<size_t>();
  bytes[8 + hlen + off + 100] ^= 0x01;
  std::ofstream(b + "/model.safetensors", std::ios::binary | std::ios::trunc) << bytes;
  ModelSource sb = open_model(b);
  EXPECT_NE(layer_fingerprint(sa, 1), layer_fingerprint(sb, 1));
  EXPECT_EQ(layer_fingerprint(sa, 0), layer_fingerprint(sb, 0));
  EXPECT_EQ(layer_fingerprint(sa, 2), layer_fingerprint(sb, 2));
  // A stage's fingerprints cover exactly what it holds.
  LoadOptions last;
  last.layer_begin = 2;
  auto fps = stage_fingerprints(sa, load_stage_weights(sa, last));
  EXPECT_EQ(fps.size(), 2u);  // layer 2 and the head
  EXPECT_TRUE(fps.count(2) && fps.count(3));
}

TEST(WeightFingerprint, HashIsStableAndSensitive) {
  std::string s(1000, 'x');
  uint64_t h = hash_bytes(s.data(), s.size());
  EXPECT_EQ(h, hash_bytes(s.data(), s.size()));
  for (size_t i : {0ul, 31ul, 32ul, 500ul, 999ul}) {
    std::string t = s;
    t[i] = 'y';
    EXPECT_NE(h, hash_bytes(t.data(), t.size())) << i;
  }
  EXPECT_NE(hash_bytes(s.data(), 999), h);
}

}  // namespace
}  // namespace fleet
