#include "pretokenizer_presets.h"

#include <utility>

namespace fleet::tok {
namespace {

// GPT-2's regex. llama.cpp's copy leaves out the final "|\s+", but its hand-written matcher
// for this pattern splits a lone whitespace character before a non-space exactly as "\s+"
// would, and an Isolated split keeps unmatched text as a piece of its own anyway.
constexpr const char* kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
// Llama 3 and Qwen2 with the case-insensitive contractions spelled out, as llama.cpp does
// ((?i:'s) would also match U+017F LATIN SMALL LETTER LONG S).
constexpr const char* kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct Named {
  std::vector<std::string_view> names;
  PreTokenizerPreset preset;
};

const std::vector<Named>& presets() {
  static const std::vector<Named> p = {
      {{"default"}, {{"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3"}, {{kLlama3}, true, true}},
      {{"dbrx", "smaug-bpe"}, {{kLlama3}, false, false}},
      {{"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"}, {{kQwen2}, false, false}},
      // Digits one by one, then GPT-2's regex.
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"},
       {{"\\p{N}", kGpt2}, false, false}},
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "gigachat", "roberta-bpe", "jina-es", "jina-de", "jina-v1-en",
        "jina-v2-es", "jina-v2-de", "jina-v2-code"},
       {{kGpt2}, false, false}},
  };
  return p;
}

}  // namespace

const PreTokenizerPreset* find_pre_tokenizer_preset(std::string_view name) {
  for (const auto& n : presets())
    for (std::string_view alias : n.names)
      if (alias == name) return &n.preset;
  return nullptr;
}

std::string supported_pre_tokenizer_names() {
  std::string out;
  for (const auto& n : presets())
    for (std::string_view alias : n.names) {
      if (!out.empty()) out += ", ";
      out += alias;
    }
  return out;
}

}  // namespace fleet::tok
