#pragma once
// UTF-8 helpers shared by the tokenizer: strict decoding, the two ways of
// replacing malformed input with U+FFFD that the reference tokenizers use, and
// an incremental lossy decoder for streaming output.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fleet::tok {

inline constexpr char32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// Length of the well-formed UTF-8 character at s[0] (1..4), or 0 if the bytes
// there do not start a complete well-formed character (Unicode Table 3-7).
size_t valid_utf8_char_length(std::string_view s);

// Length of the "maximal subpart" of an ill-formed sequence at s[0]: the longest
// prefix that could still begin a well-formed character (at least 1).
size_t maximal_subpart_length(std::string_view s);

// Decodes the well-formed character at s[0]; *len receives its length. Requires
// valid_utf8_char_length(s) > 0.
char32_t decode_utf8_char(std::string_view s, size_t* len);

void append_utf8(std::string& out, char32_t cp);

bool is_valid_utf8(std::string_view s);

// Each maximal subpart of an ill-formed sequence becomes one U+FFFD (what Python's
// bytes.decode('utf-8', 'replace') and Rust's String::from_utf8_lossy do).
std::string replace_invalid_utf8_maximal(std::string_view s);

// Each byte of an ill-formed sequence becomes one U+FFFD (what SentencePiece's
// normalizer does).
std::string replace_invalid_utf8_per_byte(std::string_view s);

// Incremental version of replace_invalid_utf8_maximal: feeding any split of a
// byte string through push() and then flush() yields exactly the one-shot result,
// and push() never returns part of a character.
class Utf8LossyDecoder {
 public:
  std::string push(std::string_view bytes);
  std::string flush();

 private:
  std::string pending_;  // a prefix of a possibly valid character (< 4 bytes)
};

}  // namespace fleet::tok
