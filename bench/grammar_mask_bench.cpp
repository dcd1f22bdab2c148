// What a response_format costs at the last stage, against what a decode step of the model costs
// in the same run:
//
//   build/bench/fleet_bench_grammar [--tokenizer PATH] [--model PATH] [--schemas FILE] [--seeds N]
//
// For each schema of FILE (default tests/fixtures/structured_outputs/schemas.json) plus
// {"type": "json_object"}: compile time (schema -> GBNF -> matcher), then walks of seeded random
// logits under the mask (as tests/grammar does) timing every mask() (the whole vocabulary) and
// accept(), and the greedy path (masked(best = 1): the highest allowed token only). With --model (default: the tokenizer's file when it is a GGUF model), the median of
// 32 decode steps of that model on this machine is the baseline: mask p50 / decode step.
// Prints one JSON object per schema and one for the baseline.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/stage_engine.h"
#include "generate/generate.h"
#include "grammar/grammar_matcher.h"
#include "grammar/response_format.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

using namespace fleet;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

// Median milliseconds of one decode step (batch 1) of the model, all layers and the head.
double decode_step_ms(const std::string& model) {
  ModelSource src = open_model(model);
  auto weights = std::make_shared<StageWeights>(load_stage_weights(src, LoadOptions{}));
  StageEngine e(weights, 0, parse_activation_mode("auto"), false);
  const ModelConfig& c = e.config();
  auto cache = e.new_cache(64);
  std::vector<float> hidden(static_cast<size_t>(c.dim)), logits(static_cast<size_t>(c.vocab_size));
  std::vector<double> ms;
  for (int pos = 0; pos < 40; ++pos) {
    const int32_t id = static_cast<int32_t>((7 * pos + 1) % c.vocab_size);
    const int64_t row = 0;
    const auto t0 = Clock::now();
    e.embed({&id, 1}, hidden.data());
    SeqChunk chunk{cache.get(), pos, 1};
    e.forward_layers({&chunk, 1}, hidden.data());
    e.head(hidden.data(), {&row, 1}, logits.data());
    if (pos >= 8) ms.push_back(ms_since(t0));
  }
  return percentile(ms, 0.5);
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer = std::string(FLEET_MODELS_DIR) + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string model, schemas_path = std::string(FLEET_SOURCE_ROOT) + "/tests/fixtures/structured_outputs/schemas.json";
  int seeds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--tokenizer") tokenizer = argv[i + 1];
    else if (a == "--model") model = argv[i + 1];
    else if (a == "--schemas") schemas_path = argv[i + 1];
    else if (a == "--seeds") seeds = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (model.empty() && tokenizer.size() > 5 && tokenizer.substr(tokenizer.size() - 5) == ".gguf") model = tokenizer;
  auto tok = Tokenizer::load(tokenizer);
  std::vector<int32_t> stops;
  for (int32_t s : {tok->eos_id(), tok->eot_id()})
    if (s >= 0) stops.push_back(s);
  auto t0 = Clock::now();
  GrammarVocabulary vocab(*tok, stops);
  const double vocab_ms = ms_since(t0);

  std::ifstream in(schemas_path);
  json schemas = json::parse(in);
  std::vector<std::pair<std::string, json>> formats;
  for (const auto& [name, schema] : schemas.items())
    formats.push_back({name, {{"type", "json_schema"}, {"json_schema", {{"name", name}, {"schema", schema}}}}});
  formats.push_back({"json_object", {{"type", "json_object"}}});

  std::vector<double> all_mask;
  for (const auto& [name, rf] : formats) {
    t0 = Clock::now();
    const std::string gbnf = grammar_for_response_format(rf);
    const double convert_ms = ms_since(t0);
    std::vector<double> mask_ms, accept_us, matcher_ms, greedy_us;
    std::vector<float> scratch;
    int tokens = 0;
    for (int seed = 1; seed <= seeds; ++seed) {
      t0 = Clock::now();
      GrammarMatcher m(gbnf, vocab);
      matcher_ms.push_back(ms_since(t0));
      std::mt19937 rng(static_cast<uint32_t>(seed));
      std::uniform_real_distribution<float> u(0.0f, 1.0f);
      std::vector<float> logits(tok->vocab_size());
      for (int step = 0; step < 200; ++step) {
        for (size_t t = 0; t < logits.size(); ++t) {
          logits[t] = u(rng);
          const auto id = static_cast<int32_t>(t);
          if (tok->is_ordinary(id) && tok->token_bytes(id, false).find_first_of("\"}]") != std::string_view::npos)
            logits[t] += 3.0f;
        }
        for (int32_t s : stops) logits[static_cast<size_t>(s)] += 6.0f;
        t0 = Clock::now();
        m.masked(logits, scratch, 1);
        greedy_us.push_back(ms_since(t0) * 1e3);
        t0 = Clock::now();
        m.mask(logits);
        mask_ms.push_back(ms_since(t0));
        const auto best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        t0 = Clock::now();
        m.accept(best);
        accept_us.push_back(ms_since(t0) * 1e3);
        ++tokens;
        if (std::find(stops.begin(), stops.end(), best) != stops.end()) break;
      }
    }
    all_mask.insert(all_mask.end(), mask_ms.begin(), mask_ms.end());
    std::printf("%s\n", json{{"schema", name}, {"vocab", tok->vocab_size()}, {"gbnf_rules", std::count(gbnf.begin(), gbnf.end(), '\n')},
                             {"convert_ms", convert_ms}, {"matcher_ms", percentile(matcher_ms, 0.5)}, {"tokens", tokens},
                             {"mask_ms_p50", percentile(mask_ms, 0.5)}, {"mask_ms_p90", percentile(mask_ms, 0.9)},
                             {"mask_ms_max", percentile(mask_ms, 1.0)}, {"accept_us_p50", percentile(accept_us, 0.5)},
                             {"greedy_best_us_p50", percentile(greedy_us, 0.5)}, {"greedy_best_us_p90", percentile(greedy_us, 0.9)}}
                            .dump()
                            .c_str());
  }
  json summary = {{"vocab_build_ms", vocab_ms}, {"mask_ms_p50_all", percentile(all_mask, 0.5)},
                  {"mask_ms_p90_all", percentile(all_mask, 0.9)}};
  if (!model.empty()) {
    const double step = decode_step_ms(model);
    summary["model"] = model;
    summary["decode_step_ms_p50"] = step;
    summary["mask_p50_over_decode_step"] = percentile(all_mask, 0.5) / step;
  }
  std::printf("%s\n", summary.dump().c_str());
}
