#pragma once
// GPT-2's byte <-> printable character mapping used by byte-level BPE vocabularies: every
// byte stands for one character (printable ASCII and Latin-1 as themselves, the others
// shifted to U+0100..), so "Ġthe" is the bytes " the".
#include <string>
#include <string_view>

#include "tokenizer_data.h"

namespace fleet::tok {

class ByteLevelAlphabet {
 public:
  ByteLevelAlphabet();
  const std::string& char_of(unsigned char byte) const { return byte_to_utf8_[byte]; }
  // Maps a vocabulary piece back to raw bytes; false if it holds other characters.
  bool to_bytes(std::string_view piece, std::string& out) const;

 private:
  std::string byte_to_utf8_[256];
  StringIdMap utf8_to_byte_;
};

const ByteLevelAlphabet& byte_level_alphabet();

}  // namespace fleet::tok
