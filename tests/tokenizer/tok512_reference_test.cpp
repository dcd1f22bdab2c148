// tok512 (stories260K): tokenizer.bin and our Hugging Face export must give
// SentencePiece's ids for every corpus string, and decode like SentencePiece.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "tokenizer/tokenizer.h"
#include "tokenizer_fixtures.h"

namespace fleet {
namespace {
using test::load_corpus;
using test::read_jsonl;

TEST(Tok512Reference, CorpusCoversEveryCategory) {
  const auto corpus = load_corpus();
  EXPECT_GE(corpus.size(), 2000u);
  std::set<std::string> cats;
  for (const auto& e : corpus) cats.insert(e.category);
  for (const char* c : {"prose", "code", "numbers", "whitespace", "cjk", "emoji", "combining", "invalid_utf8"})
    EXPECT_TRUE(cats.count(c)) << c;
}

TEST(Tok512Reference, BinGivesSentencePieceIds) {
  auto tok = Tokenizer::load(test::tok512_bin_path());
  EXPECT_EQ(tok->vocab_size(), 512u);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const auto corpus = load_corpus();
  const auto refs = read_jsonl("tok512_ids.jsonl");
  ASSERT_EQ(corpus.size(), refs.size());
  size_t failures = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto want = test::ids_of(refs[i].at("ids"));
    const auto got = tok->encode(corpus[i].text);
    if (got != want && ++failures <= 10) ADD_FAILURE() << "line " << i << " (" << corpus[i].category << ")";
    EXPECT_EQ(tok->decode(want), refs[i].at("decoded").get<std::string>()) << "line " << i;
  }
  EXPECT_EQ(failures, 0u);
}

TEST(Tok512Reference, LoadsFromModelDirectory) {
  auto tok = Tokenizer::load(std::string(FLEET_MODELS_DIR) + "/stories260K");  // holds tok512.bin
  EXPECT_EQ(tok->vocab_size(), 512u);
  EXPECT_EQ(tok->encode("Once upon a time"), Tokenizer::load(test::tok512_bin_path())->encode("Once upon a time"));
}

TEST(Tok512Reference, AddBosPrependsOne) {
  auto tok = Tokenizer::load(test::tok512_bin_path());
  const auto plain = tok->encode("Once upon a time");
  auto with_bos = tok->encode("Once upon a time", {.add_bos = true});
  ASSERT_EQ(with_bos.size(), plain.size() + 1);
  EXPECT_EQ(with_bos.front(), 1);
  EXPECT_EQ(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()), plain);
  EXPECT_EQ(tok->decode(with_bos), "Once upon a time");
}

TEST(Tok512Reference, SpecialTokensOnlyWhenAllowed) {
  auto tok = Tokenizer::load(test::tok512_bin_path());
  const auto plain = tok->encode("a</s>b");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  const auto special = tok->encode("a</s>b", {.allow_special = true});
  EXPECT_EQ(std::count(special.begin(), special.end(), 2), 1);
}

TEST(Tok512Reference, HfExportLoadsAndGivesSameIds) {
  auto bin = Tokenizer::load(test::tok512_bin_path());
  const std::string dir = test::test_out_dir() + "/tok512_hf";
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir + "/tokenizer.json") << bin->to_hf_tokenizer_json();
    std::ofstream(dir + "/tokenizer_config.json") << bin->to_hf_tokenizer_config_json();
  }
  const auto config = nlohmann::json::parse(bin->to_hf_tokenizer_config_json());
  EXPECT_EQ(config.at("bos_token"), "<s>");
  EXPECT_EQ(config.at("eos_token"), "</s>");
  auto hf = Tokenizer::load(dir);  // a model directory
  EXPECT_EQ(hf->vocab_size(), bin->vocab_size());
  EXPECT_EQ(hf->bos_id(), 1);
  EXPECT_EQ(hf->eos_id(), 2);
  const auto refs = read_jsonl("tok512_ids.jsonl");
  const auto corpus = load_corpus();
  size_t failures = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto want = test::ids_of(refs[i].at("ids"));
    if (hf->encode(corpus[i].text) != want && ++failures <= 10) ADD_FAILURE() << "line " << i;
    EXPECT_EQ(hf->decode(want), bin->decode(want)) << "line " << i;
  }
  EXPECT_EQ(failures, 0u);
}

// A Metaspace-style tokenizer.json (prepend_scheme "first", merges as pairs) for the same
// vocabulary: ids must equal HF `tokenizers` loading that file.
TEST(Tok512Reference, MetaspaceTokenizerJsonGivesHuggingFaceIds) {
  auto tok = Tokenizer::load(test::fixture_path("tok512_metaspace/tokenizer.json"));
  auto bin = Tokenizer::load(test::tok512_bin_path());
  EXPECT_EQ(tok->vocab_size(), 512u);
  const auto corpus = load_corpus();
  const auto refs = read_jsonl("tok512_metaspace_ids.jsonl");
  ASSERT_EQ(corpus.size(), refs.size());
  size_t failures = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto want = test::ids_of(refs[i].at("ids"));
    if (tok->encode(corpus[i].text) != want && ++failures <= 10) ADD_FAILURE() << "line " << i;
    EXPECT_EQ(tok->decode(want), bin->decode(want)) << "line " << i;
  }
  EXPECT_EQ(failures, 0u);
}

TEST(Tok512Reference, DecodeStripsOnlyTheFirstPiecesSpace) {
  auto tok = Tokenizer::load(test::tok512_bin_path());
  const auto ids = tok->encode("Once upon a time");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(tok->id_to_piece(ids.front()).rfind("\xE2\x96\x81", 0), 0u);  // "▁Once..."
  EXPECT_EQ(tok->decode(ids), "Once upon a time");
  std::vector<int32_t> twice = ids;
  twice.insert(twice.end(), ids.begin(), ids.end());
  EXPECT_EQ(tok->decode(twice), "Once upon a time Once upon a time");
  EXPECT_EQ(tok->decode({3 + 0xE2, 3 + 0x82, 3 + 0xAC}), "\xE2\x82\xAC");  // <0xNN> bytes -> "€"
}

}  // namespace
}  // namespace fleet
