// fleet-ingress's pieces without a broker: OpenAI request translation and its errors, response
// assembly (whole and streamed), the ingress settings, its metrics (read back with
// prometheus_client's parser); the penalties and logprobs of sampling.
#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ingress/fleet_view.h"
#include "ingress/ingress_metrics.h"
#include "ingress/ingress_settings.h"
#include "ingress/openai_request.h"
#include "ingress/openai_response.h"
#include "ingress/ingress_harness.h"
#include "metrics/prometheus_parse.h"
#include "sampling/logit_adjust.h"

namespace fleet::ingress {
namespace {

using json = nlohmann::json;

ApiParseOutcome parse(Endpoint e, const json& body) { return parse_api_request(e, body.dump(), "m"); }
json chat(json extra = json::object()) {
  json b = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  for (auto& [k, v] : extra.items()) b[k] = v;
  return b;
}

TEST(IngressRequest, CompletionDefaultsAndFields) {
  auto r = parse(Endpoint::Completions, {{"model", "m"}, {"prompt", "Once"}});
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.request->prompt.max_tokens, 16);  // OpenAI's default for completions
  EXPECT_EQ(*r.request->prompt.prompt, "Once");
  EXPECT_FALSE(r.request->stream);
  r = parse(Endpoint::Completions, {{"model", "m"}, {"prompt", json::array({"Once"})}, {"max_tokens", 7},
                                    {"temperature", 0}, {"top_p", 0.5}, {"seed", -3}, {"stop", "\n"},
                                    {"frequency_penalty", 1.5}, {"presence_penalty", -1}, {"logprobs", 3},
                                    {"stream", true}, {"stream_options", {{"include_usage", true}}},
                                    {"user", "u"}, {"n", 1}, {"logit_bias", json::object()}, {"echo", false}});
  ASSERT_TRUE(r.ok()) << r.error->message;
  const PromptRequest& p = r.request->prompt;
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_EQ(p.temperature, 0);
  EXPECT_EQ(p.top_p, 0.5);
  EXPECT_EQ(*p.seed, static_cast<uint64_t>(int64_t{-3}));
  EXPECT_EQ(p.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(p.frequency_penalty, 1.5);
  EXPECT_EQ(p.presence_penalty, -1);
  EXPECT_TRUE(p.logprobs);
  EXPECT_EQ(p.top_logprobs, 3);
  EXPECT_TRUE(r.request->stream);
  EXPECT_TRUE(r.request->include_usage);
}

TEST(IngressRequest, ChatDefaultsAndMessages) {
  auto r = parse(Endpoint::ChatCompletions,
                 chat({{"messages", {{{"role", "developer"}, {"content", "be brief"}},
                                     {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}},
                                                                     {{"type", "text"}, {"text", "b"}}}}}}},
                       {"max_completion_tokens", 9}, {"logprobs", true}, {"top_logprobs", 2},
                       {"metadata", {{"k", "v"}}}, {"store", false}}));
  ASSERT_TRUE(r.ok()) << r.error->message;
  const PromptRequest& p = r.request->prompt;
  ASSERT_EQ(p.messages.size(), 2u);
  EXPECT_EQ(p.messages[0].role, "system");
  EXPECT_EQ(p.messages[1].content, "ab");
  EXPECT_EQ(p.max_tokens, 9);
  EXPECT_EQ(p.top_logprobs, 2);
  EXPECT_EQ(parse(Endpoint::ChatCompletions, chat()).request->prompt.max_tokens, 8192);  // up to the context
  EXPECT_EQ(parse(Endpoint::ChatCompletions, chat({{"max_tokens", 100000}})).request->prompt.max_tokens, 8192);
  // logit_bias and response_format travel to the prompts record.
  auto b = parse(Endpoint::ChatCompletions, chat({{"logit_bias", {{"7", -100}, {"12", 2.5}}},
                                                 {"response_format", {{"type", "json_object"}}}}));
  ASSERT_TRUE(b.ok()) << b.error->message;
  EXPECT_EQ(b.request->prompt.logit_bias, (std::map<int32_t, double>{{7, -100.0}, {12, 2.5}}));
  EXPECT_EQ(b.request->prompt.response_format, json({{"type", "json_object"}}));
  EXPECT_EQ(RequestParams::from_json(b.request->prompt.to_json()).logit_bias, b.request->prompt.logit_bias);
}

TEST(IngressRequest, ErrorsNameTheField) {
  struct Case {
    Endpoint e;
    std::string body;
    int status;
    std::string param;
  };
  const std::vector<Case> cases = {
      {Endpoint::Completions, "{", 400, ""},
      {Endpoint::Completions, "3", 400, ""},
      {Endpoint::Completions, R"({"prompt":"x"})", 400, "model"},
      {Endpoint::Completions, R"({"model":"other","prompt":"x"})", 404, "model"},
      {Endpoint::Completions, R"({"model":"m"})", 400, "prompt"},
      {Endpoint::Completions, R"({"model":"m","prompt":[1,2]})", 400, "prompt"},
      {Endpoint::Completions, R"({"model":"m","prompt":["a","b"]})", 400, "prompt"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","max_tokens":0})", 400, "max_tokens"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","max_tokens":"5"})", 400, "max_tokens"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","temperature":3})", 400, "temperature"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","top_p":0})", 400, "top_p"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","frequency_penalty":2.5})", 400, "frequency_penalty"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","logprobs":6})", 400, "logprobs"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","echo":true})", 400, "echo"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","suffix":"y"})", 400, "suffix"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","best_of":2})", 400, "best_of"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","stop":["a",1]})", 400, "stop"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","stop":["a","b","c","d","e"]})", 400, "stop"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","stream":"yes"})", 400, "stream"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","max_completion_tokens":3})", 400, "max_completion_tokens"},
      {Endpoint::ChatCompletions, R"({"model":"m"})", 400, "messages"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[]})", 400, "messages"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":"hi"})", 400, "messages"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"function","content":"x"}]})", 400, "messages[0].role"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x","audio":"a"}]})", 400,
       "messages[0].audio"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required"})", 400,
       "tool_choice"},
      {Endpoint::ChatCompletions,
       R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}})",
       400, "tool_choice"},
      {Endpoint::ChatCompletions,
       R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"not":{}}}}}}]})",
       400, "tools"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"functions":[{"name":"f"}]})", 400,
       "functions"},
      {Endpoint::ChatCompletions,
       R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"},"x":1}})",
       400, "tool_choice"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","tools":[{"type":"function","function":{"name":"f"}}]})", 400, "tools"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})", 400,
       "messages[0].content[0].type"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":9})", 400, "n"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", 400, "n"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":-101}})", 400,
       "logit_bias"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":[1]})", 400,
       "logit_bias"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{}]})", 400, "tools"},
      {Endpoint::ChatCompletions,
       R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"object","minProperties":1}}}})",
       400, "response_format"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":"json"})",
       400, "response_format"},
      {Endpoint::Completions, R"({"model":"m","prompt":"x","response_format":{"type":"yaml"}})", 400, "response_format"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})", 400,
       "top_logprobs"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":21,"logprobs":true})",
       400, "top_logprobs"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"prompt":"y"})", 400, "prompt"},
      {Endpoint::ChatCompletions, R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"x":1}})",
       400, "stream_options.x"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    auto r = parse_api_request(c.e, c.body, "m");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error->status, c.status) << r.error->message;
    const json j = r.error->to_json();
    ASSERT_TRUE(j["error"].contains("param") && j["error"].contains("code") && j["error"].contains("type"));
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
    if (!c.param.empty()) {
      EXPECT_EQ(j["error"]["param"], c.param) << r.error->message;
    }
  }
  // Deep nesting is refused before anything copies the body (copies and dumps recurse).
  const std::string deep = R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":)" + std::string(100000, '[') +
                           std::string(100000, ']') + "}";
  auto d = parse_api_request(Endpoint::ChatCompletions, deep, "m");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error->message.find("deeper than 64"), std::string::npos) << d.error->message;
  // On /v1/completions the no-op values of the tool fields are accepted, as before tools existed.
  EXPECT_TRUE(parse(Endpoint::Completions, {{"model", "m"}, {"prompt", "x"}, {"tools", json::array()}, {"tool_choice", "none"},
                                            {"parallel_tool_calls", true}}).ok());
  // The contract's own limits hold too (a stop string longer than 256 bytes).
  auto r = parse(Endpoint::Completions, {{"model", "m"}, {"prompt", "x"}, {"stop", std::string(300, 'a')}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->status, 400);
}

TokenLogprobs logprobs(int id, const std::string& text, double lp, int alt_id, const std::string& alt, double alt_lp) {
  TokenLogprobs out;
  out.sampled.token_id = id;
  out.sampled.token = text;
  out.sampled.logprob = lp;
  TokenLogprob a;
  a.token_id = alt_id;
  a.token = alt;
  a.logprob = alt_lp;
  out.top.push_back(a);
  return out;
}

ResultEvent token(int index, std::string text, std::optional<TokenLogprobs> lp = std::nullopt) {
  ResultEvent e;
  e.type = ResultEvent::Type::Token;
  e.id = "r";
  e.index = index;
  e.token_id = index + 10;
  e.text = std::move(text);
  e.logprobs = std::move(lp);
  return e;
}
ResultEvent done(std::string text, std::string reason = "stop") {
  ResultEvent e;
  e.type = ResultEvent::Type::Done;
  e.id = "r";
  e.text = std::move(text);
  e.finish_reason = std::move(reason);
  e.usage = {5, 3};
  return e;
}

TEST(IngressResponse, StreamedChatWithHeldBackTextAndUsage) {
  ApiRequest req = *parse(Endpoint::ChatCompletions, chat({{"stream", true}, {"stream_options", {{"include_usage", true}}}})).request;
  ResponseAssembler a(req, "chatcmpl-r", 1700000000);
  EXPECT_TRUE(a.take(token(0, "Hello")));
  EXPECT_FALSE(a.take(token(0, "Hello")));  // a duplicate
  EXPECT_TRUE(a.take(token(1, "")));        // held back (might start a stop string)
  std::string s = a.take_stream_text();
  EXPECT_TRUE(a.take(token(2, " world")));
  EXPECT_TRUE(a.take(done("Hello world!", "length")));
  s += a.take_stream_text();
  const auto data = fleet::test::sse_data(s);
  ASSERT_GE(data.size(), 5u) << s;
  EXPECT_EQ(data.back(), "[DONE]");
  EXPECT_EQ(fleet::test::sse_text(data), "Hello world!");
  const json first = json::parse(data[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["usage"].is_null());
  const json fin = json::parse(data[data.size() - 3]);
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "length");
  const json usage = json::parse(data[data.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 8);
  EXPECT_EQ(a.take_stream_text(), "");  // nothing after [DONE]
}

// Tools in use: content streams only up to where a call may begin; a done event with tool_calls
// ends the stream with delta.tool_calls chunks that reassemble to the calls, and the whole body
// carries message.tool_calls with content null.
TEST(IngressResponse, ToolCallsStreamAsDeltasAndContentStopsWhereACallBegins) {
  const json tools = json::parse(R"([{"type":"function","function":{"name":"add"}},{"type":"function","function":{"name":"now"}}])");
  auto parsed = parse(Endpoint::ChatCompletions, chat({{"stream", true}, {"tools", tools}}));
  ASSERT_TRUE(parsed.ok()) << parsed.error->message;
  const ApiRequest req = *parsed.request;
  EXPECT_EQ(req.prompt.tool_choice, "auto");
  EXPECT_TRUE(req.prompt.tools_enabled());
  const std::vector<ToolCall> calls = {{"call_a", "add", "{\"a\":1,\"b\":2}"}, {"call_b", "now", "{}"}};
  auto done_with_calls = [&](const std::string& text, const std::string& content) {
    const ToolCallsOutput out{content, calls};
    std::string error;
    std::optional<ResultEvent> ev =
        parse_result_event(done_event("r", text, FinishReason::ToolCalls, {5, 3}, {}, &out), &error);
    EXPECT_TRUE(ev) << error;
    return *ev;
  };
  const std::string call_text = "<tool_call>\n{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}\n</tool_call>\n"
                                "<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call>";
  {
    ResponseAssembler a(req, "chatcmpl-t", 1);
    a.take(token(0, "Sure. "));
    std::string s = a.take_stream_text();
    EXPECT_EQ(fleet::test::sse_text(fleet::test::sse_data(s)), "Sure.");  // the blank may precede a call
    a.take(token(1, "<tool"));
    a.take(token(2, call_text.substr(5)));
    EXPECT_EQ(fleet::test::sse_text(fleet::test::sse_data(a.take_stream_text())), "");  // held: a call began
    a.take(done_with_calls("Sure. " + call_text, "Sure."));
    s += a.take_stream_text();
    const auto data = fleet::test::sse_data(s);
    EXPECT_EQ(fleet::test::sse_text(data), "Sure.");
    std::map<int, json> got;  // index -> reassembled call
    std::string finish;
    for (const std::string& d : data) {
      if (d == "[DONE]") continue;
      const json c = json::parse(d)["choices"][0];
      if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
      if (!c["delta"].contains("tool_calls")) continue;
      for (const json& t : c["delta"]["tool_calls"]) {
        json& g = got[t["index"].get<int>()];
        if (t.contains("id")) g["id"] = t["id"];
        if (t["function"].contains("name")) g["name"] = t["function"]["name"];
        g["arguments"] = g.value("arguments", "") + t["function"]["arguments"].get<std::string>();
      }
    }
    EXPECT_EQ(finish, "tool_calls");
    ASSERT_EQ(got.size(), 2u) << s;
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(got[static_cast<int>(i)]["id"], calls[i].id);
      EXPECT_EQ(got[static_cast<int>(i)]["name"], calls[i].name);
      EXPECT_EQ(got[static_cast<int>(i)]["arguments"], calls[i].arguments);
    }
    const json body = a.completion_body();
    EXPECT_EQ(body["choices"][0]["finish_reason"], "tool_calls");
    EXPECT_EQ(body["choices"][0]["message"]["content"], "Sure.");
    EXPECT_EQ(body["choices"][0]["message"]["tool_calls"], tool_calls_json(calls));
  }
  {  // only calls: content null in the body
    ResponseAssembler a(req, "chatcmpl-t", 1);
    a.take(token(0, call_text));
    a.take(done_with_calls(call_text, ""));
    EXPECT_TRUE(a.completion_body()["choices"][0]["message"]["content"].is_null());
  }
  {  // plain text streams as it comes; a leading "{" is held until the end, then is content
    ResponseAssembler a(req, "chatcmpl-t", 1);
    a.take(token(0, "Hello"));
    EXPECT_EQ(fleet::test::sse_text(fleet::test::sse_data(a.take_stream_text())), "Hello");
    a.take(token(1, " there"));
    a.take(done("Hello there"));
    const auto data = fleet::test::sse_data(a.take_stream_text());
    EXPECT_EQ(fleet::test::sse_text(data), " there");
    EXPECT_EQ(json::parse(data[data.size() - 2])["choices"][0]["finish_reason"], "stop");
    ResponseAssembler b(req, "chatcmpl-t", 1);
    b.take(token(0, " {\"x\":"));
    EXPECT_EQ(fleet::test::sse_text(fleet::test::sse_data(b.take_stream_text())), "");
    b.take(done(" {\"x\":1}"));
    EXPECT_EQ(fleet::test::sse_text(fleet::test::sse_data(b.take_stream_text())), " {\"x\":1}");
  }
}

TEST(IngressResponse, WholeCompletionWithLogprobs) {
  ApiRequest req = *parse(Endpoint::Completions, {{"model", "m"}, {"prompt", "x"}, {"logprobs", 1}}).request;
  ResponseAssembler a(req, "cmpl-r", 1);
  a.take(token(0, "A", logprobs(10, "A", -0.5, 10, "A", -0.5)));
  a.take(token(1, "B", logprobs(11, "B", -1.5, 12, "C", -0.25)));
  a.take(done("AB"));
  const json b = a.completion_body();
  EXPECT_EQ(b["object"], "text_completion");
  EXPECT_EQ(b["choices"][0]["text"], "AB");
  EXPECT_EQ(b["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(b["choices"][0]["logprobs"]["tokens"], json::array({"A", "B"}));
  EXPECT_EQ(b["choices"][0]["logprobs"]["token_logprobs"], json::array({-0.5, -1.5}));
  EXPECT_EQ(b["choices"][0]["logprobs"]["top_logprobs"][1]["C"], -0.25);
  EXPECT_EQ(b["usage"]["prompt_tokens"], 5);
}

TEST(IngressResponse, StreamErrorEndsWithDone) {
  ApiRequest req = *parse(Endpoint::Completions, {{"model", "m"}, {"prompt", "x"}, {"stream", true}}).request;
  ResponseAssembler a(req, "cmpl-r", 1);
  a.take(token(0, "A"));
  ResultEvent e;
  e.type = ResultEvent::Type::Error;
  e.error = {"timeout", "too slow"};
  a.take(e);
  const auto data = fleet::test::sse_data(a.take_stream_text());
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(json::parse(data[1])["error"]["code"], "timeout");
  EXPECT_EQ(data[2], "[DONE]");
}

TEST(IngressSettings, ParsesTheSection) {
  auto env = [](const std::string& k) -> std::optional<std::string> {
    if (k == "KEYS") return std::string(" a , b,");
    return std::nullopt;
  };
  IngressSettings s = parse_ingress_settings(
      "kafka: {}\ningress: {port: 9000, max_in_flight: 8, api_keys: [k], api_keys_env: KEYS, max_body_bytes: 1MiB}\n",
      "t.yaml", env);
  EXPECT_EQ(s.port, 9000);
  EXPECT_EQ(s.max_in_flight, 8);
  EXPECT_EQ(s.http_threads(), 24);
  EXPECT_EQ(s.max_body_bytes, 1u << 20);
  EXPECT_EQ(s.api_keys, (std::vector<std::string>{"k", "a", "b"}));
  EXPECT_EQ(parse_ingress_settings("kafka: {}\n", "t.yaml", env).api_keys.size(), 0u);
  EXPECT_THROW(parse_ingress_settings("ingress: {prot: 1}\n", "t.yaml", env), ConfigError);
  EXPECT_THROW(parse_ingress_settings("ingress: {max_in_flight: 0}\n", "t.yaml", env), ConfigError);
}

TEST(IngressFleet, ReadyOnlyWithEveryStage) {
  FleetSnapshot s;
  s.live_per_stage = {1, 0};
  EXPECT_FALSE(s.ready());
  EXPECT_EQ(s.why_not_ready(), "stage 1 has no live worker");
  s.live_per_stage = {1, 2};
  EXPECT_TRUE(s.ready());
  s.error = "connection refused";
  EXPECT_FALSE(s.ready());
}

TEST(Penalties, FrequencyAndPresenceOverGeneratedTokens) {
  std::vector<float> l = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::vector<int32_t> gen = {3, 3, 1, 9 /* out of the row: ignored */};
  apply_penalties(l, gen, 0.5, 0.25);
  EXPECT_FLOAT_EQ(l[0], 1.0f);
  EXPECT_FLOAT_EQ(l[1], 2.0f - 0.75f);
  EXPECT_FLOAT_EQ(l[2], 3.0f);
  EXPECT_FLOAT_EQ(l[3], 4.0f - 1.25f);
  // Greedy moves off a repeated token once penalized.
  SamplingParams p;
  p.temperature = 0;
  const std::vector<float> row = {1.0f, 2.0f, 3.0f, 3.5f};
  EXPECT_EQ(choose_token(row, p, gen, 0).token, 3);
  p.frequency_penalty = 1.0;
  EXPECT_EQ(choose_token(row, p, gen, 0).token, 2);
}

TEST(Logprobs, LogSoftmaxAndTopAlternatives) {
  const std::vector<float> row = {0.0f, 1.0f, 2.0f, 2.0f};
  const TokenLogprobValues v = token_logprobs(row, 1, 3);
  const double z = std::log(std::exp(0.0) + std::exp(1.0) + 2 * std::exp(2.0));
  EXPECT_NEAR(v.sampled, 1.0 - z, 1e-12);
  ASSERT_EQ(v.top.size(), 3u);
  EXPECT_EQ(v.top[0].first, 2);  // ties: the lower id first
  EXPECT_EQ(v.top[1].first, 3);
  EXPECT_EQ(v.top[2].first, 1);
  double sum = 0;
  for (size_t t = 0; t < row.size(); ++t) sum += std::exp(token_logprobs(row, static_cast<int32_t>(t), 0).sampled);
  EXPECT_NEAR(sum, 1.0, 1e-12);
  // The same row always gives the same bits (a replayed step publishes identical numbers).
  EXPECT_EQ(token_logprobs(row, 2, 2).sampled, token_logprobs(row, 2, 2).sampled);
}

TEST(IngressMetrics, CountsAndExposesParsable) {
  EXPECT_EQ(endpoint_label("/v1/completions"), "/v1/completions");
  EXPECT_EQ(endpoint_label("/v1/chat/completions"), "/v1/chat/completions");
  EXPECT_EQ(endpoint_label("/v1/models/stories260K"), "/v1/models/{model}");
  EXPECT_EQ(endpoint_label("/v1/models/"), "other");
  EXPECT_EQ(endpoint_label("/v2/anything"), "other");
  EXPECT_EQ(endpoint_label("/metrics"), "/metrics");

  IngressMetrics m("my \"model\"");
  m.response("/v1/completions", 200);
  m.response("/v1/completions", 200);
  m.response("/v1/chat/completions", 429);
  m.response("/nope/1", 404);
  m.response("/nope/2", 404);
  m.rejected(RejectReason::Auth);
  m.rejected(RejectReason::RateLimit);
  m.rejected(RejectReason::RateLimit);
  const auto t0 = IngressMetrics::Clock::now() - std::chrono::milliseconds(300);
  const auto first = t0 + std::chrono::milliseconds(100);
  m.completion_ended(t0, &first, 7, 16);
  m.completion_ended(t0, nullptr, 3, 0);  // ended before any token: no time to first token
  m.client_disconnected();
  m.streams_active().inc();

  std::string error;
  const std::optional<fleet::test::ParsedMetrics> p = fleet::test::parse_prometheus(m.registry().expose(), &error);
  ASSERT_TRUE(p) << error << "\n" << m.registry().expose();
  const std::map<std::string, std::string> base = {{"service", "ingress"}, {"model", "my \"model\""}};
  auto with = [&](std::map<std::string, std::string> extra) {
    extra.insert(base.begin(), base.end());
    return extra;
  };
  EXPECT_EQ(p->sum("fleet_http_requests_total", with({{"endpoint", "/v1/completions"}, {"status", "200"}})), 2);
  EXPECT_EQ(p->sum("fleet_http_requests_total", with({{"endpoint", "/v1/chat/completions"}, {"status", "429"}})), 1);
  EXPECT_EQ(p->sum("fleet_http_requests_total", with({{"endpoint", "other"}, {"status", "404"}})), 2);
  EXPECT_EQ(p->samples("fleet_http_requests_total").size(), 3u);  // unknown paths share one series
  EXPECT_EQ(p->sum("fleet_http_rejected_total", with({{"reason", "auth"}})), 1);
  EXPECT_EQ(p->sum("fleet_http_rejected_total", with({{"reason", "rate_limit"}})), 2);
  EXPECT_EQ(p->samples("fleet_http_rejected_total", with({{"reason", "unavailable"}})).size(), 1u);  // exposed as 0
  EXPECT_EQ(p->sum("fleet_http_rejected_total", with({{"reason", "bad_request"}})), 0);
  EXPECT_EQ(p->sum("fleet_http_prompt_tokens_total", base), 10);
  EXPECT_EQ(p->sum("fleet_http_completion_tokens_total", base), 16);
  EXPECT_EQ(p->sum("fleet_http_client_disconnects_total", base), 1);
  EXPECT_EQ(p->sum("fleet_http_streams_active", base), 1);
  EXPECT_EQ(p->sum("fleet_http_request_duration_seconds_count", base), 2);
  EXPECT_GE(p->sum("fleet_http_request_duration_seconds_sum", base), 0.6);
  EXPECT_EQ(p->sum("fleet_http_time_to_first_token_seconds_count", base), 1);
  EXPECT_NEAR(p->sum("fleet_http_time_to_first_token_seconds_sum", base), 0.1, 1e-9);
  // 0.1 s falls in the bucket le=0.128 (0.5 ms doubling), not in le=0.064.
  EXPECT_EQ(p->sum("fleet_http_time_to_first_token_seconds_bucket", with({{"le", "0.064"}})), 0);
  EXPECT_EQ(p->sum("fleet_http_time_to_first_token_seconds_bucket", with({{"le", "0.128"}})), 1);
  const fleet::test::ParsedFamily* f = p->family("fleet_http_request_duration_seconds");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->type, "histogram");
}

}  // namespace
}  // namespace fleet::ingress
