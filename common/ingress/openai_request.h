#pragma once
// An OpenAI API request body (POST /v1/completions, POST /v1/chat/completions) translated into
// a prompts-topic request. Never throws on bad input: the outcome holds either the request or
// the OpenAI-shaped error to answer with.
//
// Supported: model, prompt (one string) | messages, max_tokens / max_completion_tokens,
// temperature, top_p, seed, stop, frequency_penalty, presence_penalty, logprobs /
// top_logprobs, n (1 to 8), stream, stream_options.include_usage, response_format, logit_bias,
// and for chat tools, tool_choice, parallel_tool_calls with tool turns in messages (role "tool",
// assistant tool_calls). Accepted and ignored (they do not change the output): user, metadata,
// store, service_tier, and no-op values of the fields below. Rejected with a 400 naming the
// field: anything else that would change the output (functions, echo, suffix, best_of > 1, ...)
// and unknown fields.
#include <optional>
#include <string>
#include <string_view>

#include "contracts/prompt_request.h"
#include "ingress/api_error.h"

namespace fleet::ingress {

enum class Endpoint { Completions, ChatCompletions };

struct ApiRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::string model;
  PromptRequest prompt;  // prompt or messages and the parameters; id left empty (the caller sets it)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a final chunk with usage
  int n = 1;                   // choices: n requests on the prompts topic (seeds seed, seed + 1, ...)
};

// The most choices one request may ask for (n).
inline constexpr int kMaxChoices = 8;

struct ApiParseOutcome {
  std::optional<ApiRequest> request;
  std::optional<ApiError> error;
  bool ok() const { return request.has_value(); }
};

// Default max_tokens when the body has none: OpenAI's 16 for completions; for chat, up to the
// context (the prompts topic's maximum, 8192: the last stage ends at the model's context).
inline constexpr int kCompletionsDefaultMaxTokens = 16;

// served_model: the deployment's model name (any other "model" is a 404).
ApiParseOutcome parse_api_request(Endpoint endpoint, std::string_view body, const std::string& served_model,
                                  const PromptLimits& limits = {});

}  // namespace fleet::ingress
