#include "grammar/tool_call_grammar.h"

#include <regex>
#include <set>
#include <stdexcept>
#include <vector>

#include "grammar/response_format.h"

namespace fleet {
namespace {

using json = nlohmann::json;

[[noreturn]] void refuse(const std::string& why) { throw std::invalid_argument(why); }

bool valid_name(const std::string& name) {
  static const std::regex re("[A-Za-z0-9_-]{1,64}");
  return std::regex_match(name, re);
}

// "$ref" would point into the call's schema, not the tool's own parameters: refused.
void refuse_refs(const json& schema, const std::string& where) {
  std::vector<const json*> todo = {&schema};
  while (!todo.empty()) {
    const json* v = todo.back();
    todo.pop_back();
    if (v->is_object() && v->contains("$ref") && (*v)["$ref"].is_string())
      refuse(where + ": \"$ref\" is not supported in tool parameters (write the schema out)");
    if (v->is_structured())
      for (const auto& child : *v) todo.push_back(&child);
  }
}

// The named function of a {"type": "function", "function": {"name"}} tool_choice; "" otherwise.
std::string chosen_name(const json& tool_choice) {
  if (!tool_choice.is_object()) return "";
  return tool_choice.at("function").at("name").get<std::string>();
}

}  // namespace

json tool_parameters(const json& tool) {
  const json& fn = tool.at("function");
  auto it = fn.find("parameters");
  if (it == fn.end() || it->is_null()) return {{"type", "object"}};
  return *it;
}

const char* tool_call_format_name(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::kHermes: return "hermes";
    case ToolCallFormat::kLlama3Json: return "llama3_json";
    case ToolCallFormat::kMistral: return "mistral";
  }
  return "hermes";
}

void check_tools(const json& tools, const json& tool_choice) {
  std::set<std::string> names;
  if (!tools.is_null()) {
    if (!tools.is_array()) refuse("tools must be an array of {\"type\": \"function\", \"function\": {...}}");
    if (tools.size() > kMaxTools) refuse("tools holds more than " + std::to_string(kMaxTools) + " tools");
    for (size_t i = 0; i < tools.size(); ++i) {
      const std::string where = "tools[" + std::to_string(i) + "]";
      const json& t = tools[i];
      if (!t.is_object()) refuse(where + " must be an object {\"type\": \"function\", \"function\": {...}}");
      for (const auto& [k, v] : t.items())
        if (k != "type" && k != "function") refuse(where + ": unknown field '" + k + "'");
      if (t.value("type", json()) != "function") refuse(where + ".type must be \"function\"");
      if (!t.contains("function") || !t["function"].is_object()) refuse(where + ".function must be an object");
      const json& fn = t["function"];
      for (const auto& [k, v] : fn.items()) {
        if (k == "name" || k == "parameters") continue;
        if (k == "description" && v.is_string()) continue;
        if (k == "strict" && (v.is_boolean() || v.is_null())) continue;
        refuse(where + ".function." + k + (k == "description" || k == "strict" ? " has the wrong type" : ": unknown field"));
      }
      if (!fn.contains("name") || !fn["name"].is_string() || !valid_name(fn["name"].get<std::string>()))
        refuse(where + ".function.name must be 1 to 64 characters of [A-Za-z0-9_-]");
      if (!names.insert(fn["name"].get<std::string>()).second)
        refuse(where + ".function.name \"" + fn["name"].get<std::string>() + "\" is defined twice");
      const json params = tool_parameters(t);
      if (!params.is_object() || params.value("type", json("object")) != "object")
        refuse(where + ".function.parameters must be a JSON Schema of type \"object\"");
      refuse_refs(params, where + ".function.parameters");
      grammar_for_json_schema(params, where + ".function.parameters");  // compiles (checks every keyword)
    }
  }
  if (tool_choice.is_null()) return;
  if (tool_choice.is_string()) {
    const std::string c = tool_choice.get<std::string>();
    if (c != "none" && c != "auto" && c != "required")
      refuse("tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}, got \"" + c + "\"");
    if (c != "none" && names.empty()) refuse("tool_choice \"" + c + "\" needs tools");
    return;
  }
  if (!tool_choice.is_object() || tool_choice.value("type", json()) != "function" || !tool_choice.contains("function") ||
      !tool_choice["function"].is_object() || !tool_choice["function"].contains("name") ||
      !tool_choice["function"]["name"].is_string())
    refuse("tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}");
  for (const auto& [k, v] : tool_choice.items())
    if (k != "type" && k != "function") refuse("tool_choice: unknown field '" + k + "'");
  for (const auto& [k, v] : tool_choice["function"].items())
    if (k != "name") refuse("tool_choice.function: unknown field '" + k + "'");
  const std::string name = tool_choice["function"]["name"].get<std::string>();
  if (!names.count(name)) refuse("tool_choice names the function \"" + name + "\", which is not among the tools");
}

bool tool_call_forced(const json& tools, const json& tool_choice) {
  if (!tools.is_array() || tools.empty()) return false;
  return tool_choice == "required" || tool_choice.is_object();
}

std::string grammar_for_tool_choice(const json& tools, const json& tool_choice, bool parallel, ToolCallFormat format) {
  check_tools(tools, tool_choice);
  if (!tool_call_forced(tools, tool_choice)) return "";
  const std::string named = chosen_name(tool_choice);
  const char* args_key = format == ToolCallFormat::kLlama3Json ? "parameters" : "arguments";
  json calls = json::array();
  for (const json& t : tools) {
    const std::string name = t["function"]["name"].get<std::string>();
    if (!named.empty() && name != named) continue;
    calls.push_back({{"type", "object"},
                     {"properties", {{"name", {{"const", name}}}, {args_key, tool_parameters(t)}}},
                     {"required", {"name", args_key}},
                     {"additionalProperties", false}});
  }
  const json call_schema = calls.size() == 1 ? calls[0] : json{{"anyOf", calls}};
  std::string gbnf = grammar_for_json_schema(call_schema, "tools");
  // The converter's start rule becomes the call; fleet's root wraps it in the format's markup (the
  // converter never refers to its root itself: "$ref" is refused in tool parameters).
  const std::string call_rule = "fleet-tool-call";
  if (gbnf.find(call_rule + " ::=") != std::string::npos) refuse("tools: a parameter name collides with " + call_rule);
  const size_t root = gbnf.rfind("root ::=", 0) == 0 ? 0 : gbnf.find("\nroot ::=");
  if (root == std::string::npos) refuse("tools: the JSON schema gives a grammar without a root rule");
  gbnf.replace(root == 0 ? 0 : root + 1, 4, call_rule);
  const int more = parallel && named.empty() ? kMaxParallelToolCalls - 1 : 0;
  const std::string repeat = "{0," + std::to_string(more) + "}";
  switch (format) {
    case ToolCallFormat::kHermes:
      gbnf += "fleet-tool-block ::= \"<tool_call>\\n\" " + call_rule + " \"\\n</tool_call>\"\n";
      gbnf += more ? "root ::= fleet-tool-block (\"\\n\" fleet-tool-block)" + repeat + "\n" : "root ::= fleet-tool-block\n";
      break;
    case ToolCallFormat::kLlama3Json:
      gbnf += "root ::= " + call_rule + "\n";  // one call per answer in this format
      break;
    case ToolCallFormat::kMistral:
      gbnf += "root ::= \"[TOOL_CALLS][\" " + call_rule + (more ? " (\",\" " + call_rule + ")" + repeat : std::string()) + " \"]\"\n";
      break;
  }
  return gbnf;
}

}  // namespace fleet
