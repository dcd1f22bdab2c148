#include "support/stories_reference.h"

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "test_support.h"

namespace fleet::test {

const std::vector<std::string>& story_prompts() {
  static const std::vector<std::string> prompts = {
      "Once upon a time",          "The little dog",           "Lily and Ben went to the park",
      "One day, a big bear",       "Tom had a red ball. He",   "The sun was hot and",
      "Mom said",                  "There was a tiny bird who", "The cat sat on the mat and",
      "Timmy wanted to play with", "In the garden, a little frog", "The big red car",
      "Anna found a shiny stone",  "It was a rainy day and",   "The boy and his dad",
      "A kind old man lived",      "Sam liked to eat apples",  "The fish swam in the pond",
      "One night, the moon",       "Once upon a time, there was a girl named Sue"};
  return prompts;
}

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
