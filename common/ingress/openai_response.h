#pragma once
// Result events of one request -> OpenAI response bodies: the whole completion (non-streamed)
// or server-sent-event chunks ("data: {...}\n\n", ending with "data: [DONE]\n\n"), for
// /v1/completions ("text_completion") and /v1/chat/completions ("chat.completion[.chunk]").
//
// Token events are deduplicated by index (the results topic is at-least-once); text the last
// stage held back until the end (an unfinished stop-string prefix) is only in the done event
// and goes out as the last content chunk, so the streamed text always equals the done text.
// With tools in use, content is streamed only up to where a call may begin (a "<tool_call>", or
// "{", "[", "<|python_tag|>" at the start); when the done event carries tool_calls,
// the content is the text before them and each call follows as two delta.tool_calls chunks
// (id, type, name; then the arguments), with finish_reason "tool_calls".
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "contracts/result_events.h"
#include "ingress/openai_request.h"

namespace fleet::ingress {

// OpenAI's usage object.
nlohmann::json usage_json(int prompt_tokens, int completion_tokens);

class ResponseAssembler {
 public:
  // id: the OpenAI response id ("cmpl-..." / "chatcmpl-..."); created: seconds since the epoch.
  // choice_index: this request's place among the response's choices (n > 1); ends_stream: it
  // writes the usage chunk and "data: [DONE]" itself (false when it is one of several choices:
  // Choices does, once all have ended).
  ResponseAssembler(const ApiRequest& request, std::string id, int64_t created, int choice_index = 0,
                    bool ends_stream = true);

  // Takes one result event of the request; false for a duplicate token event (ignored).
  bool take(const ResultEvent& ev);
  bool finished() const { return done_.has_value() || error_.has_value(); }
  const std::optional<ContractError>& error() const { return error_; }
  const std::optional<ResultEvent>& done() const { return done_; }  // the done event, once taken
  size_t tokens_taken() const { return tokens_.size(); }              // token events taken (no duplicates)

  // Streaming: the SSE text for the events taken since the last call (may be empty); after the
  // terminal event it ends with "data: [DONE]\n\n".
  std::string take_stream_text();
  // Non-streamed: the response body once finished() without error().
  nlohmann::json completion_body() const;
  // The end of a stream: a usage chunk when stream_options.include_usage asked for one, then
  // "data: [DONE]"; an error chunk and "data: [DONE]".
  std::string stream_end(const nlohmann::json& usage) const;
  std::string stream_error(const ContractError& error) const;

  const std::string& id() const { return id_; }
  const std::string& text() const { return text_; }  // streamed so far (the done text at the end)

 private:
  nlohmann::json chunk(nlohmann::json choice) const;
  nlohmann::json usage_json() const;
  nlohmann::json token_logprobs_json(const std::vector<ResultEvent>& tokens) const;
  static std::string sse(const nlohmann::json& j);
  std::string finish_reason() const;

  Endpoint endpoint_;
  std::string id_, model_;
  int64_t created_;
  bool logprobs_, include_usage_;
  bool tools_;  // a chat request with tools in use: content streamed only up to where a call may begin
  int choice_index_;
  bool ends_stream_;
  int next_index_ = 0;
  std::vector<ResultEvent> tokens_;          // every token event, in index order
  size_t streamed_tokens_ = 0;               // tokens_ already turned into chunks
  bool role_sent_ = false, terminal_sent_ = false;
  std::string text_;                         // text of the chunks sent / the completion
  std::string held_;                         // tools: text not yet streamed (a call may begin in it)
  std::vector<ResultEvent> held_tokens_;     // tools: the tokens of that text (their logprobs go with it)
  std::optional<ResultEvent> done_;
  std::optional<ContractError> error_;
};

}  // namespace fleet::ingress
