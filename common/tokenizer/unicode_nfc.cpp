#include "unicode_nfc.h"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "utf8.h"

namespace fleet::tok {
namespace {

#include "unicode_nfc_tables.inc"

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

struct Tables {
  std::unordered_map<char32_t, std::pair<uint32_t, uint32_t>> decomposition;  // cp -> (offset, length)
  std::unordered_map<uint64_t, char32_t> composition;
  Tables() {
    const size_t n = sizeof(kDecompositions) / sizeof(kDecompositions[0]);
    for (size_t i = 0; i < n;) {
      const uint32_t cp = kDecompositions[i], len = kDecompositions[i + 1];
      decomposition.emplace(cp, std::make_pair(static_cast<uint32_t>(i + 2), len));
      i += 2 + len;
    }
    const size_t m = sizeof(kCompositions) / sizeof(kCompositions[0]);
    for (size_t i = 0; i + 2 < m; i += 3)
      composition.emplace((static_cast<uint64_t>(kCompositions[i]) << 32) | kCompositions[i + 1], kCompositions[i + 2]);
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

int combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const size_t n = sizeof(kCombiningClassRanges) / sizeof(kCombiningClassRanges[0]) / 3;
  size_t lo = 0, hi = n;  // first range with end >= cp
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (kCombiningClassRanges[mid * 3 + 1] < cp) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < n && kCombiningClassRanges[lo * 3] <= cp) return static_cast<int>(kCombiningClassRanges[lo * 3 + 2]);
  return 0;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const auto& t = tables();
  auto it = t.decomposition.find(cp);
  if (it == t.decomposition.end()) {
    out.push_back(cp);
    return;
  }
  for (uint32_t i = 0; i < it->second.second; ++i) out.push_back(kDecompositions[it->second.first + i]);
}

char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto& t = tables();
  auto it = t.composition.find((static_cast<uint64_t>(a) << 32) | b);
  return it == t.composition.end() ? 0 : it->second;
}

}  // namespace

std::string nfc_normalize(std::string_view text) {
  // Quick check: text whose characters are all below U+0300 is already NFC (nothing
  // there decomposes under NFC or combines with a neighbour). Lead bytes >= 0xCC start
  // characters >= U+0300.
  bool below_0300 = true;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0xCC) {
      below_0300 = false;
      break;
    }
  }
  if (below_0300) return std::string(text);

  std::vector<char32_t> buf;
  buf.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    const char32_t cp = decode_utf8_char(text.substr(i), &len);
    decompose(cp, buf);
    i += len;
  }
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < buf.size();) {
    if (combining_class(buf[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < buf.size() && combining_class(buf[j]) != 0) ++j;
    std::stable_sort(buf.begin() + static_cast<std::ptrdiff_t>(i), buf.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t x, char32_t y) { return combining_class(x) < combining_class(y); });
    i = j;
  }
  // Canonical composition.
  if (!buf.empty()) {
    size_t starter = 0;
    int last_class = combining_class(buf[0]);
    if (last_class != 0) last_class = 256;  // no starter yet: nothing can compose
    size_t out = 1;
    for (size_t i = 1; i < buf.size(); ++i) {
      const char32_t ch = buf[i];
      const int cls = combining_class(ch);
      const char32_t composite = (last_class == 256) ? 0 : compose(buf[starter], ch);
      if (composite != 0 && (last_class < cls || last_class == 0)) {
        buf[starter] = composite;
      } else {
        if (cls == 0) starter = out;
        last_class = cls;
        buf[out++] = ch;
      }
    }
    buf.resize(out);
  }
  std::string result;
  result.reserve(text.size());
  for (char32_t cp : buf) append_utf8(result, cp);
  return result;
}

}  // namespace fleet::tok
