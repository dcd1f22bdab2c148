#pragma once
// PCRE2 (UTF + Unicode properties, JIT) regular expressions for Hugging Face
// pre-tokenizer Split patterns and Replace normalizers. Patterns are written for
// Oniguruma; translate_onig_pattern() maps the few places where PCRE2's meaning
// differs (\s is Unicode White_Space in Oniguruma but also U+180E in PCRE2).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fleet::tok {

std::string translate_onig_pattern(std::string_view pattern);

class Regex {
 public:
  // Throws std::runtime_error with PCRE2's message if the pattern does not compile.
  explicit Regex(const std::string& onig_pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };
  // Splits valid UTF-8 text at matches (Hugging Face Split semantics), appending
  // non-empty pieces to out.
  void split(std::string_view text, SplitBehavior behavior, bool invert, std::vector<std::string_view>& out) const;
  // Replaces every match with `replacement` (literal text).
  std::string replace_all(std::string_view text, std::string_view replacement) const;
  const std::string& pattern() const { return pattern_; }

 private:
  // Calls f(start, end) for each non-overlapping match, left to right.
  template <typename F>
  void for_each_match(std::string_view text, F&& f) const;
  std::string pattern_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fleet::tok
