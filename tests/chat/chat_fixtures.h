#pragma once
// Test helpers: the committed chat template fixtures (tests/fixtures/chat_templates/, written by
// scripts/reference/chat_template_renders.py) and the built-in families' renders
// (tests/fixtures/tokenizer/chat_renders.jsonl, by scripts/reference/tokenizer_reference.py).
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "chat/chat.h"
#include "test_support.h"  // read_file, smollm2_gguf

namespace fleet::test {

inline std::string chat_fixture_path(const std::string& name) {
  return std::string(FLEET_SOURCE_ROOT) + "/tests/fixtures/chat_templates/" + name;
}

inline nlohmann::json read_renders() { return nlohmann::json::parse(read_file(chat_fixture_path("renders.json"))); }

inline std::vector<nlohmann::json> read_builtin_renders() {
  std::ifstream in(std::string(FLEET_SOURCE_ROOT) + "/tests/fixtures/tokenizer/chat_renders.jsonl");
  if (!in) throw std::runtime_error("missing fixture tests/fixtures/tokenizer/chat_renders.jsonl");
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

inline std::vector<ChatMessage> messages_of(const nlohmann::json& j) {
  std::vector<ChatMessage> out;
  for (const auto& m : j) out.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  return out;
}

// The date the reference renders were made with (renders.json's "strftime_now").
inline std::tm pinned_now() {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;  // July
  tm.tm_mday = 26;
  tm.tm_hour = 14;
  tm.tm_min = 30;
  tm.tm_wday = 5;   // a Friday
  tm.tm_yday = 207;
  return tm;
}

inline std::string qwen3_dir() { return std::string(FLEET_SOURCE_ROOT) + "/.cache/tokenizers/qwen3"; }
inline std::string test_out_dir() { return std::string(FLEET_BINARY_DIR) + "/chat_test_out"; }

}  // namespace fleet::test
