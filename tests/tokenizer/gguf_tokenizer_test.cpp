// Tokenizers from synthetic GGUF files written here: tok512 converted to a GGUF of model
// "llama" (SentencePiece-style) must tokenize as tok512.bin does; a small byte-level ("gpt2")
// vocabulary shows the pre-tokenizer presets and the special-token rules; bad tokenizer
// metadata gives a std::runtime_error naming the file and the key.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>

#include "gguf_metadata_writer.h"
#include "test_support.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_fixtures.h"

namespace fleet {
namespace {
using test::GgufMetadataWriter;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---- tok512.bin as a GGUF "llama" vocabulary ----

struct SpVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

// Reads llama2.c's tokenizer.bin directly (not through fleet's loader): int32 max length, then
// per token f32 score, int32 length, bytes; " " stands for "▁", BOS/EOS are "\n<s>\n"/"\n</s>\n".
SpVocab read_tokenizer_bin(const std::string& path) {
  const std::string b = test::read_file(path);
  SpVocab v;
  for (size_t off = 4; off + 8 <= b.size();) {
    float score;
    int32_t len;
    std::memcpy(&score, b.data() + off, 4);
    std::memcpy(&len, b.data() + off + 4, 4);
    std::string piece = b.substr(off + 8, static_cast<size_t>(len));
    off += 8 + static_cast<size_t>(len);
    if (piece == "\n<s>\n" || piece == "\n</s>\n") piece = piece.substr(1, piece.size() - 2);
    std::string sp;
    for (char c : piece) sp += (c == ' ') ? std::string("\xE2\x96\x81") : std::string(1, c);
    int32_t type = 1;
    if (sp == "<unk>") type = 2;
    if (sp == "<s>" || sp == "</s>") type = 3;
    if (sp.size() == 6 && sp.starts_with("<0x") && sp.back() == '>') type = 6;
    v.tokens.push_back(sp);
    v.scores.push_back(score);
    v.types.push_back(type);
  }
  return v;
}

GgufMetadataWriter sp_gguf(const SpVocab& v) {
  GgufMetadataWriter w;
  w.str("general.architecture", "llama")
      .str("tokenizer.ggml.model", "llama")
      .strings("tokenizer.ggml.tokens", v.tokens)
      .f32s("tokenizer.ggml.scores", v.scores)
      .i32s("tokenizer.ggml.token_type", v.types)
      .u32("tokenizer.ggml.bos_token_id", 1)
      .u32("tokenizer.ggml.eos_token_id", 2)
      .u32("tokenizer.ggml.unknown_token_id", 0);
  return w;
}

class Tok512Gguf : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("tok512_gguf");
    bin_ = Tokenizer::load(test::tok512_bin_path());
    vocab_ = read_tokenizer_bin(test::tok512_bin_path());
    ASSERT_EQ(vocab_.tokens.size(), 512u);
  }
  std::string dir_;
  std::unique_ptr<Tokenizer> bin_;
  SpVocab vocab_;
};

TEST_F(Tok512Gguf, SameIdsAsTokenizerBinOnTheCorpus) {
  // SentencePiece's own normalizer for tok512 drops extra whitespace: the GGUF says so.
  sp_gguf(vocab_).boolean("tokenizer.ggml.remove_extra_whitespaces", true).write(dir_ + "/tok512.gguf");
  const auto gguf = Tokenizer::load(dir_ + "/tok512.gguf");
  EXPECT_EQ(gguf->vocab_size(), 512u);
  EXPECT_EQ(gguf->bos_id(), bin_->bos_id());
  EXPECT_EQ(gguf->eos_id(), bin_->eos_id());
  EXPECT_TRUE(gguf->add_bos_by_default());  // no add_bos_token: llama.cpp's default for "llama"
  EXPECT_EQ(gguf->bos_token(), "<s>");
  size_t compared = 0, special_compared = 0;
  for (const auto& e : test::load_corpus()) {
    const auto ids = bin_->encode(e.text);
    ASSERT_EQ(gguf->encode(e.text), ids) << e.category << ": " << nlohmann::json(e.text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    EXPECT_EQ(gguf->decode(ids), bin_->decode(ids));
    ++compared;
    // With allow_special, llama.cpp also matches the unknown token's text "<unk>" whole.
    if (!contains(e.text, "<unk>")) {
      ASSERT_EQ(gguf->encode(e.text, {.allow_special = true}), bin_->encode(e.text, {.allow_special = true}))
          << e.category;
      ++special_compared;
    }
  }
  EXPECT_GT(compared, 2000u);
  EXPECT_GT(special_compared, 2000u);
  EXPECT_EQ(gguf->encode("<unk>", {.allow_special = true}), (std::vector<int32_t>{0}));
}

TEST_F(Tok512Gguf, LlamaCppNormalizationKeepsWhitespaceAndFollowsAddBos) {
  sp_gguf(vocab_).boolean("tokenizer.ggml.add_bos_token", false).write(dir_ + "/plain.gguf");
  const auto gguf = Tokenizer::load(dir_ + "/plain.gguf");
  EXPECT_FALSE(gguf->add_bos_by_default());
  EXPECT_TRUE(bin_->add_bos_by_default());  // llama2.c says nothing: BOS stays
  for (const std::string s : {"a  b", "  leading", "trailing  ", "x\n\n  y"}) {
    EXPECT_EQ(gguf->decode(gguf->encode(s)), s);  // llama.cpp does not drop whitespace
    EXPECT_NE(gguf->encode(s), bin_->encode(s)) << s;
  }
  EXPECT_EQ(gguf->encode("Once upon a time"), bin_->encode("Once upon a time"));
  // A "▁" before the text and after every special token, as llama.cpp adds it.
  const auto after_bos = gguf->encode("<s>hi", {.allow_special = true});
  ASSERT_FALSE(after_bos.empty());
  EXPECT_EQ(after_bos[0], 1);
  EXPECT_EQ(std::vector<int32_t>(after_bos.begin() + 1, after_bos.end()), gguf->encode("hi"));
}

// ---- a small byte-level vocabulary ----

struct BpeVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  int32_t id(const std::string& raw) const {  // id of a token given as raw bytes
    std::string piece;
    for (unsigned char c : raw) piece += tok::byte_level_alphabet().char_of(c);
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == piece) return static_cast<int32_t>(i);
    throw std::runtime_error("no token " + raw);
  }
};

// 256 byte tokens (id = byte), <|ctl|> (control, 256), <user> (user-defined, 257), then merges
// "3 4", "1 2", "12 3", "h e", "l l", "he ll", "hell o".
BpeVocab small_bpe() {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(tok::byte_level_alphabet().char_of(static_cast<unsigned char>(b)));
  v.types.assign(256, 1);
  v.tokens.push_back("<|ctl|>");
  v.types.push_back(3);
  v.tokens.push_back("<user>");
  v.types.push_back(4);
  for (const std::string m : {"3 4", "1 2", "12 3", "h e", "l l", "he ll", "hell o"}) {
    v.merges.push_back(m);
    const size_t sp = m.find(' ');
    v.tokens.push_back(m.substr(0, sp) + m.substr(sp + 1));
    v.types.push_back(1);
  }
  return v;
}

GgufMetadataWriter bpe_gguf(const BpeVocab& v, const std::string& pre) {
  GgufMetadataWriter w;
  w.str("tokenizer.ggml.model", "gpt2")
      .str("tokenizer.ggml.pre", pre)
      .strings("tokenizer.ggml.tokens", v.tokens)
      .i32s("tokenizer.ggml.token_type", v.types)
      .strings("tokenizer.ggml.merges", v.merges)
      .u32("tokenizer.ggml.eos_token_id", 256);
  return w;
}

TEST(ByteLevelGguf, PreTokenizerNamesChooseTheDigitSplitting) {
  const std::string dir = test::scratch_dir("bpe_gguf_pre");
  const BpeVocab v = small_bpe();
  auto ids_of = [&](const std::string& pre, const std::string& text) {
    bpe_gguf(v, pre).write(dir + "/" + pre + ".gguf");
    return Tokenizer::load(dir + "/" + pre + ".gguf")->encode(text);
  };
  const int32_t t12 = v.id("12"), t34 = v.id("34"), t123 = v.id("123");
  EXPECT_EQ(ids_of("gpt-2", "12345"), (std::vector<int32_t>{t12, t34, '5'}));  // one piece: "3 4" merges first
  EXPECT_EQ(ids_of("default", "12345"), (std::vector<int32_t>{t123, '4', '5'}));  // "123" | "45"
  EXPECT_EQ(ids_of("smollm", "12345"), (std::vector<int32_t>{'1', '2', '3', '4', '5'}));  // digit by digit
  EXPECT_EQ(ids_of("qwen2", "12345"), (std::vector<int32_t>{'1', '2', '3', '4', '5'}));
  EXPECT_EQ(ids_of("llama-bpe", "12345"), (std::vector<int32_t>{t123, '4', '5'}));  // \p{N}{1,3}
  EXPECT_EQ(ids_of("smollm", "hello"), (std::vector<int32_t>{v.id("hello")}));
  for (const std::string pre : {"llama3", "dbrx", "starcoder", "command-r", "stablelm2", "olmo"})
    EXPECT_EQ(ids_of(pre, "hello"), (std::vector<int32_t>{v.id("hello")})) << pre;
}

TEST(ByteLevelGguf, ControlTokensNeedAllowSpecialUserDefinedOnesDoNot) {
  const std::string dir = test::scratch_dir("bpe_gguf_special");
  const BpeVocab v = small_bpe();
  bpe_gguf(v, "gpt-2").write(dir + "/v.gguf");
  const auto tok = Tokenizer::load(dir + "/v.gguf");
  EXPECT_EQ(tok->encode("hello<|ctl|>", {.allow_special = true}), (std::vector<int32_t>{v.id("hello"), 256}));
  const auto plain = tok->encode("hello<|ctl|>");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 256), 0);
  EXPECT_EQ(plain.size(), 1u + 7u);  // hello, then "<|ctl|>" byte by byte
  EXPECT_EQ(tok->encode("hello<user>"), (std::vector<int32_t>{v.id("hello"), 257}));
  EXPECT_EQ(tok->decode({v.id("hello"), 257, 256}), "hello<user><|ctl|>");
  EXPECT_EQ(tok->eos_id(), 256);
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_FALSE(tok->add_bos_by_default());  // no BOS token at all
}

TEST(ByteLevelGguf, AddBosFollowsTheFileElseLlamaCppDefaults) {
  const std::string dir = test::scratch_dir("bpe_gguf_bos");
  const BpeVocab v = small_bpe();
  auto add_bos = [&](const std::string& pre, int with_key) {
    GgufMetadataWriter w = bpe_gguf(v, pre);
    w.u32("tokenizer.ggml.bos_token_id", 256);
    if (with_key >= 0) w.boolean("tokenizer.ggml.add_bos_token", with_key == 1);
    w.write(dir + "/v.gguf");
    return Tokenizer::load(dir + "/v.gguf")->add_bos_by_default();
  };
  EXPECT_TRUE(add_bos("llama-bpe", -1));  // llama.cpp: Llama 3 vocabularies add BOS
  EXPECT_FALSE(add_bos("qwen2", -1));
  EXPECT_FALSE(add_bos("llama-bpe", 0));
  EXPECT_TRUE(add_bos("qwen2", 1));
}

// ---- bad metadata ----

std::string load_error(const std::string& path) {
  return test::error_of([&] { Tokenizer::load(path); });
}

TEST(GgufTokenizerErrors, NameTheFileAndTheProblem) {
  const std::string dir = test::scratch_dir("gguf_tokenizer_errors");
  const BpeVocab v = small_bpe();
  struct Case {
    std::string name, want;
    std::function<GgufMetadataWriter()> make;
  };
  const std::vector<Case> cases = {
      {"no_merges", "tokenizer.ggml.merges is missing",
       [&] {
         GgufMetadataWriter w;
         return w.str("tokenizer.ggml.model", "gpt2").strings("tokenizer.ggml.tokens", v.tokens);
       }},
      {"type_count", "tokenizer.ggml.token_type has 3 entries for 265 tokens",
       [&] {
         GgufMetadataWriter w;
         return w.str("tokenizer.ggml.model", "gpt2")
             .strings("tokenizer.ggml.tokens", v.tokens)
             .i32s("tokenizer.ggml.token_type", {1, 1, 1})
             .strings("tokenizer.ggml.merges", v.merges);
       }},
      {"bad_type", "tokenizer.ggml.token_type[0] is 9",
       [&] {
         BpeVocab b = v;
         b.types[0] = 9;
         return bpe_gguf(b, "gpt-2");
       }},
      {"unknown_model", "tokenizer.ggml.model 'bert' is not supported",
       [&] {
         GgufMetadataWriter w;
         return w.str("tokenizer.ggml.model", "bert").strings("tokenizer.ggml.tokens", v.tokens);
       }},
      {"unknown_pre", "tokenizer.ggml.pre 'mystery-7b' is not a pre-tokenizer fleet knows",
       [&] { return bpe_gguf(v, "mystery-7b"); }},
      {"bad_merge", "tokenizer.ggml.merges[7] 'q z' refers to a token not in tokenizer.ggml.tokens",
       [&] {
         BpeVocab b = v;
         b.merges.push_back("q z");
         return bpe_gguf(b, "gpt-2");
       }},
      {"no_tokenizer", "no tokenizer in this file (tokenizer.ggml.model is missing)",
       [&] {
         GgufMetadataWriter w;
         return w.str("general.architecture", "llama");
       }},
      {"no_scores", "tokenizer.ggml.scores is missing",
       [&] {
         GgufMetadataWriter w;
         return w.str("tokenizer.ggml.model", "llama").strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
       }},
      {"bos_out_of_range", "tokenizer.ggml.bos_token_id 265 is outside the vocabulary (265 tokens)",
       [&] { return bpe_gguf(v, "gpt-2").u32("tokenizer.ggml.bos_token_id", 265); }},
      {"duplicate_token", "holds 'a' twice (ids 97 and 265)",
       [&] {
         BpeVocab b = v;
         b.tokens.push_back("a");
         b.types.push_back(1);
         return bpe_gguf(b, "gpt-2");
       }},
      {"tokens_not_strings", "metadata tokenizer.ggml.tokens",
       [&] {
         GgufMetadataWriter w;
         return w.str("tokenizer.ggml.model", "gpt2").i32s("tokenizer.ggml.tokens", {1, 2});
       }},
  };
  for (const Case& c : cases) {
    const std::string path = dir + "/" + c.name + ".gguf";
    c.make().write(path);
    const std::string err = load_error(path);
    EXPECT_TRUE(contains(err, path)) << c.name << ": " << err;
    EXPECT_TRUE(contains(err, c.want)) << c.name << ": " << err;
  }
  // A .gguf name without the magic is not taken for another format.
  std::ofstream(dir + "/fake.gguf") << "not a gguf file at all";
  EXPECT_TRUE(contains(load_error(dir + "/fake.gguf"), "not a GGUF file")) << load_error(dir + "/fake.gguf");
  // A truncated file: the GGUF reader's error, naming the file.
  bpe_gguf(v, "gpt-2").write(dir + "/whole.gguf");
  const std::string whole = test::read_file(dir + "/whole.gguf");
  std::ofstream(dir + "/cut.gguf", std::ios::binary) << whole.substr(0, whole.size() / 2);
  EXPECT_TRUE(contains(load_error(dir + "/cut.gguf"), dir + "/cut.gguf")) << load_error(dir + "/cut.gguf");
}

}  // namespace
}  // namespace fleet
