#pragma once
// Paths and small helpers shared by the tests.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace fleet::test {

inline std::string stories_dir() { return std::string(FLEET_MODELS_DIR) + "/stories260K"; }
inline std::string stories_bin() { return stories_dir() + "/stories260K.bin"; }
inline std::string stories_tok() { return stories_dir() + "/tok512.bin"; }
inline std::string smollm2_gguf() {
  return std::string(FLEET_MODELS_DIR) + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
}
inline std::string fixture(const std::string& rel) { return std::string(FLEET_SOURCE_ROOT) + "/tests/fixtures/" + rel; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory under the build tree, removed at the start of each use.
inline std::string scratch_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(FLEET_BINARY_DIR) / "test-scratch" / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// Runs fn and returns the message of the exception it throws ("" if none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace fleet::test
