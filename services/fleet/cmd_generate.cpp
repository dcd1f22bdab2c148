// fleet generate: the whole model in one process; generated text to stdout, timings to stderr.
// With --parallel N (or --prompts FILE) it runs many requests with continuous batching and
// prints one JSON line per request and a summary line (aggregate tokens/s) instead.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "log/log.h"
#include "engine/matmul.h"
#include "generate/batched_generate.h"
#include "generate/generate.h"
#include "grammar/response_format.h"
#include "model/weights.h"

namespace fleet::cmd {

namespace {

std::vector<std::string> read_prompt_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("--prompts " + path + ": cannot open");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  if (lines.empty()) throw std::runtime_error("--prompts " + path + ": no prompts (one per line)");
  return lines;
}

// --parallel / --prompts: a JSON line per request, then a summary line.
void run_batched(StageEngine& engine, const Tokenizer& tok, const std::vector<std::string>& texts,
                 const GenerateParams& p, const BatchedGenerateOptions& bo) {
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string& t : texts) prompts.push_back(encode_prompt(tok, t));
  BatchedGenerateResult r = generate_batched(engine, tok, prompts, p, bo);
  std::vector<double> per_request;
  for (size_t i = 0; i < r.results.size(); ++i) {
    const GenerateResult& g = r.results[i];
    const double tps = g.decode_seconds > 0 ? static_cast<double>(g.tokens.size()) / g.decode_seconds : 0.0;
    per_request.push_back(tps);
    nlohmann::json line = {{"type", "completion"}, {"index", i}, {"text", g.text},
                           {"prompt_tokens", g.prompt_tokens}, {"completion_tokens", g.tokens.size()},
                           {"finish_reason", g.finish_reason}, {"first_token_s", g.prefill_seconds},
                           {"tokens_per_s", tps}};
    std::printf("%s\n", line.dump().c_str());
  }
  std::sort(per_request.begin(), per_request.end());
  const double aggregate = r.seconds > 0 ? static_cast<double>(r.generated) / r.seconds : 0.0;
  const double decode = r.decode_step_seconds > 0 ? static_cast<double>(r.decode_step_tokens) / r.decode_step_seconds : 0.0;
  nlohmann::json summary = {{"type", "summary"}, {"requests", r.results.size()}, {"parallel", bo.parallel},
                            {"generated", r.generated}, {"seconds", r.seconds}, {"steps", r.steps},
                            {"aggregate_tokens_per_s", aggregate}, {"decode_step_tokens_per_s", decode},
                            {"per_request_tokens_per_s_p50", per_request[per_request.size() / 2]},
                            {"per_request_tokens_per_s_min", per_request.front()}};
  std::printf("%s\n", summary.dump().c_str());
  log::logf(log::Level::Info, "%zu requests, %d in flight: %lld tokens in %.3f s = %.1f tokens/s aggregate "
            "(decode steps %.1f tokens/s); per request p50 %.1f tokens/s", r.results.size(), bo.parallel,
            static_cast<long long>(r.generated), r.seconds, aggregate, decode, per_request[per_request.size() / 2]);
}

}  // namespace

void add_generate(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, prompt, prompts_file, weights = "auto", activations = "auto";
    int max_tokens = 256, top_k = 0, threads = 0, parallel = 0, max_batch_tokens = 512, prefill_chunk = 256;
    bool blas_prefill = false;
    float temperature = 1.0f, top_p = 1.0f;
    int64_t seed = -1;
    std::vector<std::string> stop;
    std::string response_format;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand("generate", "Generate text with the whole model in this process");
  c->add_option("--model", o->model, "llama2.c checkpoint file or Hugging Face directory")->required();
  c->add_option("--tokenizer", o->tokenizer, "tokenizer.json, tokenizer.bin, GGUF or directory (default: beside the model; a GGUF model's own)");
  c->add_option("--prompt", o->prompt, "prompt text (encoded with BOS first)");
  c->add_option("--prompts", o->prompts_file, "file of prompts, one request per line (continuous batching; JSON lines out)");
  c->add_option("--parallel", o->parallel, "requests in flight at once (without --prompts: N copies of --prompt)")
      ->check(CLI::PositiveNumber);
  c->add_option("--max-batch-tokens", o->max_batch_tokens, "with --parallel: rows per forward pass")
      ->check(CLI::PositiveNumber);
  c->add_option("--prefill-chunk", o->prefill_chunk, "prompt tokens per forward pass")->check(CLI::PositiveNumber);
  c->add_option("--max-tokens", o->max_tokens, "tokens to generate")->check(CLI::NonNegativeNumber);
  c->add_option("--temperature", o->temperature, "0 for greedy")->check(CLI::NonNegativeNumber);
  c->add_option("--top-p", o->top_p)->check(CLI::Range(0.0f, 1.0f));
  c->add_option("--top-k", o->top_k, "0: no limit")->check(CLI::NonNegativeNumber);
  c->add_option("--seed", o->seed, "sampling seed (default: random, printed to stderr); request i of a batch uses seed + i");
  c->add_option("--stop", o->stop, "stop string (repeatable)");
  c->add_option("--response-format", o->response_format,
                "OpenAI response_format as JSON, e.g. '{\"type\": \"json_object\"}' or a json_schema");
  c->add_option("--weights", o->weights, "in-memory weight dtype: auto, f32, bf16, q8_0");
  c->add_option("--activations", o->activations, "activation mode: auto (q8 for quantized weights), f32, q8")
      ->check(CLI::IsMember({"auto", "f32", "q8"}));
  c->add_option("--threads", o->threads, "compute threads (0: all cores)");
  c->add_flag("--blas-prefill", o->blas_prefill, "f32 prompts through OpenBLAS sgemm (faster; not batch-invariant)");
  c->callback([o] {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    ModelSource src = open_model(o->model);
    LoadOptions lo;
    lo.weight_dtype = o->weights;
    auto weights = std::make_shared<StageWeights>(load_stage_weights(src, lo));
    StageEngine engine(weights, o->threads, parse_activation_mode(o->activations), o->blas_prefill);
    auto tok = Tokenizer::load(o->tokenizer.empty() ? default_tokenizer_path(o->model) : o->tokenizer);
    const double load_s = std::chrono::duration<double>(clock::now() - t0).count();

    GenerateParams p;
    p.max_tokens = o->max_tokens;
    p.prefill_chunk = o->prefill_chunk;
    p.sampling.temperature = o->temperature;
    p.sampling.top_p = o->top_p;
    p.sampling.top_k = o->top_k;
    p.sampling.seed = o->seed >= 0 ? static_cast<uint64_t>(o->seed) : std::random_device{}();
    p.stop = o->stop;
    if (!o->response_format.empty()) {
      nlohmann::json rf;
      try {
        rf = nlohmann::json::parse(o->response_format);
      } catch (const nlohmann::json::exception& e) {
        throw CLI::ValidationError("--response-format", std::string("not JSON: ") + e.what());
      }
      try {
        p.grammar = grammar_for_response_format(rf);
      } catch (const std::invalid_argument& e) {
        throw CLI::ValidationError("--response-format", e.what());
      }
    }
    if (o->seed < 0 && o->temperature > 0)
      log::logf(log::Level::Info, "seed %llu", static_cast<unsigned long long>(p.sampling.seed));
    if (o->parallel > 0 || !o->prompts_file.empty()) {
      BatchedGenerateOptions bo;
      bo.parallel = std::max(1, o->parallel);
      bo.max_batch_tokens = o->max_batch_tokens;
      const std::vector<std::string> texts = o->prompts_file.empty()
                                                 ? std::vector<std::string>(static_cast<size_t>(bo.parallel), o->prompt)
                                                 : read_prompt_lines(o->prompts_file);
      if (o->prompts_file.empty() && o->parallel > 0 && o->prompt.empty())
        log::logf(log::Level::Warn, "--parallel without --prompt or --prompts: %d copies of the empty prompt", o->parallel);
      return run_batched(engine, *tok, texts, p, bo);
    }
    auto res = generate(engine, *tok, encode_prompt(*tok, o->prompt), p, [](const std::string& s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    });
    std::printf("\n");
    const double n = static_cast<double>(res.tokens.size());
    log::logf(log::Level::Info,
              "load %.3f s (%s weights, %.1f MiB, %s activations, %s kernels, repacked in %.3f s) | prompt %d tokens in %.3f s | generated %zu tokens in %.3f s "
              "(%.1f tokens/s) | finish: %s", load_s, dtype_name(weights->layers[0].wq.dtype),
              static_cast<double>(weights->bytes()) / (1 << 20), engine.activations(), kernel_variant(),
              engine.repack_seconds(), res.prompt_tokens, res.prefill_seconds,
              res.tokens.size(), res.decode_seconds, res.decode_seconds > 0 ? n / res.decode_seconds : 0.0,
              res.finish_reason.c_str());
  });
}

}  // namespace fleet::cmd
