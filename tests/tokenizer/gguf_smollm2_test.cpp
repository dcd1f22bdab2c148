// The tokenizer inside SmolLM2-135M-Instruct's GGUF file (byte-level BPE, pre-tokenizer
// "smollm", 17 control tokens): ids must equal llama.cpp's on every line of
// tests/fixtures/tokenizer/smollm2_llamacpp_ids.jsonl (llama.cpp build 4748, `llama-tokenize
// --no-bos`, a copy of ../shared/models/smollm2-135m-instruct/tokenizer_reference.jsonl), with
// parse_special both true and false, and decode(encode(s)) must give s back.
//
// llama-tokenize ran without --no-escape, so each text went through llama.cpp's
// string_process_escapes first ("\\" -> "\", "\n" -> newline, ...): the ids are those of
// the processed text (it differs from the stored text on lines 171-172, "\\ \").
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_fixtures.h"

namespace fleet {
namespace {
namespace fs = std::filesystem;

std::string smollm2_gguf() {
  return std::string(FLEET_MODELS_DIR) + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

// llama.cpp's common/common.cpp string_process_escapes, as llama-tokenize applies it.
std::string process_escapes(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\' || i + 1 >= in.size()) {
      out += in[i];
      continue;
    }
    const char c = in[++i];
    switch (c) {
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case '\'': case '"': case '\\': out += c; break;
      case 'x':
        if (i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
          out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
          i += 2;
          break;
        }
        [[fallthrough]];
      default:
        out += '\\';
        out += c;
    }
  }
  return out;
}

class SmolLM2Gguf : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (fs::exists(smollm2_gguf())) tok_ = Tokenizer::load(smollm2_gguf()).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(tok_, nullptr) << smollm2_gguf() << " is missing: run scripts/fetch-models";
  }
  static const Tokenizer* tok_;
};
const Tokenizer* SmolLM2Gguf::tok_ = nullptr;

TEST_F(SmolLM2Gguf, VocabularySpecialTokensAndTemplate) {
  EXPECT_EQ(tok_->vocab_size(), 49152u);
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_EQ(tok_->eot_id(), 2);  // <|im_end|>
  EXPECT_EQ(tok_->bos_token(), "<|im_start|>");
  EXPECT_EQ(tok_->eos_token(), "<|im_end|>");
  EXPECT_FALSE(tok_->add_bos_by_default());  // tokenizer.ggml.add_bos_token = false
  EXPECT_EQ(tok_->id_to_piece(0), "<|endoftext|>");
  EXPECT_EQ(tok_->id_to_piece(216), "\xC4\xA0");  // "Ġ", a space
  const std::string& tmpl = tok_->chat_template_source();
  EXPECT_NE(tmpl.find("You are a helpful AI assistant named SmolLM"), std::string::npos) << tmpl;
  EXPECT_NE(tmpl.find("add_generation_prompt"), std::string::npos);
}

TEST_F(SmolLM2Gguf, IdsEqualLlamaCppOnEveryLine) {
  const auto rows = test::read_jsonl("smollm2_llamacpp_ids.jsonl");
  ASSERT_EQ(rows.size(), 398u);
  size_t failures = 0, with_special = 0, escaped = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string text = process_escapes(rows[i].at("text").get<std::string>());
    escaped += text != rows[i].at("text").get<std::string>();
    const bool parse_special = rows[i].at("parse_special").get<bool>();
    const auto want = test::ids_of(rows[i].at("ids"));
    const auto got = tok_->encode(text, {.allow_special = parse_special});
    if (got != want && ++failures <= 10)
      ADD_FAILURE() << "line " << i + 1 << " parse_special=" << parse_special << " text=" << nlohmann::json(text).dump()
                    << "\n  llama.cpp: " << show(want) << "\n  fleet:     " << show(got);
    for (int32_t id : want) with_special += (parse_special && id <= 16) ? 1 : 0;
  }
  EXPECT_EQ(failures, 0u);
  EXPECT_GT(with_special, 10u);  // the corpus does exercise control tokens
  EXPECT_EQ(escaped, 2u);
}

TEST_F(SmolLM2Gguf, ControlTokensMatchOnlyWithAllowSpecial) {
  EXPECT_EQ(tok_->encode("<|im_start|>user\nhi<|im_end|>", {.allow_special = true}),
            (std::vector<int32_t>{1, 4093, 198, 6004, 2}));
  const auto plain = tok_->encode("<|im_end|>");
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  // Prompts follow add_bos_token (false): no BOS.
  EXPECT_EQ(tok_->encode("Hello world", {.add_bos = tok_->add_bos_by_default()}),
            (std::vector<int32_t>{19556, 905}));
}

TEST_F(SmolLM2Gguf, DecodeOfEncodeGivesTheTextBack) {
  const auto rows = test::read_jsonl("smollm2_llamacpp_ids.jsonl");
  size_t failures = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string text = rows[i].at("text").get<std::string>();
    const bool parse_special = rows[i].at("parse_special").get<bool>();
    const std::string back = tok_->decode(tok_->encode(text, {.allow_special = parse_special}));
    if (back != text && ++failures <= 10)
      ADD_FAILURE() << "line " << i + 1 << ": " << nlohmann::json(text).dump() << " came back as "
                    << nlohmann::json(back).dump();
    // The reference ids decode to the text llama.cpp tokenized.
    EXPECT_EQ(tok_->decode(test::ids_of(rows[i].at("ids"))), process_escapes(text)) << "line " << i + 1;
  }
  EXPECT_EQ(failures, 0u);
}

TEST(GgufTokenizerFile, RecognisedByMagicAndInsideADirectory) {
  ASSERT_TRUE(fs::exists(smollm2_gguf())) << smollm2_gguf() << " is missing: run scripts/fetch-models";
  const std::string dir = test::scratch_dir("gguf_tokenizer_by_magic");
  fs::create_symlink(fs::absolute(smollm2_gguf()), fs::path(dir) / "model.weights");
  const auto by_magic = Tokenizer::load(dir + "/model.weights");
  EXPECT_EQ(by_magic->vocab_size(), 49152u);
  const std::string in_dir = test::scratch_dir("gguf_tokenizer_in_dir");
  fs::create_symlink(fs::absolute(smollm2_gguf()), fs::path(in_dir) / "smollm2.gguf");
  EXPECT_EQ(Tokenizer::load(in_dir)->encode("Hello world"), (std::vector<int32_t>{19556, 905}));
}

}  // namespace
}  // namespace fleet
