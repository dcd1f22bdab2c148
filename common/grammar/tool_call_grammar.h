#pragma once
// Function calling (OpenAI's `tools`, `tool_choice`, `parallel_tool_calls`): the checks of the
// request fields, and the grammar that forces a call when `tool_choice` is "required" or names a
// function. Like response_format, the fields travel on the prompts topic and are stored with the
// request in Redis, so a last-stage worker that takes the request over rebuilds the same grammar.
//
//   tools:       [{"type": "function", "function": {"name", "description"?, "parameters"?, "strict"?}}]
//   tool_choice: "none" | "auto" (the default with tools) | "required"
//                | {"type": "function", "function": {"name": "..."}}
//
// A call is written in the model's own format (ToolCallFormat, chosen from its chat template;
// tools/tool_calls.h), in compact JSON with "name" first:
//   kHermes      <tool_call>\n{"name":"f","arguments":{...}}\n</tool_call>   (several: one per line)
//   kLlama3Json  {"name":"f","parameters":{...}}                             (one call)
//   kMistral     [TOOL_CALLS][{"name":"f","arguments":{...}}, ...]
#include <string>

#include <nlohmann/json.hpp>

namespace fleet {

enum class ToolCallFormat { kHermes, kLlama3Json, kMistral };
const char* tool_call_format_name(ToolCallFormat f);  // "hermes", "llama3_json", "mistral"

// The most tools one request may define, and the most calls one forced answer may hold.
inline constexpr size_t kMaxTools = 128;
inline constexpr int kMaxParallelToolCalls = 8;

// Checks `tools` (null or an array) and `tool_choice` (null or one of the forms above): names of
// 1-64 characters of [A-Za-z0-9_-], unique; parameters a JSON Schema the grammar can enforce (no
// "$ref"); a named tool_choice among the tools; tool_choice only with tools. Throws
// std::invalid_argument naming the field.
void check_tools(const nlohmann::json& tools, const nlohmann::json& tool_choice);

// A tool's parameters schema: as given, or any object when absent.
nlohmann::json tool_parameters(const nlohmann::json& tool);

// Whether the request forces a call: tools given and tool_choice "required" or a named function.
bool tool_call_forced(const nlohmann::json& tools, const nlohmann::json& tool_choice);

// The GBNF grammar (root rule "root") whose sentences are exactly the calls tool_choice allows,
// in `format`: one call to the named function; for "required", one call to any tool, or (when
// `parallel`, in the formats that hold several) up to kMaxParallelToolCalls. "" when the choice
// forces nothing ("auto", "none", no tools). Throws std::invalid_argument as check_tools.
std::string grammar_for_tool_choice(const nlohmann::json& tools, const nlohmann::json& tool_choice, bool parallel,
                                    ToolCallFormat format);

}  // namespace fleet
