// UTF-8 repair, the incremental lossy decoder, NFC and the PCRE2 pre-tokenizer regex.
#include <gtest/gtest.h>

#include <random>

#include "tokenizer/pretokenizer_regex.h"
#include "tokenizer/unicode_nfc.h"
#include "tokenizer/utf8.h"

namespace fleet::tok {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Utf8, MaximalSubpartReplacementMatchesPython) {
  // Python: b"\xe2\x82a\xf0\x9f\x98\xc0\xaf".decode("utf-8", "replace")
  EXPECT_EQ(replace_invalid_utf8_maximal("\xE2\x82" "a\xF0\x9F\x98\xC0\xAF"), kFFFD + "a" + kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(replace_invalid_utf8_maximal("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);  // surrogate
  EXPECT_EQ(replace_invalid_utf8_maximal("ok \xC3\xA9"), "ok \xC3\xA9");
}

TEST(Utf8, PerByteReplacementMatchesSentencePiece) {
  EXPECT_EQ(replace_invalid_utf8_per_byte("\xE2\x82" "a"), kFFFD + kFFFD + "a");
}

TEST(Utf8, LossyDecoderAnySplitEqualsOneShot) {
  std::mt19937 rng(3);
  const std::string pieces[] = {"\xE2", "\x82", "\xAC", "a", "\xF0\x9F", "\x98\x80", "\xC0", "\xFF", "\xED\xA0", "\xC3"};
  for (int n = 0; n < 5000; ++n) {
    std::string all;
    Utf8LossyDecoder dec;
    std::string streamed;
    const int len = 1 + static_cast<int>(rng() % 10);
    for (int k = 0; k < len; ++k) {
      const std::string& p = pieces[rng() % std::size(pieces)];
      all += p;
      const std::string out = dec.push(p);
      ASSERT_TRUE(is_valid_utf8(out));
      streamed += out;
    }
    streamed += dec.flush();
    EXPECT_EQ(streamed, replace_invalid_utf8_maximal(all));
  }
}

TEST(Nfc, ComposesReordersAndKeepsComposed) {
  EXPECT_EQ(nfc_normalize("e\xCC\x81"), "\xC3\xA9");                        // e + U+0301 -> é
  EXPECT_EQ(nfc_normalize("\xE2\x84\xAB"), "\xC3\x85");                     // Angstrom sign -> Å
  EXPECT_EQ(nfc_normalize("o\xCC\xA3\xCC\x82"), "\xE1\xBB\x99");            // o + dot below + circumflex -> ộ
  EXPECT_EQ(nfc_normalize("o\xCC\x82\xCC\xA3"), "\xE1\xBB\x99");            // other order, same result
  EXPECT_EQ(nfc_normalize("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(nfc_normalize("\xEF\xAC\x81"), "\xEF\xAC\x81");                 // ﬁ is not changed by NFC
  EXPECT_EQ(nfc_normalize("plain ascii"), "plain ascii");
}

TEST(PretokenizerRegex, WhitespaceIsOniguruma) {
  // U+180E is not White_Space: Oniguruma's \s does not match it, PCRE2's \h would.
  Regex re("\\s+");
  std::vector<std::string_view> out;
  re.split("a \xE1\xA0\x8E b", Regex::SplitBehavior::kIsolated, false, out);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[2], "\xE1\xA0\x8E");
  EXPECT_EQ(translate_onig_pattern("[^\\s\\p{L}]"), "[^\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
                                                     "\\x{202F}\\x{205F}\\x{3000}\\p{L}]");
}

TEST(PretokenizerRegex, UnicodeLettersAndIsolatedSplit) {
  Regex re(" ?\\p{L}+| ?\\p{N}+");
  std::vector<std::string_view> out;
  re.split("Zürich 42 中文!", Regex::SplitBehavior::kIsolated, false, out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0], "Zürich");
  EXPECT_EQ(out[1], " 42");
  EXPECT_EQ(out[2], " 中文");
  EXPECT_EQ(out[3], "!");
  EXPECT_EQ(re.replace_all("ab 12!", "_"), "__!");
}

}  // namespace
}  // namespace fleet::tok
