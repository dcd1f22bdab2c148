// Qwen3 tokenizer.json (byte-level BPE, NFC, PCRE2 pre-tokenizer, added tokens): ids
// must equal Hugging Face `tokenizers` for every corpus string.
#include <gtest/gtest.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer_fixtures.h"

namespace fleet {
namespace {
using test::load_corpus;
using test::read_jsonl;

class Qwen3Reference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = Tokenizer::load(test::qwen3_dir()).release(); }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  static const Tokenizer* tok_;
};
const Tokenizer* Qwen3Reference::tok_ = nullptr;

TEST_F(Qwen3Reference, VocabularyAndSpecialIds) {
  EXPECT_EQ(tok_->vocab_size(), 151669u);
  EXPECT_EQ(tok_->bos_id(), -1);      // tokenizer_config.json: bos_token null
  EXPECT_EQ(tok_->eos_id(), 151645);  // <|im_end|>
  EXPECT_EQ(tok_->eot_id(), 151645);
  EXPECT_FALSE(tok_->add_bos_by_default());  // there is no BOS token
  EXPECT_EQ(tok_->id_to_piece(151644), "<|im_start|>");
  EXPECT_EQ(tok_->chat_template_source().empty(), false);
}

TEST_F(Qwen3Reference, IdsEqualHuggingFaceForEveryString) {
  const auto corpus = load_corpus();
  const auto refs = read_jsonl("qwen3_ids.jsonl");
  ASSERT_EQ(corpus.size(), refs.size());
  size_t failures = 0, failures_plain = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto want = test::ids_of(refs[i].at("ids"));
    if (tok_->encode(corpus[i].text, {.allow_special = true}) != want && ++failures <= 10)
      ADD_FAILURE() << "line " << i << " (" << corpus[i].category << ")";
    const auto want_plain = test::ids_of(refs[i].at("ids_no_special"));
    if (tok_->encode(corpus[i].text) != want_plain && ++failures_plain <= 10)
      ADD_FAILURE() << "allow_special=false: line " << i << " (" << corpus[i].category << ")";
  }
  EXPECT_EQ(failures, 0u);
  EXPECT_EQ(failures_plain, 0u);
}

TEST_F(Qwen3Reference, DecodeEqualsHuggingFaceAndRoundTrips) {
  const auto corpus = load_corpus();
  const auto refs = read_jsonl("qwen3_ids.jsonl");
  size_t round_trips = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto ids = test::ids_of(refs[i].at("ids"));
    const std::string decoded = tok_->decode(ids);
    EXPECT_EQ(decoded, refs[i].at("decoded").get<std::string>()) << "line " << i;
    // decode(encode(s)) == s for valid UTF-8; the NFC normalizer makes that hold for
    // NFC text, and the reference decode shows which strings are.
    const std::string& s = corpus[i].text;
    if (tok::is_valid_utf8(s) && refs[i].at("decoded").get<std::string>() == s) {
      EXPECT_EQ(tok_->decode(tok_->encode(s, {.allow_special = true})), s) << "line " << i;
      EXPECT_EQ(tok_->decode(tok_->encode(s)), s) << "line " << i;
      ++round_trips;
    }
  }
  EXPECT_GE(round_trips, 2000u);
}

TEST_F(Qwen3Reference, RandomIdSequencesDecodeLikeHuggingFace) {
  const auto rows = read_jsonl("qwen3_random_decode.jsonl");
  ASSERT_GE(rows.size(), 100u);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto ids = test::ids_of(rows[i].at("ids"));
    EXPECT_EQ(tok_->decode(ids), rows[i].at("decoded").get<std::string>()) << "row " << i;
  }
}

TEST_F(Qwen3Reference, SpecialTokensMatchedWholeOnlyWhenAllowed) {
  const auto with = tok_->encode("<|im_start|>user\nhi<|im_end|>", {.allow_special = true});
  ASSERT_GE(with.size(), 3u);
  EXPECT_EQ(with.front(), 151644);
  EXPECT_EQ(with.back(), 151645);
  const auto without = tok_->encode("<|im_start|>user\nhi<|im_end|>");
  for (int32_t id : without) EXPECT_LT(id, 151643) << "special token matched although not allowed";
  // Non-special added tokens (<think>) are always matched whole.
  const auto think = tok_->encode("a<think>b");
  EXPECT_EQ(think, (std::vector<int32_t>{64, 151667, 65}));
}

}  // namespace
}  // namespace fleet
