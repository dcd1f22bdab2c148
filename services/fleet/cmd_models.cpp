// fleet convert / fleet synth: write Hugging Face model directories and GGUF files.
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "log/log.h"
#include "gguf/gguf_types.h"
#include "model/model_writer.h"

namespace fleet::cmd {

namespace {

bool ends_with_gguf(const std::string& p) { return p.size() > 5 && p.compare(p.size() - 5, 5, ".gguf") == 0; }

}  // namespace

void add_convert(CLI::App& app) {
  struct Opts { std::string from, model, tokenizer, out, type = "keep"; };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand(
      "convert",
      "Convert between model formats:\n"
      "  llama2c -> hf:   --model stories.bin --tokenizer tok.bin --out DIR\n"
      "  gguf    -> hf:   --model FILE.gguf --out DIR   (config.json + model.safetensors; quantized\n"
      "                   tensors dequantized to f32, f16/bf16/f32 kept; llama Q/K rows back in\n"
      "                   Hugging Face order; tokenizer.bin for a 'llama' vocabulary)\n"
      "  hf      -> gguf: --model DIR --out FILE.gguf [--type keep|f32|f16|bf16]   (norms f32;\n"
      "                   tokenizer metadata from the directory's tokenizer.bin, if any)\n"
      "--from is inferred when omitted: a .gguf file, a directory (hf), else a llama2.c checkpoint.");
  c->add_option("--from", o->from, "source format (default: inferred from --model)")
      ->check(CLI::IsMember({"llama2c", "gguf", "hf"}));
  c->add_option("--model", o->model, "llama2.c checkpoint, GGUF file or Hugging Face directory")->required();
  c->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin (llama2c; optional for hf -> gguf)");
  c->add_option("--out", o->out, "output directory (llama2c, gguf) or .gguf file (hf)")->required();
  c->add_option("--type", o->type, "hf -> gguf: type of the matrices (keep: as stored)")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}));
  c->callback([o] {
    std::string from = o->from;
    if (from.empty())
      from = ends_with_gguf(o->model) ? "gguf" : std::filesystem::is_directory(o->model) ? "hf" : "llama2c";
    if (from == "llama2c") {
      if (o->tokenizer.empty()) throw CLI::ValidationError("--tokenizer", "is required to convert a llama2.c checkpoint");
      convert_llama2c_to_hf(o->model, o->tokenizer, o->out);
    } else if (from == "gguf") {
      if (!o->tokenizer.empty()) throw CLI::ValidationError("--tokenizer", "is not used for gguf -> hf");
      convert_gguf_to_hf(o->model, o->out);
    } else {
      const bool keep = o->type == "keep";
      convert_hf_to_gguf(o->model, o->out, keep, keep ? GgmlType::F16 : parse_gguf_write_type(o->type), o->tokenizer);
    }
    log::logf(log::Level::Info, "wrote %s", o->out.c_str());
  });
}

void add_synth(CLI::App& app) {
  struct Opts { std::string shape, dtype = "bf16", format, type = "q8_0", out; uint64_t seed = 0; };
  auto o = std::make_shared<Opts>();
  std::string names;
  for (auto& n : synth_shape_names()) names += (names.empty() ? "" : ", ") + n;
  auto* c = app.add_subcommand(
      "synth",
      "Write a model with random weights of a realistic shape: a Hugging Face directory (--dtype),\n"
      "or a GGUF file (--format gguf, or an --out ending in .gguf) whose matrices are of --type\n"
      "(K-quants need rows that are a multiple of 256, e.g. the llama-1b shapes; on other rows they\n"
      "fall back as llama.cpp does: q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0).");
  c->add_option("--shape", o->shape, "one of: " + names)->required();
  c->add_option("--format", o->format, "hf or gguf (default: gguf when --out ends in .gguf)")
      ->check(CLI::IsMember({"hf", "gguf"}));
  c->add_option("--dtype", o->dtype, "hf: f32, bf16 or f16")->check(CLI::IsMember({"f32", "bf16", "f16"}));
  c->add_option("--type", o->type, "gguf: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"}));
  c->add_option("--seed", o->seed);
  c->add_option("--out", o->out, "output directory (hf) or file (gguf)")->required();
  c->callback([o] {
    const std::string format = !o->format.empty() ? o->format : ends_with_gguf(o->out) ? "gguf" : "hf";
    if (format == "gguf")
      write_synthetic_gguf(synth_shape(o->shape), parse_gguf_write_type(o->type), o->seed, o->out);
    else
      write_synthetic_model(synth_shape(o->shape), parse_dtype(o->dtype), o->seed, o->out);
    log::logf(log::Level::Info, "wrote %s", o->out.c_str());
  });
}

}  // namespace fleet::cmd
