// grammar_for_response_format (common/grammar/response_format.h) on any input: a clear
// std::invalid_argument or a grammar, never a crash; then the grammar engine walks text with
// the compiled grammar. Input: the response_format JSON, optionally followed by a 0 byte and
// text the matcher is fed one byte at a time (a rejected byte ends the walk, as a masked token would).
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "grammar/response_format.h"
#include "llama-grammar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view text;
  if (const size_t zero = in.find('\0'); zero != std::string_view::npos) {
    text = in.substr(zero + 1);
    in = in.substr(0, zero);
  }
  nlohmann::json rf;
  try {
    rf = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  std::string gbnf;
  try {
    gbnf = fleet::grammar_for_response_format(rf);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  if (gbnf.empty()) return 0;
  std::unique_ptr<llama_grammar, void (*)(llama_grammar*)> g(
      llama_grammar_init_impl(nullptr, gbnf.c_str(), "root", false, nullptr, 0, nullptr, 0), llama_grammar_free_impl);
  if (!g) std::abort();  // grammar_for_response_format checked that it parses
  for (size_t i = 0; i < text.size() && i < 256; ++i) {
    try {
      llama_grammar_accept_token(*g, 1, std::string(1, text[i]));
    } catch (const std::exception&) {
      break;
    }
  }
  return 0;
}
