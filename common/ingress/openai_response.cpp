#include "ingress/openai_response.h"

namespace fleet::ingress {

namespace {
using json = nlohmann::json;

// Where a call may begin in the output (tools in use): text from there on is held back from the
// streamed content until the done event says whether it was a call.
constexpr std::string_view kCallOpeners[] = {"[", "<|python_tag|>", "{"};  // at the start only ("[": [TOOL_CALLS] or its array)
constexpr std::string_view kHermesOpen = "<tool_call>";                               // anywhere

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// How much of `text` (the output so far) can go out as content now.
size_t content_releasable(const std::string& text) {
  size_t start = 0;
  while (start < text.size() && is_space(text[start])) ++start;
  const std::string_view rest = std::string_view(text).substr(start);
  for (std::string_view o : kCallOpeners)
    if (rest.substr(0, o.size()) == o.substr(0, std::min(o.size(), rest.size()))) return 0;
  size_t limit = text.find(kHermesOpen);
  if (limit == std::string::npos) {
    limit = text.size();
    for (size_t n = std::min(text.size(), kHermesOpen.size() - 1); n > 0; --n)
      if (std::string_view(text).substr(text.size() - n) == kHermesOpen.substr(0, n)) {
        limit = text.size() - n;
        break;
      }
  }
  while (limit > 0 && is_space(text[limit - 1])) --limit;  // blanks before a call are not content
  return limit;
}

json utf8_bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}
}  // namespace

ResponseAssembler::ResponseAssembler(const ApiRequest& request, std::string id, int64_t created, int choice_index,
                                     bool ends_stream)
    : endpoint_(request.endpoint),
      id_(std::move(id)),
      model_(request.model),
      created_(created),
      logprobs_(request.prompt.logprobs),
      include_usage_(request.include_usage),
      tools_(request.endpoint == Endpoint::ChatCompletions && request.prompt.tools_enabled()),
      choice_index_(choice_index),
      ends_stream_(ends_stream) {}

bool ResponseAssembler::take(const ResultEvent& ev) {
  if (finished()) return false;
  switch (ev.type) {
    case ResultEvent::Type::Token:
      if (ev.index < next_index_) return false;  // a duplicate
      next_index_ = ev.index + 1;
      tokens_.push_back(ev);
      return true;
    case ResultEvent::Type::Done:
      done_ = ev;
      return true;
    case ResultEvent::Type::Error:
      error_ = ev.error;
      return true;
  }
  return false;
}

std::string ResponseAssembler::finish_reason() const {
  if (!done_) return "stop";
  if (done_->finish_reason == "tool_calls" && done_->tool_calls) return "tool_calls";
  return done_->finish_reason == "length" ? "length" : "stop";  // "cancelled": the client went away
}

json usage_json(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json ResponseAssembler::usage_json() const {
  return ingress::usage_json(done_ ? done_->usage.prompt_tokens : 0, done_ ? done_->usage.completion_tokens : 0);
}

json ResponseAssembler::token_logprobs_json(const std::vector<ResultEvent>& tokens) const {
  if (endpoint_ == Endpoint::ChatCompletions) {
    json content = json::array();
    for (const ResultEvent& t : tokens) {
      if (!t.logprobs) continue;  // a token event republished after a takeover carries none
      json top = json::array();
      for (const TokenLogprob& a : t.logprobs->top)
        top.push_back({{"token", a.token}, {"logprob", a.logprob}, {"bytes", utf8_bytes(a.token)}});
      content.push_back({{"token", t.logprobs->sampled.token},
                         {"logprob", t.logprobs->sampled.logprob},
                         {"bytes", utf8_bytes(t.logprobs->sampled.token)},
                         {"top_logprobs", top}});
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  json toks = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = 0;
  for (const ResultEvent& t : tokens) {
    if (!t.logprobs) continue;
    toks.push_back(t.logprobs->sampled.token);
    lps.push_back(t.logprobs->sampled.logprob);
    json top = json::object();
    for (const TokenLogprob& a : t.logprobs->top) top[a.token] = a.logprob;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += t.logprobs->sampled.token.size();
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json ResponseAssembler::chunk(json choice) const {
  const bool chat = endpoint_ == Endpoint::ChatCompletions;
  json c = {{"id", id_},
            {"object", chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created_},
            {"model", model_},
            {"choices", choice.is_null() ? json::array() : json::array({choice})}};
  if (chat) c["system_fingerprint"] = nullptr;
  if (include_usage_) c["usage"] = nullptr;
  return c;
}

std::string ResponseAssembler::sse(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

std::string ResponseAssembler::take_stream_text() {
  std::string out;
  const bool chat = endpoint_ == Endpoint::ChatCompletions;
  auto content_choice = [&](const std::string& text, const std::vector<ResultEvent>& toks) {
    json choice = {{"index", choice_index_}, {"logprobs", logprobs_ && !toks.empty() ? token_logprobs_json(toks) : json()},
                   {"finish_reason", nullptr}};
    if (chat) {
      choice["delta"] = {{"content", text}};
      if (!role_sent_) choice["delta"]["role"] = "assistant";
      role_sent_ = true;
    } else {
      choice["text"] = text;
    }
    text_ += text;
    return choice;
  };
  for (; streamed_tokens_ < tokens_.size(); ++streamed_tokens_) {
    const ResultEvent& t = tokens_[streamed_tokens_];
    if (tools_) {  // content only up to where a call may begin
      held_ += t.text;
      held_tokens_.push_back(t);
      const size_t n = content_releasable(text_ + held_);
      if (n <= text_.size()) continue;
      const std::string out_text = held_.substr(0, n - text_.size());
      held_.erase(0, out_text.size());
      out += sse(chunk(content_choice(out_text, held_tokens_)));
      held_tokens_.clear();
      continue;
    }
    if (t.text.empty() && !logprobs_) continue;  // held back (part of a character or a stop string)
    out += sse(chunk(content_choice(t.text, {t})));
  }
  if (terminal_sent_) return out;
  if (error_) {
    if (ends_stream_) out += stream_error(*error_);
    terminal_sent_ = true;
  } else if (done_) {
    // What the last stage held back until the end is only in the done event's text; the content
    // of an answer of calls is the text before them.
    const std::string& content = done_->tool_calls ? done_->tool_calls->content : done_->text;
    if (content.size() > text_.size() && content.compare(0, text_.size(), text_) == 0)
      out += sse(chunk(content_choice(content.substr(text_.size()), held_tokens_)));
    else if (chat && !role_sent_)
      out += sse(chunk(content_choice("", held_tokens_)));
    held_tokens_.clear();
    if (done_->tool_calls) {
      // Each call in two deltas, as OpenAI streams them: id, type and name with empty
      // arguments, then the arguments.
      const std::vector<ToolCall>& calls = done_->tool_calls->calls;
      for (size_t i = 0; i < calls.size(); ++i) {
        json head = {{"index", i}, {"id", calls[i].id}, {"type", "function"},
                     {"function", {{"name", calls[i].name}, {"arguments", ""}}}};
        json args = {{"index", i}, {"function", {{"arguments", calls[i].arguments}}}};
        for (const json& d : {head, args})
          out += sse(chunk({{"index", choice_index_}, {"delta", {{"tool_calls", json::array({d})}}},
                            {"logprobs", nullptr}, {"finish_reason", nullptr}}));
      }
    }
    json fin = {{"index", choice_index_}, {"logprobs", nullptr}, {"finish_reason", finish_reason()}};
    if (chat) fin["delta"] = json::object();
    else fin["text"] = "";
    out += sse(chunk(fin));
    if (ends_stream_) out += stream_end(usage_json());
    terminal_sent_ = true;
  }
  return out;
}

std::string ResponseAssembler::stream_end(const json& usage) const {
  std::string out;
  if (include_usage_) {
    json u = chunk(json());
    u["usage"] = usage;
    out += sse(u);
  }
  return out + "data: [DONE]\n\n";
}

std::string ResponseAssembler::stream_error(const ContractError& error) const {
  return sse(json{{"error", from_pipeline_error(error).to_json()["error"]}}) + "data: [DONE]\n\n";
}

json ResponseAssembler::completion_body() const {
  const bool chat = endpoint_ == Endpoint::ChatCompletions;
  const std::string text = done_ ? done_->text : text_;
  json choice = {{"index", choice_index_}, {"finish_reason", finish_reason()},
                 {"logprobs", logprobs_ ? token_logprobs_json(tokens_) : json()}};
  if (chat && done_ && done_->tool_calls) {
    const std::string& content = done_->tool_calls->content;
    choice["message"] = {{"role", "assistant"}, {"content", content.empty() ? json() : json(content)},
                         {"tool_calls", tool_calls_json(done_->tool_calls->calls)}, {"refusal", nullptr}};
  } else if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
  }
  else choice["text"] = text;
  json body = {{"id", id_},
               {"object", chat ? "chat.completion" : "text_completion"},
               {"created", created_},
               {"model", model_},
               {"choices", json::array({choice})},
               {"usage", usage_json()}};
  if (chat) body["system_fingerprint"] = nullptr;
  return body;
}

}  // namespace fleet::ingress
