// Not part of the archive: fleet never gives the grammar engine a vocabulary (it matches token
// pieces itself, common/grammar), so the grammar parser's `<token>` syntax is refused ("no vocab
// to parse token") and nothing below is called. It exists so src/llama-grammar.cpp compiles verbatim.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "llama.h"

struct llama_vocab {
  int32_t tokenize(const char*, int32_t, llama_token*, int32_t, bool, bool) const {
    throw std::logic_error("llama_vocab stand-in: tokenize");
  }
  const std::string& token_to_piece(llama_token) const { throw std::logic_error("llama_vocab stand-in: token_to_piece"); }
  bool is_eog(llama_token) const { throw std::logic_error("llama_vocab stand-in: is_eog"); }
};
