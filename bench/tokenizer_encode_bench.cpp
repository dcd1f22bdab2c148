// fleet_bench_tokenizer: encode throughput (MB/s, one thread) on English text.
//   fleet_bench_tokenizer [--tokenizer PATH] [--file TEXT] [--mb N] [--repeat N]
// Default tokenizer: the Qwen3 tokenizer.json fetched by scripts/fetch-tokenizers (any path
// Tokenizer::load takes works, a GGUF model file too).
// Default text: N MB of generated English prose (TinyStories-like sentences); with --file, the
// file's text, repeated up to N MB when --mb is given as well (for small corpora).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

std::string generated_english(size_t bytes) {
  static const char* kWords[] = {
      "the", "a", "little", "girl", "named", "Lily", "loved", "to", "play", "outside", "in", "park", "one", "day",
      "she", "saw", "big", "red", "ball", "wanted", "with", "it", "but", "was", "too", "high", "her", "mom",
      "said", "we", "can", "find", "way", "together", "happy", "and", "they", "went", "home", "after", "that",
      "friend", "Tom", "tree", "because", "sun", "bright", "everyone", "smiled", "learned", "important", "lesson",
      "about", "sharing", "kindness", "beautiful", "garden", "flowers", "bird", "sang", "song", "morning",
      "running", "jumped", "quickly", "suddenly", "remembered", "something", "special", "there", "once", "upon",
      "time", "very", "small", "town", "lived", "dog", "called", "Max", "who", "liked", "chase", "cats"};
  std::mt19937 rng(42);
  std::string text;
  text.reserve(bytes + 256);
  while (text.size() < bytes) {
    const int words = 6 + static_cast<int>(rng() % 14);
    for (int w = 0; w < words; ++w) {
      std::string word = kWords[rng() % std::size(kWords)];
      if (w == 0) word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
      text += word;
      if (w + 1 < words) text += (rng() % 12 == 0) ? ", " : " ";
    }
    text += (rng() % 6 == 0) ? "!" : ".";
    text += (rng() % 5 == 0) ? "\n\n" : " ";
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path = std::string(FLEET_SOURCE_ROOT) + "/.cache/tokenizers/qwen3/tokenizer.json";
  std::string file;
  double mb = 4;
  bool mb_given = false;
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--tokenizer") {
      tokenizer_path = next();
    } else if (a == "--file") {
      file = next();
    } else if (a == "--mb") {
      mb = std::stod(next());
      mb_given = true;
    } else if (a == "--repeat") {
      repeat = std::stoi(next());
    } else {
      std::fprintf(stderr, "usage: %s [--tokenizer PATH] [--file TEXT] [--mb N] [--repeat N]\n", argv[0]);
      return 2;
    }
  }
  try {
    std::string text;
    if (!file.empty()) {
      std::ifstream in(file, std::ios::binary);
      if (!in) throw std::runtime_error(file + ": cannot open");
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (mb_given && !text.empty()) {
        const std::string once = text + "\n\n";
        while (text.size() < static_cast<size_t>(mb * 1e6)) text += once;
      }
    } else {
      text = generated_english(static_cast<size_t>(mb * 1e6));
    }
    // Prompts arrive as documents of a few KB: split at paragraph breaks.
    std::vector<std::string_view> docs;
    for (size_t start = 0; start < text.size();) {
      size_t end = text.find("\n\n", start + 2048);
      end = (end == std::string::npos) ? text.size() : end + 2;
      docs.emplace_back(text.data() + start, end - start);
      start = end;
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto tok = fleet::Tokenizer::load(tokenizer_path);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("tokenizer %s (vocab %zu) loaded in %.2f s\n", tokenizer_path.c_str(), tok->vocab_size(), load_s);
    std::printf("text: %.2f MB in %zu documents\n", static_cast<double>(text.size()) / 1e6, docs.size());
    double best = 0;
    for (int r = 0; r < repeat; ++r) {
      size_t tokens = 0;
      const auto s = std::chrono::steady_clock::now();
      for (std::string_view d : docs) tokens += tok->encode(d).size();
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
      const double mbps = static_cast<double>(text.size()) / 1e6 / secs;
      best = std::max(best, mbps);
      std::printf("run %d: %zu tokens in %.3f s: %.2f MB/s (%.2f bytes/token)\n", r + 1, tokens, secs, mbps,
                  static_cast<double>(text.size()) / static_cast<double>(tokens));
    }
    std::printf("encode throughput (best of %d, one thread): %.2f MB/s\n", repeat, best);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fleet_bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
