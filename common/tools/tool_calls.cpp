#include "tools/tool_calls.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "contracts/prompt_request.h"
#include "grammar/response_format.h"

namespace fleet {
namespace {

using json = nlohmann::json;
using ordered = nlohmann::ordered_json;

constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>", kMistral = "[TOOL_CALLS]",
                           kPythonTag = "<|python_tag|>";

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  return s;
}
std::string_view trim(std::string_view s) {
  s = trim_left(s);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Canonical key order for the template (see the header).
ordered canonical_tool(const json& tool) {
  const json& fn = tool.at("function");
  ordered f = ordered::object();
  f["name"] = fn.at("name");
  for (const char* k : {"description", "parameters", "strict"})
    if (fn.contains(k) && !fn[k].is_null()) f[k] = ordered::parse(fn[k].dump());
  return ordered{{"type", "function"}, {"function", f}};
}

// "arguments" as an object (OpenAI sends JSON text; templates read a mapping), keys in text order.
ordered arguments_object(const json& arguments) {
  if (arguments.is_string()) {
    try {
      ordered a = ordered::parse(arguments.get<std::string>());
      if (a.is_object()) return a;
    } catch (const ordered::exception&) {
    }
    return ordered::parse(arguments.dump());  // not JSON text of an object: passed as it is
  }
  return ordered::parse(arguments.dump());
}

// fleet's block for templates that ignore tools: Qwen2.5's wording and layout.
std::string tools_block(const json& tools) {
  std::string s =
      "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
      "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
  for (const json& t : tools) s += "\n" + canonical_tool(t).dump(-1, ' ', false, json::error_handler_t::replace);
  s += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
       "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
       "</tool_call>";
  return s;
}

std::string hermes_call_text(const ordered& call) {
  const ordered& fn = call.contains("function") ? call["function"] : call;
  ordered c = ordered::object();
  c["name"] = fn.value("name", "");
  c["arguments"] = fn.contains("arguments") ? fn["arguments"] : ordered::object();
  return std::string(kOpen) + "\n" + c.dump() + "\n" + std::string(kClose);
}

std::vector<ChatMessage> with_fleet_block(std::vector<ChatMessage> in, const json& tools) {
  std::vector<ChatMessage> out;
  const bool has_tools = tools.is_array() && !tools.empty();
  if (has_tools) {
    if (!in.empty() && in.front().role == "system") {
      in.front().content += "\n\n" + tools_block(tools);
    } else {
      out.push_back({"system", tools_block(tools)});
    }
  }
  for (ChatMessage& m : in) {
    if (m.role == "assistant" && m.extra.contains("tool_calls") && m.extra["tool_calls"].is_array()) {
      std::string text = m.content;
      for (const ordered& c : m.extra["tool_calls"]) text += (text.empty() ? "" : "\n") + hermes_call_text(c);
      out.push_back({"assistant", text});
    } else if (m.role == "tool") {
      const std::string response = "<tool_response>\n" + m.content + "\n</tool_response>";
      if (!out.empty() && out.back().role == "user" && out.back().extra.value("fleet_tool_responses", false)) {
        out.back().content += "\n" + response;  // consecutive results share one turn, as Qwen2.5 writes them
      } else {
        ChatMessage u{"user", response};
        u.extra["fleet_tool_responses"] = true;
        out.push_back(std::move(u));
      }
    } else {
      out.push_back(std::move(m));
    }
  }
  for (ChatMessage& m : out) m.extra.erase("fleet_tool_responses");
  return out;
}

std::optional<ordered> parse_json(std::string_view s) {
  try {
    ordered j = ordered::parse(s.begin(), s.end());
    if (json_deeper_than(j, kMaxJsonDepth)) return std::nullopt;  // dump() would recurse that deep
    return j;
  } catch (const ordered::exception&) {
    return std::nullopt;
  }
}

bool read_call_text(std::string_view text, const std::vector<std::string>& names, ToolCall& out) {
  std::optional<ordered> j = parse_json(trim(text));
  if (!j || !j->is_object() || !j->contains("name") || !(*j)["name"].is_string()) return false;
  const std::string name = (*j)["name"].get<std::string>();
  if (std::find(names.begin(), names.end(), name) == names.end()) return false;
  const ordered* args = j->contains("arguments") ? &(*j)["arguments"] : j->contains("parameters") ? &(*j)["parameters"] : nullptr;
  if (!args || !args->is_object()) return false;
  out.name = name;
  out.arguments = args->dump(-1, ' ', false, json::error_handler_t::replace);
  return true;
}

std::vector<ToolCall> hermes_calls(std::string_view rest, const std::vector<std::string>& names) {
  std::vector<ToolCall> calls;
  while (!rest.empty()) {
    if (rest.substr(0, kOpen.size()) != kOpen) return {};
    rest.remove_prefix(kOpen.size());
    // The call ends at the first closing tag after which the JSON is whole (an argument string
    // may hold the tag itself); without one, the call runs to the end.
    ToolCall c;
    size_t close = rest.find(kClose);
    while (close != std::string_view::npos && !read_call_text(rest.substr(0, close), names, c))
      close = rest.find(kClose, close + 1);
    if (close == std::string_view::npos && !read_call_text(rest, names, c)) return {};
    calls.push_back(std::move(c));
    rest = close == std::string_view::npos ? std::string_view() : trim_left(rest.substr(close + kClose.size()));
  }
  return calls;
}

std::vector<ToolCall> mistral_calls(std::string_view rest, const std::vector<std::string>& names) {
  std::optional<ordered> j = parse_json(trim(rest));
  if (!j || !j->is_array() || j->empty()) return {};
  std::vector<ToolCall> calls;
  for (const ordered& e : *j) {
    ToolCall c;
    if (!read_call_text(e.dump(), names, c)) return {};
    calls.push_back(std::move(c));
  }
  return calls;
}

std::string call_id(const std::string& seed, size_t index) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  for (char ch : seed + "/" + std::to_string(index)) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ULL;
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return "call_" + std::string(buf);
}

}  // namespace

bool template_renders_tools(const ChatTemplate& t) {
  const std::vector<ChatMessage> probe = {{"user", "Hi"}};
  ChatRenderOptions with, without;
  with.now = without.now = std::tm{};  // a fixed date: the answer must not depend on the clock
  with.tools = ordered::array({canonical_tool(
      {{"type", "function"},
       {"function", {{"name", "fleet_probe"}, {"description", "probe"}, {"parameters", {{"type", "object"}}}}}})});
  std::string with_tools;
  try {
    with_tools = t.render(probe, with);
  } catch (const ChatTemplateError&) {
    return false;  // a template that cannot render the probe is not trusted with tools
  }
  try {
    return with_tools != t.render(probe, without);
  } catch (const ChatTemplateError&) {
    return true;  // it needs tools
  }
}

ToolCallFormat tool_call_format(const ChatTemplate& t, bool renders_tools) {
  if (!renders_tools) return ToolCallFormat::kHermes;  // fleet's block
  const std::string& src = t.source();
  if (src.find(kMistral) != std::string::npos) return ToolCallFormat::kMistral;
  if (src.find(kOpen) != std::string::npos) return ToolCallFormat::kHermes;
  if (src.find(kPythonTag) != std::string::npos || src.find("ipython") != std::string::npos)
    return ToolCallFormat::kLlama3Json;
  throw std::runtime_error(
      "the chat template renders tools but has the model call them in a format fleet does not read (it reads "
      "Hermes <tool_call>, Llama 3 JSON and Mistral [TOOL_CALLS]); set model.chat_template to a template that uses "
      "one of them, or to one without tools (fleet then adds its own Hermes block)");
}

ChatMessage chat_message(const std::string& role, const std::string& content, const json& fields) {
  ChatMessage m{role, content};
  if (!fields.is_object()) return m;
  if (fields.contains("tool_calls") && fields["tool_calls"].is_array()) {
    ordered calls = ordered::array();
    for (const json& c : fields["tool_calls"]) {
      ordered call = ordered::object();
      if (c.contains("id")) call["id"] = ordered::parse(c["id"].dump());
      call["type"] = "function";
      const json& fn = c.at("function");
      call["function"] = {{"name", ordered::parse(fn.at("name").dump())},
                          {"arguments", arguments_object(fn.value("arguments", json::object()))}};
      calls.push_back(std::move(call));
    }
    m.extra["tool_calls"] = std::move(calls);  // a null content stays "": templates test `'x' in content`
  }
  for (const char* k : {"tool_call_id", "name"})
    if (fields.contains(k) && fields[k].is_string()) m.extra[k] = fields[k].get<std::string>();
  return m;
}

ChatInput chat_input_with_tools(std::vector<ChatMessage> messages, const json& tools, bool renders_tools) {
  ChatInput in;
  const bool has_tools = tools.is_array() && !tools.empty();
  bool history_has_tools = false;
  for (const ChatMessage& m : messages) history_has_tools |= m.role == "tool" || m.extra.contains("tool_calls");
  if (!has_tools && !history_has_tools) {
    in.messages = std::move(messages);
    return in;
  }
  if (renders_tools) {
    in.messages = std::move(messages);
    if (has_tools) {
      in.tools = ordered::array();
      for (const json& tool : tools) in.tools.push_back(canonical_tool(tool));
    }
    return in;
  }
  in.messages = with_fleet_block(std::move(messages), tools);
  return in;
}

namespace {

// Every call's arguments valid under its tool's parameters.
bool arguments_valid(const std::vector<ToolCall>& calls, const json& tools) {
  for (const ToolCall& c : calls) {
    const auto tool = std::find_if(tools.begin(), tools.end(), [&](const json& t) { return t["function"]["name"] == c.name; });
    try {
      if (tool == tools.end() || !json_matches_schema(tool_parameters(*tool), ordered::parse(c.arguments))) return false;
    } catch (const std::exception&) {
      return false;  // a schema that does not compile (check_tools refuses those before) or odd JSON
    }
  }
  return true;
}

}  // namespace

ParsedToolCalls parse_tool_calls(std::string_view text, const json& tools, const std::string& id_seed, bool cut) {
  ParsedToolCalls out;
  out.content = std::string(text);
  const std::vector<std::string> names = tool_names(tools);
  if (names.empty()) return out;
  const std::string_view body = trim_left(text);
  std::vector<ToolCall> calls;
  std::string content;
  // The whole output as Mistral's array (its [TOOL_CALLS] marker is a control token, which may
  // decode to nothing) or as one Llama 3 JSON call; else Hermes blocks, after some text.
  if (body.substr(0, kMistral.size()) == kMistral) {
    calls = mistral_calls(body.substr(kMistral.size()), names);
  } else if (body.substr(0, 1) == "[") {
    calls = mistral_calls(body, names);
  } else {
    ToolCall c;
    if (read_call_text(body.substr(0, kPythonTag.size()) == kPythonTag ? body.substr(kPythonTag.size()) : body, names, c))
      calls.push_back(std::move(c));
  }
  const size_t open = text.find(kOpen);
  if (calls.empty() && open != std::string_view::npos) {
    std::string_view blocks = text.substr(open);
    if (cut) {  // up to the end of the last complete call
      const size_t last = blocks.rfind(kClose);
      blocks = last == std::string_view::npos ? std::string_view() : blocks.substr(0, last + kClose.size());
    }
    calls = hermes_calls(trim(blocks), names);
    std::string_view before = text.substr(0, open);  // the text before the call, without its trailing blanks
    while (!before.empty() && std::isspace(static_cast<unsigned char>(before.back()))) before.remove_suffix(1);
    content = std::string(before);
  }
  if (calls.empty() || !arguments_valid(calls, tools)) return out;
  for (size_t i = 0; i < calls.size(); ++i) calls[i].id = call_id(id_seed, i);
  out.content = std::move(content);
  out.calls = std::move(calls);
  return out;
}

std::vector<std::string> tool_names(const json& tools) {
  std::vector<std::string> out;
  if (!tools.is_array()) return out;
  for (const json& t : tools)
    if (t.is_object() && t.contains("function") && t["function"].is_object() && t["function"].contains("name") &&
        t["function"]["name"].is_string())
      out.push_back(t["function"]["name"].get<std::string>());
  return out;
}

}  // namespace fleet
