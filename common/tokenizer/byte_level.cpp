#include "byte_level.h"

namespace fleet::tok {

ByteLevelAlphabet::ByteLevelAlphabet() {
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    byte_to_utf8_[b] = s;
    utf8_to_byte_.emplace(s, b);
  }
}

bool ByteLevelAlphabet::to_bytes(std::string_view piece, std::string& out) const {
  out.clear();
  for (size_t i = 0; i < piece.size();) {
    const size_t len = (static_cast<unsigned char>(piece[i]) < 0x80) ? 1 : 2;
    auto it = utf8_to_byte_.find(piece.substr(i, len));
    if (it == utf8_to_byte_.end()) return false;
    out.push_back(static_cast<char>(it->second));
    i += len;
  }
  return true;
}

const ByteLevelAlphabet& byte_level_alphabet() {
  static const ByteLevelAlphabet a;
  return a;
}

}  // namespace fleet::tok
