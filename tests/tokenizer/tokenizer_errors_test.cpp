// Bad input gives a clear std::runtime_error naming the file, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tokenizer/tokenizer.h"
#include "tokenizer_fixtures.h"

namespace fleet {
namespace {

std::string write_file(const std::string& name, const std::string& content) {
  const std::string dir = test::test_out_dir() + "/errors";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

void expect_error_mentioning(const std::string& path, const std::string& fragment) {
  try {
    Tokenizer::load(path);
    ADD_FAILURE() << "no exception for " << path;
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

TEST(TokenizerErrors, MissingPath) { expect_error_mentioning("/nonexistent/tokenizer.json", "no such file"); }

TEST(TokenizerErrors, DirectoryWithoutTokenizer) {
  const std::string dir = test::test_out_dir() + "/empty_dir";
  std::filesystem::create_directories(dir);
  expect_error_mentioning(dir, "neither tokenizer.json nor tokenizer.bin");
}

TEST(TokenizerErrors, TruncatedTokenizerBin) {
  std::ifstream in(test::tok512_bin_path(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  expect_error_mentioning(write_file("truncated.bin", bytes.substr(0, bytes.size() - 3)), "truncated");
  expect_error_mentioning(write_file("tiny.bin", "ab"), "too short");
  std::string bad_len = bytes.substr(0, 4) + std::string("\0\0\0\0\xff\xff\xff\x7f", 8) + "x";
  expect_error_mentioning(write_file("badlen.bin", bad_len), "bad length");
}

// Found by fuzz/fuzz_tokenizer_json (UBSan): ids were read with get<int32_t>(), which casts a
// float out of range (undefined behaviour); a negative added-token id indexed the piece table.
TEST(TokenizerErrors, TokenIdsMustBeIntegersInRange) {
  const std::string vocab = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []})";
  expect_error_mentioning(
      write_file("float_id.json", R"({"model": {"type": "BPE", "vocab": {"a": 1e127}, "merges": []}})"),
      "bad vocabulary id 1e+127");
  expect_error_mentioning(
      write_file("added_negative.json", "{" + vocab + R"(, "added_tokens": [{"id": -3, "content": "<x>"}]})"),
      "bad added token id -3");
  expect_error_mentioning(
      write_file("added_huge.json", "{" + vocab + R"(, "added_tokens": [{"id": 2147483647, "content": "<x>"}]})"),
      "bad added token id 2147483647");
  EXPECT_NO_THROW(
      Tokenizer::load(write_file("added_ok.json", "{" + vocab + R"(, "added_tokens": [{"id": 2, "content": "<x>"}]})")));
}

TEST(TokenizerErrors, InvalidJson) {
  expect_error_mentioning(write_file("broken.json", "{\"model\": "), "invalid JSON");
  expect_error_mentioning(write_file("nomodel.json", "{\"version\": \"1.0\"}"), "no \"model\"");
  expect_error_mentioning(write_file("unigram.json", R"({"model": {"type": "Unigram", "vocab": []}})"),
                          "unsupported model type 'Unigram'");
  expect_error_mentioning(
      write_file("badmerge.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})"),
      "refers to a piece not in the vocabulary");
  expect_error_mentioning(
      write_file("badregex.json",
                 R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated",
                     "invert": false}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})"),
      "does not compile");
  expect_error_mentioning(write_file("wrongtype.json", R"({"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}})"),
                          "unexpected structure");
}

TEST(TokenizerErrors, ByteLevelExportIsRefused) {
  auto tok = Tokenizer::load(test::qwen3_dir());
  EXPECT_THROW(tok->to_hf_tokenizer_json(), std::runtime_error);
}

}  // namespace
}  // namespace fleet
