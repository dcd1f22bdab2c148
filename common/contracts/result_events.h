#pragma once
// The results topic (<prefix>.results, record key = id) and the dead-letter topic.
//
//   {"id", "type": "token", "index", "token_id", "text"}                  one per generated token
//     [+ "logprob", "token", "top_logprobs": [{"token_id", "token", "logprob"}, ...]  when the
//      request asked for logprobs]
//   {"id", "type": "done", "text", "finish_reason", "usage": {"prompt_tokens", "completion_tokens"},
//    "timings": {"queue_ms", "time_to_first_token_ms", "total_ms", "tokens_per_s", ...}}
//    [+ "content", "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}]
//     and finish_reason "tool_calls" when the output was calls to the request's tools]
//   {"id", "type": "error", "error": {"code", "message"}}
//
// Schema: proto/schemas/result.schema.json. Text that is not valid UTF-8 is written with
// U+FFFD replacements (the builders never throw on odd text).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "contracts/prompt_request.h"

namespace fleet {

enum class FinishReason {
  Stop,    // end-of-sequence token or a stop string
  Length,     // max_tokens reached, or the model's context is full
  Cancelled,  // a cancel record on the control topic ended it
  ToolCalls,  // stopped, and the output is calls to the request's tools
};
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "tool_calls"
FinishReason finish_reason_from_name(const std::string& name);  // unknown names: Length

struct TokenUsage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
};

struct RequestTimings {
  double queue_ms = 0;                // accepted -> first prefill step started
  double time_to_first_token_ms = 0;  // accepted -> first token sampled
  double total_ms = 0;                // accepted -> done
  double tokens_per_s = 0;            // completion tokens / decode time
  nlohmann::json extra = nlohmann::json::object();  // more named timings, merged into "timings"
};

// One candidate token and its log-probability (natural log; -9999 stands for -infinity).
struct TokenLogprob {
  int token_id = 0;
  std::string token;  // the token's own text (its bytes; U+FFFD where they are not UTF-8)
  double logprob = 0;
  bool operator==(const TokenLogprob&) const = default;
};
// The sampled token's log-probability and the most likely alternatives, most likely first.
struct TokenLogprobs {
  TokenLogprob sampled;
  std::vector<TokenLogprob> top;
  bool operator==(const TokenLogprobs&) const = default;
};

// One call of a tool the request defined, read out of the output (tools/tool_calls.h).
struct ToolCall {
  std::string id;         // "call_..."
  std::string name;       // the function's name
  std::string arguments;  // JSON text of an object, as OpenAI's API carries it
  bool operator==(const ToolCall&) const = default;
};
// The output read as calls: the text before them and the calls (done events of such requests).
struct ToolCallsOutput {
  std::string content;
  std::vector<ToolCall> calls;
};
// [{"id", "type": "function", "function": {"name", "arguments"}}, ...]
nlohmann::json tool_calls_json(const std::vector<ToolCall>& calls);

std::string token_event(const std::string& id, int index, int token_id, const std::string& text,
                        const TokenLogprobs* logprobs = nullptr);
std::string done_event(const std::string& id, const std::string& text, FinishReason finish_reason,
                       const TokenUsage& usage, const RequestTimings& timings,
                       const ToolCallsOutput* tool_calls = nullptr);
std::string error_event(const std::string& id, const ContractError& error);

// A results record read back (fleet submit / fleet tail / tests).
struct ResultEvent {
  enum class Type { Token, Done, Error };
  Type type = Type::Token;
  std::string id;
  int index = 0;     // token
  int token_id = 0;  // token
  std::string text;  // token, done
  std::optional<TokenLogprobs> logprobs;  // token, when the request asked for them
  std::string finish_reason;  // done
  TokenUsage usage;           // done
  nlohmann::json timings;     // done
  std::optional<ToolCallsOutput> tool_calls;  // done, when the output was calls
  ContractError error;        // error
};
// Parses and validates a results record; on failure returns nullopt and sets *error.
std::optional<ResultEvent> parse_result_event(std::string_view json, std::string* error = nullptr);

// Where a record that could not be processed came from.
struct DeadLetterSource {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::optional<std::string> key;
  std::string value;
};
// At most this many bytes of the original value are kept in a dead letter (whole records of up
// to the broker's 1 MB would not fit once escaped or base64-encoded).
inline constexpr size_t kDeadLetterValueBytes = 64 * 1024;
// {"source": {"topic", "partition", "offset", "key"}, "value": "..." (when valid UTF-8) or
//  "value_base64": "...", "error": {"code", "message"}, "service": "...", "time_ms": N}
std::string dead_letter_record(const DeadLetterSource& source, const ContractError& error, const std::string& service,
                               int64_t time_ms);

// Helpers shared with the services.
bool is_valid_utf8(std::string_view s);
std::string base64_encode(std::string_view bytes);

}  // namespace fleet
