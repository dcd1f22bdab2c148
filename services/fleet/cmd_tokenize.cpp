// fleet tokenize: text lines on stdin -> one JSON array of token ids per line on stdout;
// with --decode, JSON arrays of ids -> text.
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "commands.h"
#include "tokenizer/tokenizer.h"

namespace fleet::cmd {

void add_tokenize(CLI::App& app) {
  struct Opts {
    std::string tokenizer;
    bool decode = false, add_bos = false, allow_special = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "tokenize", "Tokenize stdin, one text per line, printing a JSON array of ids per line (--decode: the reverse)");
  sub->add_option("--tokenizer", opts->tokenizer, "tokenizer.json, llama2.c tokenizer.bin, a GGUF model file, or a model directory")
      ->required();
  sub->add_flag("--decode", opts->decode, "read JSON arrays of ids, print text");
  sub->add_flag("--add-bos", opts->add_bos, "prepend the BOS id (when the vocabulary has one)");
  sub->add_flag("--allow-special", opts->allow_special, "match special tokens such as <|im_end|> in the text");
  sub->callback([opts] {
    auto tok = Tokenizer::load(opts->tokenizer);
    std::ios::sync_with_stdio(false);
    std::string line;
    size_t line_no = 0;
    while (std::getline(std::cin, line)) {
      ++line_no;
      if (opts->decode) {
        std::vector<int32_t> ids;
        try {
          ids = nlohmann::json::parse(line).get<std::vector<int32_t>>();
        } catch (const nlohmann::json::exception& e) {
          throw std::runtime_error("stdin line " + std::to_string(line_no) + ": expected a JSON array of ids: " +
                                   e.what());
        }
        std::cout << tok->decode(ids) << '\n';
      } else {
        const auto ids = tok->encode(line, {.add_bos = opts->add_bos, .allow_special = opts->allow_special});
        std::string out = "[";
        for (size_t i = 0; i < ids.size(); ++i) {
          if (i > 0) out += ',';
          out += std::to_string(ids[i]);
        }
        out += "]\n";
        std::cout << out;
      }
    }
    std::cout.flush();
  });
}

}  // namespace fleet::cmd
