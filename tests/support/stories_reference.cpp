#include "support/stories_reference.h"

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "test_support.h"

namespace fleet::test {

const GenerateResult& stories_reference(const std::string& prompt, int max_tokens, float temperature, uint64_t seed) {
  static std::mutex mu;
  static std::map<std::tuple<std::string, int, float, uint64_t>, GenerateResult> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(prompt, max_tokens, temperature, seed);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  static auto weights = std::make_shared<StageWeights>(load_stage_weights(open_model(stories_bin()), {}));
  static StageEngine engine(weights, 1);
  static auto tok = Tokenizer::load(stories_tok());
  GenerateParams p;
  p.max_tokens = max_tokens;
  p.sampling = {temperature, 1.0f, 0, seed};
  return cache.emplace(key, generate(engine, *tok, encode_prompt(*tok, prompt), p)).first->second;
}

}  // namespace fleet::test
