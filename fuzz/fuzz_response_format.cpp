// grammar_for_response_format (common/grammar/response_format.h) and, for an object with
// "tools", grammar_for_tool_choice (grammar/tool_call_grammar.h; the format and
// parallel_tool_calls picked by the input's length) on any input: a clear std::invalid_argument
// or a grammar, never a crash; then the grammar engine walks text with the compiled grammar, and
// the tool-call parser (tools/tool_calls.h) reads the text. Input: the JSON, optionally followed
// by a 0 byte and text the matcher is fed one byte at a time (a rejected byte ends the walk, as a
// masked token would).
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "grammar/response_format.h"
#include "grammar/tool_call_grammar.h"
#include "llama-grammar.h"
#include "tools/tool_calls.h"

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
  const bool tools = rf.is_object() && rf.contains("tools");
  if (tools) {
    try {
      fleet::check_tools(rf["tools"], nullptr);  // the parser reads tools the contract accepted
      fleet::parse_tool_calls(text, rf["tools"], "fuzz");
    } catch (const std::invalid_argument&) {
    }
  }
  std::string gbnf;
  try {
    gbnf = tools ? fleet::grammar_for_tool_choice(rf["tools"], rf.value("tool_choice", nlohmann::json("required")),
                                                  (size & 4) != 0, static_cast<fleet::ToolCallFormat>(size % 3))
                 : fleet::grammar_for_response_format(rf);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  if (gbnf.empty()) return 0;
  std::unique_ptr<llama_grammar, void (*)(llama_grammar*)> g(
      llama_grammar_init_impl(nullptr, gbnf.c_str(), "root", false, nullptr, 0, nullptr, 0), llama_grammar_free_impl);
  if (!g) std::abort();  // both checked that it parses
  for (size_t i = 0; i < text.size() && i < 256; ++i) {
    try {
      llama_grammar_accept_token(*g, 1, std::string(1, text[i]));
    } catch (const std::exception&) {
      break;
    }
  }
  return 0;
}
