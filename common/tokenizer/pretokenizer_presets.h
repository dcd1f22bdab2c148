#pragma once
// The pre-tokenizers of GGUF byte-level vocabularies, named by `tokenizer.ggml.pre`, with the
// regular expressions llama.cpp (src/llama-vocab.cpp) applies for each name: each regex
// splits every piece the previous one produced (Hugging Face Split, behavior Isolated).
#include <string>
#include <string_view>
#include <vector>

namespace fleet::tok {

struct PreTokenizerPreset {
  std::vector<std::string> regexes;
  bool ignore_merges = false;  // a word that is itself a token is not merged (Llama 3)
  bool add_bos = false;        // llama.cpp's BOS default when the file has no add_bos_token
};

// nullptr for a name not supported here.
const PreTokenizerPreset* find_pre_tokenizer_preset(std::string_view name);
// "default, gpt-2, llama-bpe, ..." for error messages.
std::string supported_pre_tokenizer_names();

}  // namespace fleet::tok
