// StreamDecoder: concatenated output equals the one-shot decode for any id sequence,
// and no push() ever returns part of a UTF-8 character.
#include <gtest/gtest.h>

#include <random>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer_fixtures.h"

namespace fleet {
namespace {

void expect_stream_equals_one_shot(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  StreamDecoder dec(tok);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = dec.push(id);
    ASSERT_TRUE(tok::is_valid_utf8(piece)) << "push emitted a partial character";
    streamed += piece;
  }
  const std::string tail = dec.flush();
  ASSERT_TRUE(tok::is_valid_utf8(tail));
  streamed += tail;
  EXPECT_EQ(streamed, tok.decode(ids));
}

void random_sequences(const Tokenizer& tok, uint32_t seed, int32_t byte_lo, int32_t byte_hi) {
  std::mt19937 rng(seed);
  const auto vocab = static_cast<int32_t>(tok.vocab_size());
  for (int n = 0; n < 2000; ++n) {
    std::vector<int32_t> ids;
    const int len = 1 + static_cast<int>(rng() % 24);
    for (int k = 0; k < len; ++k) {
      // Half the ids are byte tokens so that characters are split across ids.
      int32_t id = (rng() % 2 == 0) ? static_cast<int32_t>(rng() % vocab)
                                    : byte_lo + static_cast<int32_t>(rng() % (byte_hi - byte_lo));
      if (tok.id_to_piece(id).empty()) id = 0;
      ids.push_back(id);
    }
    expect_stream_equals_one_shot(tok, ids);
  }
}

TEST(StreamDecoder, Tok512RandomSequencesMatchOneShot) {
  auto tok = Tokenizer::load(test::tok512_bin_path());
  random_sequences(*tok, 1, 3, 259);  // <0x00>..<0xFF>
}

TEST(StreamDecoder, Qwen3RandomSequencesMatchOneShot) {
  auto tok = Tokenizer::load(test::qwen3_dir() + "/tokenizer.json");
  random_sequences(*tok, 2, 0, 256);  // single-byte tokens of the byte-level vocabulary
  // Every corpus string's ids too.
  for (const auto& row : test::read_jsonl("qwen3_ids.jsonl")) expect_stream_equals_one_shot(*tok, test::ids_of(row.at("ids")));
}

TEST(StreamDecoder, HoldsBackIncompleteCharacter) {
  auto tok = Tokenizer::load(test::tok512_bin_path());
  StreamDecoder dec(*tok);
  // "€" = E2 82 AC as three byte-fallback tokens.
  EXPECT_EQ(dec.push(3 + 0xE2), "");
  EXPECT_EQ(dec.push(3 + 0x82), "");
  EXPECT_EQ(dec.push(3 + 0xAC), "\xE2\x82\xAC");
  // An incomplete character at the end becomes one U+FFFD, as in the one-shot decode.
  EXPECT_EQ(dec.push(3 + 0xF0), "");
  EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(tok->decode({3 + 0xF0}), "\xEF\xBF\xBD");
}

TEST(StreamDecoder, FirstPieceLosesItsLeadingSpaceOnce) {
  auto tok = Tokenizer::load(test::tok512_bin_path());
  const auto ids = tok->encode("Once upon a time");
  StreamDecoder dec(*tok);
  std::string out = dec.push(1);  // BOS produces nothing and does not count as the first piece
  for (int32_t id : ids) out += dec.push(id);
  out += dec.flush();
  EXPECT_EQ(out, "Once upon a time");
}

TEST(StreamDecoder, RejectsIdOutsideVocabulary) {
  auto tok = Tokenizer::load(test::tok512_bin_path());
  StreamDecoder dec(*tok);
  EXPECT_THROW(dec.push(512), std::runtime_error);
  EXPECT_THROW(dec.push(-1), std::runtime_error);
  EXPECT_THROW(tok->decode({5, 100000}), std::runtime_error);
}

}  // namespace
}  // namespace fleet
