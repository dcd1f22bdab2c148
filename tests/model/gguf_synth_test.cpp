// Synthetic GGUF files of every type (`fleet synth --format gguf`) and `fleet convert` between
// GGUF and Hugging Face directories: safetensors -> GGUF -> safetensors is bit-exact, llama Q/K
// rows are permuted into llama.cpp's order and back, and the real SmolLM2 Q4_1 file converts to
// a directory with its config.
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "gguf/gguf_file.h"
#include "model/gguf_model_meta.h"
#include "model/model_writer.h"
#include "model/tensor_store.h"
#include "tokenizer/tokenizer.h"
#include "test_support.h"
#include "util/json_file.h"

namespace fleet {
namespace {

namespace fs = std::filesystem;

const char* kTypes[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"};

class SynthGguf : public ::testing::TestWithParam<const char*> {};

TEST_P(SynthGguf, OpensAndEveryTensorDequantizesToBoundedValues) {
  const GgmlType type = parse_gguf_write_type(GetParam());
  const ModelConfig c = synth_shape("tiny-k256");  // every row a multiple of 256
  const std::string dir = test::scratch_dir(std::string("gguf_synth_") + GetParam());
  write_synthetic_gguf(c, type, 5, dir + "/a.gguf");
  const GgufFile f = GgufFile::open(dir + "/a.gguf");
  EXPECT_EQ(f.get<std::string>("general.architecture"), "llama");
  EXPECT_EQ(f.get<uint32_t>("llama.block_count"), 2u);
  EXPECT_EQ(f.get<uint32_t>("llama.embedding_length"), 256u);
  EXPECT_EQ(f.get<uint32_t>("llama.feed_forward_length"), 768u);
  EXPECT_EQ(f.get<uint32_t>("llama.attention.head_count"), 4u);
  EXPECT_EQ(f.get<uint32_t>("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(f.get<uint32_t>("general.file_type"), gguf_file_type(type));
  EXPECT_EQ(f.get<std::string>("tokenizer.ggml.model"), "llama");
  const auto tokens = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 600u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[259 + 0], "\xE2\x96\x81" "a");
  const auto types = f.get<std::vector<int>>("tokenizer.ggml.token_type");
  EXPECT_EQ(types[0], 2);    // unknown
  EXPECT_EQ(types[2], 3);    // control
  EXPECT_EQ(types[3], 6);    // byte
  EXPECT_EQ(types[300], 1);  // normal
  EXPECT_EQ(f.get<std::vector<float>>("tokenizer.ggml.scores")[300], -300.f);
  EXPECT_EQ(f.get<int>("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f.get<int>("tokenizer.ggml.eos_token_id"), 2);

  ASSERT_EQ(f.tensors().size(), 1u + 2 * 9 + 2);
  for (const GgufTensorInfo& t : f.tensors()) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.type, t.ne.size() == 1 ? GgmlType::F32 : type);
    const std::vector<float> v = f.dequantize(t);
    const bool norm = t.ne.size() == 1;
    double sum_sq = 0;
    for (float x : v) {
      ASSERT_TRUE(std::isfinite(x));
      ASSERT_LE(std::fabs(norm ? x - 1.f : x), norm ? 0.11f : 0.04f);
      sum_sq += static_cast<double>(x) * x;
    }
    if (!norm) {
      EXPECT_GT(std::sqrt(sum_sq / static_cast<double>(v.size())), 0.004) << "values are not all ~0";
    }
  }
  // Values depend only on (seed, tensor name).
  write_synthetic_gguf(c, type, 5, dir + "/b.gguf");
  write_synthetic_gguf(c, type, 6, dir + "/c.gguf");
  const std::string a = test::read_file(dir + "/a.gguf");
  EXPECT_TRUE(a == test::read_file(dir + "/b.gguf"));
  EXPECT_FALSE(a == test::read_file(dir + "/c.gguf"));
}

INSTANTIATE_TEST_SUITE_P(AllTypes, SynthGguf, ::testing::ValuesIn(kTypes),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

TEST(SynthGguf, KQuantsFallBackLikeLlamaCppOnRowsNotAMultipleOf256) {
  EXPECT_EQ(gguf_type_for_row(GgmlType::Q4_K, 128), GgmlType::Q5_0);
  EXPECT_EQ(gguf_type_for_row(GgmlType::Q5_K, 576), GgmlType::Q5_1);
  EXPECT_EQ(gguf_type_for_row(GgmlType::Q6_K, 320), GgmlType::Q8_0);
  EXPECT_EQ(gguf_type_for_row(GgmlType::Q6_K, 2048), GgmlType::Q6_K);
  EXPECT_EQ(gguf_type_for_row(GgmlType::Q4_0, 48), GgmlType::F16);  // not even a multiple of 32
  const std::string dir = test::scratch_dir("gguf_synth_fallback");
  write_synthetic_gguf(synth_shape("tiny-llama3"), GgmlType::Q4_K, 1, dir + "/m.gguf");  // dim 128, hidden 320
  const GgufFile f = GgufFile::open(dir + "/m.gguf");
  EXPECT_EQ(f.find_tensor("blk.0.ffn_up.weight")->type, GgmlType::Q5_0);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->type, GgmlType::Q5_0);
  EXPECT_EQ(f.find_tensor("rope_freqs.weight")->type, GgmlType::F32);  // Llama 3 scaling, as llama.cpp writes it
  EXPECT_TRUE(test::error_of([] { parse_gguf_write_type("q2_k"); }).find("one of f32, f16") != std::string::npos);
}

// Every tensor of two Hugging Face directories: same names, shapes; `exact_dtype`: same dtype
// and bytes, else the same values as f32.
void expect_same_tensors(const std::string& a_dir, const std::string& b_dir) {
  const auto a = open_safetensors_dir(a_dir), b = open_safetensors_dir(b_dir);
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (const auto& [name, ta] : a->tensors()) {
    SCOPED_TRACE(name);
    const TensorRef* tb = b->find(name);
    ASSERT_NE(tb, nullptr);
    ASSERT_EQ(ta.shape, tb->shape);
    if (ta.shape.size() == 2 || ta.dtype == tb->dtype) {  // matrices keep their type
      ASSERT_EQ(ta.dtype, tb->dtype);
      ASSERT_EQ(ta.nbytes, tb->nbytes);
      EXPECT_EQ(std::memcmp(ta.data, tb->data, ta.nbytes), 0);
    } else {  // 1-D tensors are F32 in GGUF, as llama.cpp writes them: the same values
      ASSERT_EQ(tb->dtype, DType::F32);
      for (int64_t i = 0; i < ta.numel(); ++i) {
        uint16_t h;
        std::memcpy(&h, ta.data + i * 2, 2);
        float want = ta.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h), got;
        std::memcpy(&got, tb->data + i * 4, 4);
        ASSERT_EQ(got, want) << i;
      }
    }
  }
}

nlohmann::json config_without_notes(const std::string& dir) {
  nlohmann::json j = read_json_file(dir + "/config.json");
  for (const char* k : {"fleet_synthetic", "fleet_converted_from", "torch_dtype"}) j.erase(k);
  return j;
}

struct RoundTripCase {
  const char* shape;
  DType dtype;
};

class GgufConvert : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(GgufConvert, SafetensorsToGgufToSafetensorsIsBitExact) {
  const auto [shape, dtype] = GetParam();
  const ModelConfig c = synth_shape(shape);
  const std::string dir = test::scratch_dir(std::string("gguf_convert_") + shape + "_" + dtype_name(dtype));
  write_synthetic_model(c, dtype, 3, dir + "/hf");
  convert_hf_to_gguf(dir + "/hf", dir + "/m.gguf", true);
  convert_gguf_to_hf(dir + "/m.gguf", dir + "/back");
  expect_same_tensors(dir + "/hf", dir + "/back");
  nlohmann::json want = config_without_notes(dir + "/hf"), got = config_without_notes(dir + "/back");
  if (c.architecture == "MistralForCausalLM") {  // llama.cpp writes Mistral as "llama": it comes back as Llama
    EXPECT_EQ(got["architectures"][0], "LlamaForCausalLM");
    for (const char* k : {"architectures", "model_type"}) want.erase(k), got.erase(k);
  }
  EXPECT_EQ(want, got);
  EXPECT_EQ(read_json_file(dir + "/back/config.json")["torch_dtype"], dtype == DType::BF16 ? "bfloat16" : "float32");
  EXPECT_TRUE(test::read_file(dir + "/hf/tokenizer.bin") == test::read_file(dir + "/back/tokenizer.bin"));

  // In the GGUF file, llama Q/K rows are in llama.cpp's adjacent-pair order; qwen's are not.
  const GgufFile f = GgufFile::open(dir + "/m.gguf");
  const auto hf = open_safetensors_dir(dir + "/hf");
  const TensorRef& q = hf->require(layer_tensor_name(1, "self_attn.q_proj.weight"), {c.q_dim(), c.dim});
  const GgufTensorInfo* gq = f.find_tensor("blk.1.attn_q.weight");
  ASSERT_NE(gq, nullptr);
  EXPECT_EQ(gq->type, dtype == DType::BF16 ? GgmlType::BF16 : GgmlType::F32);
  const size_t row = static_cast<size_t>(c.dim) * (dtype == DType::BF16 ? 2 : 4);
  const bool llama = gguf_architecture(c) == "llama";
  const int64_t hf_row = llama ? c.head_dim / 2 : 1;  // GGUF row 1 = HF row d/2 (llama) or 1
  EXPECT_EQ(std::memcmp(f.tensor_data(*gq) + row, q.data + row * hf_row, row), 0);
  EXPECT_EQ(f.find_tensor("output.weight") == nullptr, c.tie_embeddings);
}

INSTANTIATE_TEST_SUITE_P(Shapes, GgufConvert,
                         ::testing::Values(RoundTripCase{"tiny-llama3", DType::F32},
                                           RoundTripCase{"tiny-llama3", DType::BF16},
                                           RoundTripCase{"tiny-mistral", DType::BF16},
                                           RoundTripCase{"tiny-qwen2", DType::F32},
                                           RoundTripCase{"tiny-qwen3", DType::BF16}),
                         [](const ::testing::TestParamInfo<RoundTripCase>& i) {
                           std::string n = std::string(i.param.shape) + "_" + dtype_name(i.param.dtype);
                           for (char& ch : n) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return n;
                         });

TEST(GgufConvert, SyntheticF32GgufHoldsTheSafetensorsSynthValues) {
  const std::string dir = test::scratch_dir("gguf_convert_synth_f32");
  const ModelConfig c = synth_shape("tiny-llama3");  // llama permutation and Llama 3 RoPE scaling
  write_synthetic_model(c, DType::F32, 9, dir + "/hf");
  write_synthetic_gguf(c, GgmlType::F32, 9, dir + "/m.gguf");
  convert_gguf_to_hf(dir + "/m.gguf", dir + "/back");
  expect_same_tensors(dir + "/hf", dir + "/back");
  EXPECT_EQ(config_without_notes(dir + "/hf"), config_without_notes(dir + "/back"));  // rope_scaling recovered
}

TEST(GgufConvert, Stories260KThroughGgufKeepsItsTokenizer) {
  // llama2.c -> Hugging Face directory -> GGUF with the llama2.c tokenizer.bin as "llama"
  // vocabulary metadata, read back by the fleet's own GGUF tokenizer.
  const std::string dir = test::scratch_dir("gguf_convert_stories");
  convert_llama2c_to_hf(test::stories_bin(), test::stories_tok(), dir + "/hf");
  convert_hf_to_gguf(dir + "/hf", dir + "/s.gguf", true, GgmlType::F16, test::stories_tok());
  const GgufFile f = GgufFile::open(dir + "/s.gguf");
  EXPECT_EQ(f.get<std::string>("tokenizer.ggml.model"), "llama");
  const auto tokens = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[1], "<s>");  // unwrapped from llama2.c's "\n<s>\n"
  EXPECT_EQ(f.get<int>("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f.get<int>("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->type, GgmlType::F32);  // kept as stored
  const auto from_gguf = Tokenizer::load(dir + "/s.gguf"), from_bin = Tokenizer::load(test::stories_tok());
  const std::string text = "Once upon a time, Lily said: h\xC3\xA9llo 123!";
  EXPECT_EQ(from_gguf->encode(text, {.add_bos = true}), from_bin->encode(text, {.add_bos = true}));
  convert_gguf_to_hf(dir + "/s.gguf", dir + "/back");
  expect_same_tensors(dir + "/hf", dir + "/back");
}

TEST(GgufConvert, SmolLM2Q4_1ToSafetensors) {
  const std::string gguf = test::smollm2_gguf();
  const std::string dir = test::scratch_dir("gguf_convert_smollm2");
  const auto t0 = std::chrono::steady_clock::now();
  convert_gguf_to_hf(gguf, dir);
  std::printf("SmolLM2 Q4_1 -> safetensors f32: %.2f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  const nlohmann::json j = read_json_file(dir + "/config.json");
  const ModelConfig c = ModelConfig::from_hf_json(j, "config.json");
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.dim, 576);
  EXPECT_EQ(c.hidden_dim, 1536);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.max_seq_len, 8192);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(j["torch_dtype"], "float32");

  const auto st = open_safetensors_dir(dir);
  EXPECT_EQ(st->tensors().size(), 30u * 9 + 2);  // no lm_head: tied
  EXPECT_EQ(st->find(kHeadName), nullptr);
  const TensorRef& embed = st->require(kEmbedName, {49152, 576});
  EXPECT_EQ(embed.dtype, DType::F32);
  // q_proj rows back in Hugging Face order: HF row h*64 + i (i < 32) is GGUF row h*64 + 2i,
  // HF row h*64 + 32 + i is GGUF row h*64 + 2i + 1.
  const GgufFile f = GgufFile::open(gguf);
  const std::vector<float> gq = f.dequantize(*f.find_tensor("blk.3.attn_q.weight"));
  const TensorRef& q = st->require(layer_tensor_name(3, "self_attn.q_proj.weight"), {576, 576});
  for (int64_t h : {0, 8})
    for (int64_t i : {0, 5, 31})
      for (int64_t e : {0, 1}) {
        const float* hf_row = reinterpret_cast<const float*>(q.data) + (h * 64 + e * 32 + i) * 576;
        ASSERT_EQ(std::memcmp(hf_row, gq.data() + (h * 64 + 2 * i + e) * 576, 576 * 4), 0) << h << " " << i << " " << e;
      }
  EXPECT_FALSE(fs::exists(dir + "/tokenizer.bin"));  // a gpt2 vocabulary is not converted
  EXPECT_NE(read_json_file(dir + "/tokenizer_config.json")["chat_template"].get<std::string>().find("<|im_start|>"),
            std::string::npos);
}

}  // namespace
}  // namespace fleet
