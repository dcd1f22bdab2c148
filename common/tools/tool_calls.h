#pragma once
// Function calling around the model: the tools go into the prompt (stage 0), the calls come back
// out of the generated text (the last stage), in the model's own format.
//
// Prompt: a chat template that renders `tools` (Qwen, Hermes, Llama 3.x, Mistral, ...) gets them
// as transformers' apply_chat_template(messages, tools=...) passes them. A template that ignores
// them (SmolLM2's, the built-in families) gets fleet's block instead, in the Hermes format as
// Qwen2.5's template writes it: the tool signatures in <tools></tools> at the end of the system
// message, earlier calls as <tool_call> lines in the assistant's turn, tool results as
// <tool_response> in a user turn.
//
// Key order: the prompts topic's JSON does not keep it, so tools reach the template as
// {"type", "function": {"name", "description", "parameters", "strict"}} with the parameters'
// keys sorted; a call's arguments keep the order of the JSON text they came in.
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat.h"
#include "contracts/result_events.h"
#include "grammar/tool_call_grammar.h"

namespace fleet {

// Whether the template writes `tools` into the prompt: a user turn renders with one tool, and
// differently (or not at all) without it (at a fixed date). Two renders: callers keep the answer.
bool template_renders_tools(const ChatTemplate& t);
// The format the model writes calls in: the template's own when it renders tools (it must be one
// fleet reads: <tool_call> (Hermes), [TOOL_CALLS] (Mistral), Llama 3's ipython JSON), else
// kHermes (fleet's block). Throws std::runtime_error for a template that renders tools in
// another format (set model.chat_template to one that does not).
ToolCallFormat tool_call_format(const ChatTemplate& t, bool renders_tools);

// The conversation as the template should see it: OpenAI message fields (tool_calls with
// "arguments" as JSON text, tool_call_id, name) turned into what templates read (arguments as
// objects; the null content of a turn of calls as "", as llama.cpp's server gives it), and
// fleet's Hermes block added when the template ignores tools. `tools`: the request's
// tool definitions (null or empty: none).
struct ChatInput {
  std::vector<ChatMessage> messages;
  nlohmann::ordered_json tools;  // for ChatRenderOptions::tools (null when the block carries them)
};
// renders_tools: template_renders_tools of the template the input is for.
ChatInput chat_input_with_tools(std::vector<ChatMessage> messages, const nlohmann::json& tools, bool renders_tools);

// One assistant message's OpenAI fields (content, tool_calls, tool_call_id, name) as ChatMessage.
ChatMessage chat_message(const std::string& role, const std::string& content, const nlohmann::json& openai_fields);

// The calls in a model's output, in any of the formats above, when the whole output is calls
// (optionally after some text, in the Hermes format) to the request's `tools` whose arguments are
// JSON objects valid under the tool's parameters (as the grammar enforces them:
// json_matches_schema); otherwise no calls and the whole text is content. Call ids are "call_" +
// 16 hex digits derived from `id_seed` (the request id) and the call's place, so a replayed
// request gets the same ones. `cut`: the output ended at max_tokens; the complete Hermes calls
// before the cut are read (the unfinished last one is dropped).
struct ParsedToolCalls {
  std::string content;  // the text before the first call (the whole text when there is none)
  std::vector<ToolCall> calls;
};
ParsedToolCalls parse_tool_calls(std::string_view text, const nlohmann::json& tools, const std::string& id_seed,
                                 bool cut = false);

// The tool names of a request's `tools` (empty for null).
std::vector<std::string> tool_names(const nlohmann::json& tools);

}  // namespace fleet
