// Builders and a reader for results events; dead-letter records.
#include "contracts/result_events.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace fleet {

namespace {

using json = nlohmann::json;

// Serializes without ever throwing on invalid UTF-8 (replaced by U+FFFD).
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool is_int(const json& o, const char* f) { return o.contains(f) && o[f].is_number_integer(); }
// A non-negative integer that fits an int.
bool is_count(const json& o, const char* f) {
  return is_int(o, f) && o[f].get<int64_t>() >= 0 && o[f].get<int64_t>() <= INT32_MAX &&
         !(o[f].is_number_unsigned() && o[f].get<uint64_t>() > INT32_MAX);
}
bool is_str(const json& o, const char* f) { return o.contains(f) && o[f].is_string(); }

std::optional<ResultEvent> reject(std::string* error, const std::string& why) {
  if (error) *error = why;
  return std::nullopt;
}

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::ToolCalls: return "tool_calls";
    case FinishReason::Length: break;
  }
  return "length";
}

FinishReason finish_reason_from_name(const std::string& name) {
  if (name == "stop") return FinishReason::Stop;
  if (name == "cancelled") return FinishReason::Cancelled;
  if (name == "tool_calls") return FinishReason::ToolCalls;
  return FinishReason::Length;
}

json tool_calls_json(const std::vector<ToolCall>& calls) {
  json out = json::array();
  for (const ToolCall& c : calls)
    out.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  return out;
}

std::string token_event(const std::string& id, int index, int token_id, const std::string& text,
                        const TokenLogprobs* logprobs) {
  json j = {{"id", id}, {"type", "token"}, {"index", index}, {"token_id", token_id}, {"text", text}};
  if (logprobs) {
    auto lp = [](double x) { return std::isfinite(x) ? std::max(x, -9999.0) : -9999.0; };
    j["logprob"] = lp(logprobs->sampled.logprob);
    j["token"] = logprobs->sampled.token;
    json top = json::array();
    for (const TokenLogprob& t : logprobs->top)
      top.push_back({{"token_id", t.token_id}, {"token", t.token}, {"logprob", lp(t.logprob)}});
    j["top_logprobs"] = std::move(top);
  }
  return dump(j);
}

std::string done_event(const std::string& id, const std::string& text, FinishReason finish_reason,
                       const TokenUsage& usage, const RequestTimings& timings, const ToolCallsOutput* tool_calls) {
  json t = {{"queue_ms", timings.queue_ms},
            {"time_to_first_token_ms", timings.time_to_first_token_ms},
            {"total_ms", timings.total_ms},
            {"tokens_per_s", timings.tokens_per_s}};
  if (timings.extra.is_object())
    for (const auto& [k, v] : timings.extra.items()) t[k] = v;
  json j = {{"id", id},
            {"type", "done"},
            {"text", text},
            {"finish_reason", finish_reason_name(finish_reason)},
            {"usage", {{"prompt_tokens", usage.prompt_tokens}, {"completion_tokens", usage.completion_tokens}}},
            {"timings", t}};
  if (tool_calls && !tool_calls->calls.empty()) {
    j["content"] = tool_calls->content;
    j["tool_calls"] = tool_calls_json(tool_calls->calls);
  }
  return dump(j);
}

std::string error_event(const std::string& id, const ContractError& error) {
  return dump({{"id", id}, {"type", "error"}, {"error", {{"code", error.code}, {"message", error.message}}}});
}

std::optional<ResultEvent> parse_result_event(std::string_view text, std::string* error) {
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return reject(error, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) return reject(error, "a result event must be a JSON object");
  if (!is_str(j, "id") || j["id"].get_ref<const std::string&>().empty()) return reject(error, "id must be a non-empty string");
  if (!is_str(j, "type")) return reject(error, "type must be a string");
  ResultEvent ev;
  ev.id = j["id"].get<std::string>();
  const std::string type = j["type"].get<std::string>();
  if (type == "token") {
    ev.type = ResultEvent::Type::Token;
    if (!is_count(j, "index")) return reject(error, "token: index must be an integer >= 0");
    if (!is_count(j, "token_id"))
      return reject(error, "token: token_id must be an integer >= 0");
    if (!is_str(j, "text")) return reject(error, "token: text must be a string");
    ev.index = j["index"].get<int>();
    ev.token_id = j["token_id"].get<int>();
    ev.text = j["text"].get<std::string>();
    if (j.contains("logprob")) {
      if (!j["logprob"].is_number() || !is_str(j, "token") || !j.contains("top_logprobs") ||
          !j["top_logprobs"].is_array())
        return reject(error, "token: logprob must be a number with token (a string) and top_logprobs (an array)");
      TokenLogprobs lp;
      lp.sampled = {ev.token_id, j["token"].get<std::string>(), j["logprob"].get<double>()};
      for (const json& t : j["top_logprobs"]) {
        if (!t.is_object() || !is_count(t, "token_id") || !is_str(t, "token") || !t.contains("logprob") ||
            !t["logprob"].is_number())
          return reject(error, "token: top_logprobs entries must be {token_id, token, logprob}");
        lp.top.push_back({t["token_id"].get<int>(), t["token"].get<std::string>(), t["logprob"].get<double>()});
      }
      ev.logprobs = std::move(lp);
    }
  } else if (type == "done") {
    ev.type = ResultEvent::Type::Done;
    if (!is_str(j, "text")) return reject(error, "done: text must be a string");
    if (!is_str(j, "finish_reason") || (j["finish_reason"] != "stop" && j["finish_reason"] != "length" &&
                                        j["finish_reason"] != "cancelled" && j["finish_reason"] != "tool_calls"))
      return reject(error, "done: finish_reason must be \"stop\", \"length\", \"cancelled\" or \"tool_calls\"");
    if (!j.contains("usage") || !j["usage"].is_object() || !is_count(j["usage"], "prompt_tokens") ||
        !is_count(j["usage"], "completion_tokens"))
      return reject(error, "done: usage must be {prompt_tokens, completion_tokens} integers");
    if (!j.contains("timings") || !j["timings"].is_object()) return reject(error, "done: timings must be an object");
    ev.text = j["text"].get<std::string>();
    ev.finish_reason = j["finish_reason"].get<std::string>();
    ev.usage = {j["usage"]["prompt_tokens"].get<int>(), j["usage"]["completion_tokens"].get<int>()};
    ev.timings = j["timings"];
    if (j.contains("tool_calls")) {
      if (!j["tool_calls"].is_array() || !is_str(j, "content"))
        return reject(error, "done: tool_calls must be an array, with content a string");
      ToolCallsOutput out{j["content"].get<std::string>(), {}};
      for (const json& c : j["tool_calls"]) {
        if (!c.is_object() || !is_str(c, "id") || !c.contains("function") || !c["function"].is_object() ||
            !is_str(c["function"], "name") || !is_str(c["function"], "arguments"))
          return reject(error, "done: tool_calls entries must be {id, type, function: {name, arguments}}");
        out.calls.push_back({c["id"].get<std::string>(), c["function"]["name"].get<std::string>(),
                             c["function"]["arguments"].get<std::string>()});
      }
      ev.tool_calls = std::move(out);
    }
  } else if (type == "error") {
    ev.type = ResultEvent::Type::Error;
    if (!j.contains("error") || !j["error"].is_object() || !is_str(j["error"], "code") || !is_str(j["error"], "message"))
      return reject(error, "error: error must be {code, message} strings");
    ev.error = {j["error"]["code"].get<std::string>(), j["error"]["message"].get<std::string>()};
  } else {
    return reject(error, "type must be \"token\", \"done\" or \"error\", got \"" + type + "\"");
  }
  return ev;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;  // overlong, range, surrogate
    i += len;
  }
  return true;
}

std::string base64_encode(std::string_view bytes) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string dead_letter_record(const DeadLetterSource& source, const ContractError& error, const std::string& service,
                               int64_t time_ms) {
  json src = {{"topic", source.topic}, {"partition", source.partition}, {"offset", source.offset}};
  if (!source.key) src["key"] = nullptr;
  else if (is_valid_utf8(*source.key)) src["key"] = *source.key;
  else src["key_base64"] = base64_encode(*source.key);
  json j = {{"source", src},
            {"error", {{"code", error.code}, {"message", error.message}}},
            {"service", service},
            {"time_ms", time_ms}};
  // The value is kept whole up to kDeadLetterValueBytes; a longer one is cut there (at a
  // character boundary when it is text), so that the dead letter itself always fits under the
  // broker's message limit.
  std::string value = source.value;
  if (value.size() > kDeadLetterValueBytes) {
    size_t cut = kDeadLetterValueBytes;
    while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
    value.resize(cut);
    j["value_truncated"] = true;
    j["value_bytes"] = source.value.size();
  }
  if (is_valid_utf8(value)) j["value"] = value;
  else j["value_base64"] = base64_encode(value);
  return dump(j);
}

}  // namespace fleet
