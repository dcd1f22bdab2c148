#pragma once
// The prompts topic (<prefix>.prompts): one JSON object per request, record key = id.
//
//   {"id": "...", "prompt": "..." | "messages": [{"role": "user", "content": "..."}, ...],
//    "max_tokens": N, "temperature": T, "top_p": P, "top_k": K, "seed": S, "stop": [...] | "...",
//    "timeout_s": T, "frequency_penalty": F, "presence_penalty": P, "logprobs": B, "top_logprobs": N,
//    "response_format": {"type": "json_object" | "json_schema", "json_schema": {...}},
//    "logit_bias": {"<token id>": B, ...},
//    "tools": [{"type": "function", "function": {"name", "description", "parameters"}}, ...],
//    "tool_choice": "none" | "auto" | "required" | {"type": "function", "function": {"name"}},
//    "parallel_tool_calls": B}
//   messages may also hold OpenAI's tool turns: {"role": "assistant", "content": null,
//   "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}]} and
//   {"role": "tool", "tool_call_id", "content"}.
//
// Everything but prompt/messages is optional; null reads as absent. Unknown fields are
// rejected (a misspelt "max_token" must not silently fall back to the default). The schema is
// proto/schemas/prompt.schema.json. Parsing never throws on bad input.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "contracts/request_params.h"
#include "util/json_depth.h"

namespace fleet {

// "an integer", "a number", "a string", "a boolean", "an array", "an object" or "null": how
// errors about bad JSON input name what they got.
std::string json_type_name(const nlohmann::json& v);

// Records and request bodies nesting deeper than this are refused before anything copies them
// (json_deeper_than, util/json_depth.h).
inline constexpr size_t kMaxJsonDepth = 64;

// Codes of the "error" result events and dead-letter records.
namespace error_code {
inline constexpr const char* kInvalidJson = "invalid_json";        // the record is not JSON
inline constexpr const char* kInvalidRequest = "invalid_request";  // JSON, but breaks the contract
inline constexpr const char* kPromptTooLong = "prompt_too_long";   // more tokens than the model's context
inline constexpr const char* kKvCacheMissing = "kv_cache_missing"; // a decode step found no cache
inline constexpr const char* kDuplicateId = "duplicate_id";    // the id belongs to a finished request
inline constexpr const char* kTimeout = "timeout";  // not finished within its timeout_s (default timeouts.request_s)
inline constexpr const char* kInternal = "internal";               // anything else
}  // namespace error_code

// The most logit_bias entries a request may carry.
inline constexpr size_t kMaxLogitBias = 1024;
// The most alternatives a token event may carry (top_logprobs), as OpenAI's API.
inline constexpr int kMaxTopLogprobs = 20;

struct ContractError {
  std::string code;
  std::string message;
};

struct PromptMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
  // OpenAI's further fields, when present: "tool_calls" (assistant; "content": null with them
  // when the turn had no text), "tool_call_id" (tool), "name".
  nlohmann::json fields = nlohmann::json::object();
};

struct PromptRequest : RequestParams {
  std::string id;
  bool id_generated = false;  // no id in the body nor in the record key
  std::optional<std::string> prompt;   // exactly one of prompt and messages is set
  std::vector<PromptMessage> messages;

  bool is_chat() const { return !prompt.has_value(); }
  // The canonical JSON of this request (all fields explicit); parses back to the same request.
  nlohmann::json to_json() const;
};

struct PromptLimits {
  int max_tokens = 8192;
  size_t max_record_bytes = size_t{4} << 20;  // the whole JSON value
  size_t max_prompt_bytes = size_t{1} << 20;  // prompt, or all message contents together
  size_t max_messages = 1024;
  size_t max_stop_strings = 4;
  size_t max_stop_bytes = 256;
  double max_timeout_s = 86400;
};

struct PromptParseResult {
  std::optional<PromptRequest> request;  // set when valid
  std::optional<ContractError> error;    // set when invalid
  // The request id: the body's id, else the record key, else a generated one; set for both
  // outcomes so that an error event can be keyed (the body's id is kept even when invalid,
  // if it is a string of at most 256 bytes, so the client can correlate).
  std::string id;
  bool ok() const { return request.has_value(); }
};

// Parses one prompts record. `key` is the Kafka record key (absent or empty: none); the body's
// id wins over the key when both are present.
PromptParseResult parse_prompt_record(std::string_view value, std::optional<std::string_view> key = std::nullopt,
                                      const PromptLimits& limits = {});

// 1 to 128 characters of [A-Za-z0-9._:-] (usable in Kafka keys and Redis key names).
bool is_valid_request_id(std::string_view id);
// A random 128-bit id as 32 lowercase hex characters.
std::string generate_request_id();

}  // namespace fleet
