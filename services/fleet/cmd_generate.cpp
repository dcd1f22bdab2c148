// fleet generate: the whole model in one process; generated text to stdout, timings to stderr.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "commands.h"
#include "log/log.h"
#include "engine/matmul.h"
#include "generate/generate.h"
#include "model/weights.h"

namespace fleet::cmd {

void add_generate(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, prompt, weights = "auto", activations = "auto";
    int max_tokens = 256, top_k = 0, threads = 0;
    bool blas_prefill = false;
    float temperature = 1.0f, top_p = 1.0f;
    int64_t seed = -1;
    std::vector<std::string> stop;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand("generate", "Generate text with the whole model in this process");
  c->add_option("--model", o->model, "llama2.c checkpoint file or Hugging Face directory")->required();
  c->add_option("--tokenizer", o->tokenizer, "tokenizer.json, tokenizer.bin, GGUF or directory (default: beside the model; a GGUF model's own)");
  c->add_option("--prompt", o->prompt, "prompt text (encoded with BOS first)");
  c->add_option("--max-tokens", o->max_tokens, "tokens to generate")->check(CLI::NonNegativeNumber);
  c->add_option("--temperature", o->temperature, "0 for greedy")->check(CLI::NonNegativeNumber);
  c->add_option("--top-p", o->top_p)->check(CLI::Range(0.0f, 1.0f));
  c->add_option("--top-k", o->top_k, "0: no limit")->check(CLI::NonNegativeNumber);
  c->add_option("--seed", o->seed, "sampling seed (default: random, printed to stderr)");
  c->add_option("--stop", o->stop, "stop string (repeatable)");
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
    p.sampling.temperature = o->temperature;
    p.sampling.top_p = o->top_p;
    p.sampling.top_k = o->top_k;
    p.sampling.seed = o->seed >= 0 ? static_cast<uint64_t>(o->seed) : std::random_device{}();
    p.stop = o->stop;
    if (o->seed < 0 && o->temperature > 0)
      log::logf(log::Level::Info, "seed %llu", static_cast<unsigned long long>(p.sampling.seed));
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
