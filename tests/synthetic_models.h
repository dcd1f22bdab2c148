#pragma once
// Synthetic models shared by tests: generated once per build tree with `fleet synth`'s code
// and reused by later runs (and by benchmarks).
#include <filesystem>
#include <string>

#include "model/model_writer.h"

namespace fleet::test {

// TinyLlama-1.1B shape (dim 2048, 22 layers, GQA 32/4, 32k vocabulary), bf16, ~2.2 GB, in
// 1 GiB shards, with its synthetic tokenizer.bin.
inline std::string synthetic_1b() {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(FLEET_BINARY_DIR) / "models" / "llama-1b-bf16";
  if (!fs::exists(dir / "config.json") || !fs::exists(dir / "tokenizer.bin")) {
    fs::remove_all(dir);
    fs::path tmp = dir.string() + ".partial";
    fs::remove_all(tmp);
    write_synthetic_model(synth_shape("llama-1b"), DType::BF16, 1, tmp.string(), 1ull << 30);
    fs::rename(tmp, dir);
  }
  return dir.string();
}

}  // namespace fleet::test
