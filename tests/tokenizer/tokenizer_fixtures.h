#pragma once
// Test helpers: the committed corpus and reference ids (tests/fixtures/tokenizer/,
// written by scripts/reference/tokenizer_reference.py) and the tokenizer files.
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace fleet::test {

inline std::string fixture_path(const std::string& name) {
  return std::string(FLEET_SOURCE_ROOT) + "/tests/fixtures/tokenizer/" + name;
}
inline std::string tok512_bin_path() { return std::string(FLEET_MODELS_DIR) + "/stories260K/tok512.bin"; }
inline std::string qwen3_dir() { return std::string(FLEET_SOURCE_ROOT) + "/.cache/tokenizers/qwen3"; }
inline std::string test_out_dir() { return std::string(FLEET_BINARY_DIR) + "/tokenizer_test_out"; }

inline std::vector<nlohmann::json> read_jsonl(const std::string& name) {
  std::ifstream in(fixture_path(name));
  if (!in) throw std::runtime_error("missing fixture " + fixture_path(name));
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

inline std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

struct CorpusEntry {
  std::string category;
  std::string text;  // raw bytes, possibly invalid UTF-8
};

inline std::vector<CorpusEntry> load_corpus() {
  std::vector<CorpusEntry> out;
  for (const auto& row : read_jsonl("corpus.jsonl"))
    out.push_back({row.at("category").get<std::string>(), from_hex(row.at("hex").get<std::string>())});
  return out;
}

inline std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

}  // namespace fleet::test
