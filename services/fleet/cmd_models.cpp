// fleet convert / fleet synth: write Hugging Face model directories.
#include <cstdio>

#include "commands.h"
#include "model/model_writer.h"

namespace fleet::cmd {

void add_convert(CLI::App& app) {
  struct Opts { std::string from = "llama2c", model, tokenizer, out; };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand("convert", "Convert a llama2.c checkpoint to a Hugging Face directory");
  c->add_option("--from", o->from, "source format")->check(CLI::IsMember({"llama2c"}));
  c->add_option("--model", o->model, "llama2.c checkpoint")->required();
  c->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin")->required();
  c->add_option("--out", o->out, "output directory")->required();
  c->callback([o] {
    convert_llama2c_to_hf(o->model, o->tokenizer, o->out);
    std::fprintf(stderr, "wrote %s\n", o->out.c_str());
  });
}

void add_synth(CLI::App& app) {
  struct Opts { std::string shape, dtype = "bf16", out; uint64_t seed = 0; };
  auto o = std::make_shared<Opts>();
  std::string names;
  for (auto& n : synth_shape_names()) names += (names.empty() ? "" : ", ") + n;
  auto* c = app.add_subcommand("synth", "Write a model with random weights of a realistic shape");
  c->add_option("--shape", o->shape, "one of: " + names)->required();
  c->add_option("--dtype", o->dtype)->check(CLI::IsMember({"f32", "bf16", "f16"}));
  c->add_option("--seed", o->seed);
  c->add_option("--out", o->out, "output directory")->required();
  c->callback([o] {
    write_synthetic_model(synth_shape(o->shape), parse_dtype(o->dtype), o->seed, o->out);
    std::fprintf(stderr, "wrote %s\n", o->out.c_str());
  });
}

}  // namespace fleet::cmd
