#define PCRE2_CODE_UNIT_WIDTH 8
#include "pretokenizer_regex.h"

#include <pcre2.h>

#include <stdexcept>

namespace fleet::tok {
namespace {

// Unicode White_Space, which is what Oniguruma's \s matches for UTF-8 strings.
constexpr std::string_view kWhiteSpaceMembers =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

}  // namespace

std::string translate_onig_pattern(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      if (e == 's') {
        if (in_class) {
          out.append(kWhiteSpaceMembers);
        } else {
          out.append("[").append(kWhiteSpaceMembers).append("]");
        }
      } else if (e == 'S' && !in_class) {
        out.append("[^").append(kWhiteSpaceMembers).append("]");
      } else {
        out.push_back(c);
        out.push_back(e);
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      if (i + 1 < p.size() && p[i + 1] == '^') out.push_back(p[++i]);
      if (i + 1 < p.size() && p[i + 1] == ']') out.push_back(p[++i]);  // literal ] first
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

Regex::Regex(const std::string& onig_pattern) : pattern_(onig_pattern), impl_(std::make_unique<Impl>()) {
  const std::string translated = translate_onig_pattern(onig_pattern);
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &err_offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw std::runtime_error("regex '" + onig_pattern + "' does not compile at offset " +
                             std::to_string(err_offset) + ": " + reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
}

Regex::~Regex() = default;

template <typename F>
void Regex::for_each_match(std::string_view text, F&& f) const {
  struct MatchData {
    pcre2_match_data* md;
    ~MatchData() { pcre2_match_data_free(md); }
  } data{pcre2_match_data_create_from_pattern(impl_->code, nullptr)};
  if (data.md == nullptr) throw std::runtime_error("pcre2: out of memory");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, data.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      throw std::runtime_error("regex '" + pattern_ + "' match failed: " + reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.md);
    const size_t start = ov[0], end = ov[1];
    if (end == start) {  // empty match: skip one character
      if (start >= text.size()) return;
      size_t step = 1;
      while (start + step < text.size() && (static_cast<unsigned char>(text[start + step]) & 0xC0) == 0x80) ++step;
      pos = start + step;
      continue;
    }
    f(start, end);
    pos = end;
  }
}

void Regex::split(std::string_view text, SplitBehavior behavior, bool invert,
                  std::vector<std::string_view>& out) const {
  // (start, end, is_match) segments covering the text.
  std::vector<std::pair<size_t, size_t>> matches;
  for_each_match(text, [&](size_t s, size_t e) { matches.emplace_back(s, e); });
  struct Seg {
    size_t start, end;
    bool match;
  };
  std::vector<Seg> segs;
  size_t last = 0;
  for (const auto& [s, e] : matches) {
    if (s > last) segs.push_back({last, s, invert});
    segs.push_back({s, e, !invert});
    last = e;
  }
  if (last < text.size()) segs.push_back({last, text.size(), invert});

  std::vector<std::pair<size_t, size_t>> pieces;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& s : segs) pieces.emplace_back(s.start, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const auto& s : segs)
        if (!s.match) pieces.emplace_back(s.start, s.end);
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& s : segs) {
        if (s.match && !pieces.empty()) {
          pieces.back().second = s.end;
        } else {
          pieces.emplace_back(s.start, s.end);
        }
      }
      break;
    case SplitBehavior::kMergedWithNext: {
      bool carry = false;
      for (const auto& s : segs) {
        if (carry) {
          pieces.back().second = s.end;
        } else {
          pieces.emplace_back(s.start, s.end);
        }
        carry = s.match;
      }
      break;
    }
    case SplitBehavior::kContiguous:
      for (const auto& s : segs) {
        if (!pieces.empty() && s.match && segs.size() > 1 && pieces.back().second == s.start && !matches.empty() &&
            (&s != &segs.front()) && (&s)[-1].match) {
          pieces.back().second = s.end;
        } else {
          pieces.emplace_back(s.start, s.end);
        }
      }
      break;
  }
  for (const auto& [s, e] : pieces)
    if (e > s) out.push_back(text.substr(s, e - s));
}

std::string Regex::replace_all(std::string_view text, std::string_view replacement) const {
  std::string out;
  size_t last = 0;
  for_each_match(text, [&](size_t s, size_t e) {
    out.append(text.substr(last, s - last));
    out.append(replacement);
    last = e;
  });
  out.append(text.substr(last));
  return out;
}

}  // namespace fleet::tok
