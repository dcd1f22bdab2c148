// The engine's speed on one model, as llama.cpp's llama-bench and llama-batched-bench measure
// theirs (bench/run puts them side by side):
//
//   build/bench/fleet_bench_engine --model PATH [--activations auto|f32|q8] [--weights auto|f32|bf16|q8_0]
//       [--threads N] [--reps R] [--blas-prefill 1] [--test tg64|pp64|pp512|batch16 ...]
//
//   tgN:    N tokens decoded one at a time from an empty context (llama-bench -n N)
//   ppN:    one prompt of N tokens in one forward pass, logits of the last (llama-bench -p N)
//   batchB: B sequences of 16 prompt tokens each, then 64 decode steps of B tokens; aggregate
//           tokens/s of the decode steps (llama-batched-bench -npp 16 -ntg 64 -npl B, S_TG)
//
// Prints one JSON object per test and line: {"test", "tokens_per_s" (median of reps), "runs",
// "model", "weights", "activations", "kernels", "threads", "weight_bytes"}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/matmul.h"
#include "engine/stage_engine.h"

using namespace fleet;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Runs n_seq sequences from position `start` for `steps` steps of `per_step` tokens each;
// returns the seconds the steps took (logits of every sequence's last token per step).
double run_steps(StageEngine& e, std::vector<std::unique_ptr<KVCache>>& caches, int start, int steps, int per_step) {
  const ModelConfig& c = e.config();
  const int n_seq = static_cast<int>(caches.size());
  const size_t rows_n = static_cast<size_t>(n_seq) * static_cast<size_t>(per_step);
  std::vector<float> hidden(rows_n * static_cast<size_t>(c.dim)), logits(static_cast<size_t>(n_seq) * c.vocab_size);
  std::vector<int64_t> rows(static_cast<size_t>(n_seq));
  for (int b = 0; b < n_seq; ++b) rows[static_cast<size_t>(b)] = static_cast<int64_t>(b + 1) * per_step - 1;
  const auto t0 = Clock::now();
  for (int s = 0; s < steps; ++s) {
    std::vector<int32_t> ids(rows_n);
    for (size_t i = 0; i < rows_n; ++i) ids[i] = static_cast<int32_t>((7 * i + 13 * static_cast<size_t>(s) + 1) % static_cast<size_t>(c.vocab_size));
    std::vector<SeqChunk> chunks;
    for (int b = 0; b < n_seq; ++b) chunks.push_back({caches[static_cast<size_t>(b)].get(), start + s * per_step, per_step});
    e.embed(ids, hidden.data());
    e.forward_layers(chunks, hidden.data());
    e.head(hidden.data(), rows, logits.data());
  }
  return seconds_since(t0);
}

double measure(StageEngine& e, const std::string& test) {
  auto caches = [&](int n, int len) {
    std::vector<std::unique_ptr<KVCache>> v;
    for (int i = 0; i < n; ++i) v.push_back(e.new_cache(len));
    return v;
  };
  if (test.rfind("tg", 0) == 0) {
    const int n = std::stoi(test.substr(2));
    auto c = caches(1, n + 1);
    return n / run_steps(e, c, 0, n, 1);
  }
  if (test.rfind("pp", 0) == 0) {
    const int n = std::stoi(test.substr(2));
    auto c = caches(1, n + 1);
    return n / run_steps(e, c, 0, 1, n);
  }
  if (test.rfind("batch", 0) == 0) {
    const int b = std::stoi(test.substr(5)), prompt = 16, gen = 64;
    auto c = caches(b, prompt + gen + 1);
    run_steps(e, c, 0, 1, prompt);
    return b * gen / run_steps(e, c, prompt, gen, 1);
  }
  throw std::runtime_error("unknown test '" + test + "' (tgN, ppN, batchB)");
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, weights = "auto", activations = "auto";
  std::vector<std::string> tests;
  int threads = static_cast<int>(std::thread::hardware_concurrency()), reps = 3;
  bool blas_prefill = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model = v;
    else if (a == "--weights") weights = v;
    else if (a == "--activations") activations = v;
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--reps") reps = std::stoi(v);
    else if (a == "--test") tests.push_back(v);
    else if (a == "--blas-prefill") blas_prefill = v == "1" || v == "true";
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (model.empty()) {
    std::fprintf(stderr,
                 "usage: %s --model PATH [--activations auto|f32|q8] [--weights auto|f32|bf16|q8_0] [--threads N] "
                 "[--reps R] [--test tg64|pp64|pp512|batch16 ...]\n",
                 argv[0]);
    return 2;
  }
  if (tests.empty()) tests = {"tg64"};
  try {
    LoadOptions lo;
    lo.weight_dtype = weights;
    auto w = std::make_shared<StageWeights>(load_stage_weights(open_model(model), lo));
    StageEngine engine(w, threads, parse_activation_mode(activations), blas_prefill);
    measure(engine, "tg4");  // warm-up: faults the weights in
    for (const std::string& t : tests) {
      std::vector<double> runs;
      for (int r = 0; r < reps; ++r) runs.push_back(measure(engine, t));
      std::vector<double> sorted = runs;
      std::sort(sorted.begin(), sorted.end());
      nlohmann::json j = {{"test", t},
                          {"tokens_per_s", sorted[sorted.size() / 2]},
                          {"runs", runs},
                          {"model", model},
                          {"weights", dtype_name(w->layers[0].wq.dtype)},
                          {"activations", engine.activations()},
                          {"kernels", kernel_variant()},
                          {"threads", threads},
                          {"blas_prefill", blas_prefill},
                          {"weight_bytes", engine.layer_bytes() + w->head.bytes()}};
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fleet_bench_engine: %s\n", e.what());
    return 1;
  }
  return 0;
}
