#include "utf8.h"

namespace fleet::tok {
namespace {

// Allowed range of the second byte for a given lead byte (Unicode Table 3-7);
// returns false for bytes that can never lead a multi-byte character.
bool second_byte_range(unsigned char lead, unsigned char* lo, unsigned char* hi, size_t* need) {
  *lo = 0x80;
  *hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    *need = 2;
  } else if (lead == 0xE0) {
    *need = 3;
    *lo = 0xA0;
  } else if (lead == 0xED) {
    *need = 3;
    *hi = 0x9F;
  } else if (lead >= 0xE1 && lead <= 0xEF) {
    *need = 3;
  } else if (lead == 0xF0) {
    *need = 4;
    *lo = 0x90;
  } else if (lead == 0xF4) {
    *need = 4;
    *hi = 0x8F;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    *need = 4;
  } else {
    return false;
  }
  return true;
}

// Number of leading bytes of s that form a valid (possibly incomplete) prefix of a
// character, and whether the character is complete.
size_t valid_prefix_length(std::string_view s, bool* complete) {
  *complete = false;
  if (s.empty()) return 0;
  const auto lead = static_cast<unsigned char>(s[0]);
  if (lead < 0x80) {
    *complete = true;
    return 1;
  }
  unsigned char lo = 0, hi = 0;
  size_t need = 0;
  if (!second_byte_range(lead, &lo, &hi, &need)) return 0;
  size_t n = 1;
  while (n < need && n < s.size()) {
    const auto b = static_cast<unsigned char>(s[n]);
    const unsigned char min = (n == 1) ? lo : 0x80;
    const unsigned char max = (n == 1) ? hi : 0xBF;
    if (b < min || b > max) return n;
    ++n;
  }
  *complete = (n == need);
  return n;
}

}  // namespace

size_t valid_utf8_char_length(std::string_view s) {
  bool complete = false;
  const size_t n = valid_prefix_length(s, &complete);
  return complete ? n : 0;
}

size_t maximal_subpart_length(std::string_view s) {
  bool complete = false;
  const size_t n = valid_prefix_length(s, &complete);
  return n == 0 ? 1 : n;
}

char32_t decode_utf8_char(std::string_view s, size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  auto cont = [&](size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(s[i]) & 0x3F); };
  if (b0 < 0xE0) {
    *len = 2;
    return (static_cast<char32_t>(b0 & 0x1F) << 6) | cont(1);
  }
  if (b0 < 0xF0) {
    *len = 3;
    return (static_cast<char32_t>(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
  }
  *len = 4;
  return (static_cast<char32_t>(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = valid_utf8_char_length(s.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

namespace {
// Copies valid characters; each invalid stretch becomes U+FFFD, advancing by skip(rest) bytes.
template <typename Skip>
std::string replace_invalid_utf8(std::string_view s, Skip skip) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = valid_utf8_char_length(s.substr(i));
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append(kReplacementUtf8);
      i += skip(s.substr(i));
    }
  }
  return out;
}
}  // namespace

std::string replace_invalid_utf8_maximal(std::string_view s) {
  return replace_invalid_utf8(s, [](std::string_view rest) { return maximal_subpart_length(rest); });
}

std::string replace_invalid_utf8_per_byte(std::string_view s) {
  return replace_invalid_utf8(s, [](std::string_view) { return size_t{1}; });
}

std::string Utf8LossyDecoder::push(std::string_view bytes) {
  std::string buf = pending_;
  buf.append(bytes);
  pending_.clear();
  std::string out;
  size_t i = 0;
  while (i < buf.size()) {
    std::string_view rest(buf.data() + i, buf.size() - i);
    bool complete = false;
    const size_t n = valid_prefix_length(rest, &complete);
    if (complete) {
      out.append(rest.substr(0, n));
      i += n;
    } else if (n == rest.size()) {
      pending_.assign(rest);  // could still become a character: wait for more bytes
      break;
    } else {
      out.append(kReplacementUtf8);
      i += (n == 0 ? 1 : n);
    }
  }
  return out;
}

std::string Utf8LossyDecoder::flush() {
  std::string out;
  if (!pending_.empty()) out.append(kReplacementUtf8);  // an incomplete character
  pending_.clear();
  return out;
}

}  // namespace fleet::tok
