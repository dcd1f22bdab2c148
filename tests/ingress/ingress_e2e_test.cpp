// fleet-ingress end to end: a 2-stage stories260K pipeline (real fleet-stage processes, Kafka and
// Redis from scripts/stack.sh) behind a real fleet-ingress process, driven by the official
// openai Python client, curl -N and 32 concurrent streaming HTTP clients. Texts are compared
// with fleet generate's (the one-process reference) at temperature 0. The ingress's GET /metrics
// is read with prometheus_client's parser and its counters checked against the requests sent.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fleet/deployment.h"
#include "generate/generate.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"
#include "ingress/ingress_harness.h"
#include "metrics/prometheus_parse.h"
#include "state/redis_client.h"
#include "support/stack_env.h"
#include "support/stories_reference.h"
#include "test_support.h"

namespace fleet::test {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
const char* kKey = "test-key-1";
const char* kModel = "stories260K";

class IngressE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    DeploymentOptions o;
    o.name = "ingress";
    const std::string dir = stories_chat_model_dir();
    o.model_path = dir + "/stories260K.bin";
    o.tokenizer = dir + "/tok512.bin";
    o.stages = {{0, 3}, {3, 5}};
    deployment_ = new Deployment(o);
    // The ingress's section: keys from an environment variable, a generous in-flight limit.
    std::ofstream(deployment_->config_path(), std::ios::app)
        << "ingress: {max_in_flight: 64, api_keys_env: FLEET_TEST_INGRESS_KEYS, max_body_bytes: 4MiB}\n";
    ingress_ = new IngressProcess(deployment_->config_path(), scratch_dir("ingress-logs") + "/ingress.log",
                                  {{"FLEET_TEST_INGRESS_KEYS", std::string("other-key, ") + kKey}});
  }
  static void TearDownTestSuite() {
    if (ingress_) {
      EXPECT_EQ(ingress_->stop(), 0) << ingress_->log();  // stayed up all along, stops cleanly
    }
    delete ingress_;
    delete deployment_;
    ingress_ = nullptr;
    deployment_ = nullptr;
  }
  static int port() { return ingress_->port(); }
  static json completion_body(const std::string& prompt, int max_tokens, bool stream) {
    return {{"model", kModel}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
  }
  // `fleet generate` on stories260K with these parameters (one engine for the whole binary).
  static GenerateResult generate_in_process(const std::string& prompt, const GenerateParams& p) {
    static auto weights = std::make_shared<StageWeights>(load_stage_weights(open_model(stories_bin()), {}));
    static StageEngine engine(weights, 1);
    static auto tok = Tokenizer::load(stories_tok());
    return generate(engine, *tok, encode_prompt(*tok, prompt), p);
  }

  static Deployment* deployment_;
  static IngressProcess* ingress_;
};
Deployment* IngressE2E::deployment_ = nullptr;
IngressProcess* IngressE2E::ingress_ = nullptr;

// The ingress's GET /metrics (no API key) read by prometheus_client's parser.
ParsedMetrics scrape(int port) {
  const HttpResult r = http_get(port, "/metrics", "");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  std::string error;
  std::optional<ParsedMetrics> m = parse_prometheus(r.body, &error);
  if (!m) ADD_FAILURE() << error << "\n" << r.body;
  return m.value_or(ParsedMetrics{});
}
// Scrapes until check(metrics) holds or 15 s pass (a stream is accounted for after its last
// byte is written, so a client can see its end first); returns the last scrape.
template <typename Check>
ParsedMetrics scrape_until(int port, Check check) {
  const auto deadline = Clock::now() + std::chrono::seconds(15);
  ParsedMetrics m = scrape(port);
  while (!check(m) && Clock::now() < deadline) m = scrape(port);
  return m;
}
bool quiet(const ParsedMetrics& m) {
  return m.sum("fleet_http_streams_active") == 0 && m.sum("fleet_http_requests_in_flight") == 0;
}

const json kMessages = json::array({{{"role", "system"}, {"content", "You tell short stories."}},
                                    {{"role", "user"}, {"content", "Tell me about a dog."}}});
const json kPersonSchema = {{"type", "object"},
                            {"properties", {{"name", {{"type", "string"}, {"maxLength", 12}}},
                                            {"age", {{"type", "integer"}, {"minimum", 0}, {"maximum", 99}}}}},
                            {"required", {"name", "age"}},
                            {"additionalProperties", false}};

TEST_F(IngressE2E, OfficialOpenAIClient) {
  int st = 0;
  const std::string venv = std::string(FLEET_BINARY_DIR) + "/ingress-openai-venv";
  const std::string py = run_command(std::string(FLEET_SOURCE_ROOT) + "/tests/ingress/openai-venv.sh " + venv, &st);
  ASSERT_EQ(st, 0) << "could not make the openai venv (PyPI needed): " << py;
  const std::string python = py.substr(0, py.find('\n'));
  const int n = 40;
  const json spec = {{"base_url", ingress_->base_url() + "/v1"}, {"api_key", kKey}, {"model", kModel},
                     {"prompt", "Once upon a time"}, {"max_tokens", n}, {"messages", kMessages},
                     {"schema", kPersonSchema}};
  const std::string spec_file = scratch_dir("ingress-openai") + "/spec.json";
  std::ofstream(spec_file) << spec.dump();
  const std::string out = run_command(python + " " + FLEET_SOURCE_ROOT + "/tests/ingress/openai_client.py \"$(cat " +
                                          spec_file + ")\" 2>&1",
                                      &st);
  ASSERT_EQ(st, 0) << out << ingress_->log();
  const json r = json::parse(out.substr(out.find('{')));

  // The completion equals fleet generate's text.
  const GenerateResult& ref = stories_reference("Once upon a time", n);
  EXPECT_EQ(r["completion"]["text"], ref.text);
  EXPECT_EQ(r["completion"]["object"], "text_completion");
  EXPECT_EQ(r["completion"]["usage"]["completion_tokens"], static_cast<int>(ref.tokens.size()));
  EXPECT_EQ(r["completion"]["usage"]["prompt_tokens"], ref.prompt_tokens);
  EXPECT_EQ(r["completion"]["finish_reason"], ref.finish_reason);

  // The streamed chat equals the same messages sent straight to the prompts topic.
  const json record = {{"id", "chat-ref"}, {"messages", kMessages}, {"max_tokens", n}, {"temperature", 0}};
  auto direct = deployment_->run({{"chat-ref", record.dump()}});
  ASSERT_TRUE(direct["chat-ref"].error_code.empty()) << direct["chat-ref"].error_code;
  EXPECT_FALSE(direct["chat-ref"].text.empty());
  EXPECT_EQ(r["chat_stream"]["text"], direct["chat-ref"].text);
  EXPECT_EQ(r["chat_stream"]["role"], "assistant");
  EXPECT_GT(r["chat_stream"]["chunks"].get<int>(), 3);
  EXPECT_EQ(r["chat_stream"]["usage"]["completion_tokens"], direct["chat-ref"].completion_tokens);
  EXPECT_EQ(r["chat_stream"]["usage"]["total_tokens"],
            direct["chat-ref"].completion_tokens + direct["chat-ref"].prompt_tokens);

  // Logprobs with penalties: greedy picks the most likely token of the penalized row, so each
  // sampled token is its row's top alternative.
  const json& lp = r["chat_logprobs"]["logprobs"];
  ASSERT_FALSE(lp.empty());
  for (const json& t : lp) {
    ASSERT_EQ(t[2].size(), 3u);
    EXPECT_EQ(t[1], t[2][0][1]);
    EXPECT_LE(t[1].get<double>(), 0.0);
    EXPECT_GE(t[2][0][1].get<double>(), t[2][1][1].get<double>());
  }
  // response_format json_schema: JSON of the schema's shape from a story model, the same streamed
  // and not (seeded); every logprob is of an allowed token, so the alternatives' mass is at most 1.
  for (const char* k : {"json_schema", "json_schema_stream"}) {
    SCOPED_TRACE(k);
    EXPECT_EQ(r[k]["finish_reason"], "stop");
    const std::string text = r[k]["text"].get<std::string>();
    ASSERT_TRUE(json::accept(text)) << text;
    const json v = json::parse(text);
    EXPECT_TRUE(v.at("name").is_string()) << text;
    EXPECT_TRUE(v.at("age").is_number_integer()) << text;
    EXPECT_EQ(v.size(), 2u) << text;
  }
  EXPECT_EQ(r["json_schema"]["text"], r["json_schema_stream"]["text"]);
  for (const json& t : r["json_schema"]["logprobs"]) {
    double mass = 0;
    for (const json& a : t[1]) mass += std::exp(a.get<double>());
    EXPECT_LE(mass, 1.0 + 1e-9);
    EXPECT_LE(t[0].get<double>(), 0.0);
  }
  // n = 2 through the official client: choice i is the chat sent on its own with seed 11 + i.
  ASSERT_EQ(r["n_choices"]["choices"].size(), 2u) << r["n_choices"].dump();
  int n_tokens = 0;
  for (int i = 0; i < 2; ++i) {
    const json one = {{"id", "n-ref-" + std::to_string(i)}, {"messages", kMessages}, {"max_tokens", n},
                      {"temperature", 0.9}, {"seed", 11 + i}};
    auto got = deployment_->run({{one["id"], one.dump()}});
    const Completion& c = got.at(one["id"]);
    EXPECT_EQ(r["n_choices"]["choices"][i][0], i);
    EXPECT_EQ(r["n_choices"]["choices"][i][1], c.text) << i;
    n_tokens += c.completion_tokens;
  }
  EXPECT_EQ(r["n_choices"]["completion_tokens"], n_tokens);
  EXPECT_EQ(r["bad_schema"]["status"], 400) << r["bad_schema"].dump();
  EXPECT_EQ(r["bad_schema"]["param"], "response_format") << r["bad_schema"].dump();
  EXPECT_EQ(r["wrong_key"]["status"], 401);
  EXPECT_EQ(r["bad_model"]["status"], 404);
  EXPECT_EQ(r["bad_model"]["code"], "model_not_found");
}

TEST_F(IngressE2E, CurlStreamsTheSameText) {
  const int n = 40;
  const std::string body_file = scratch_dir("ingress-curl") + "/body.json";
  std::ofstream(body_file) << completion_body("Once upon a time", n, true).dump();
  int st = 0;
  const std::string out_file = body_file + ".sse";
  const std::string timing = run_command("curl -N -s -o " + out_file + " -w '%{time_starttransfer} %{time_total}' -H 'Authorization: Bearer " +
                                             std::string(kKey) + "' -H 'Content-Type: application/json' --data-binary @" +
                                             body_file + " " + ingress_->base_url() + "/v1/completions",
                                         &st);
  ASSERT_EQ(st, 0) << timing;
  const std::string out = read_file(out_file);
  std::printf("[ingress] one stream of %d tokens through curl: first byte %s s, total %s s\n", n,
              timing.substr(0, timing.find(' ')).c_str(), timing.substr(timing.find(' ') + 1).c_str());
  const std::vector<std::string> data = sse_data(out);
  ASSERT_GE(data.size(), 3u) << out;
  EXPECT_EQ(data.back(), "[DONE]");
  for (const std::string& d : data) EXPECT_NE(d.rfind("!bad", 0), 0u) << d;
  EXPECT_EQ(sse_text(data), stories_reference("Once upon a time", n).text);
  const json last = json::parse(data[data.size() - 2]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(last["object"], "text_completion");
}

TEST_F(IngressE2E, ThirtyTwoConcurrentStreams) {
  const int clients = 32;
  const auto& prompts = story_prompts();
  std::vector<std::string> got(clients);
  std::vector<int> status(clients, 0);
  std::vector<double> first_chunk_ms(clients, 0);
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      const json body = completion_body(prompts[static_cast<size_t>(i) % prompts.size()], 24 + 8 * (i / 20), true);
      httplib::Client c("127.0.0.1", port());
      c.set_read_timeout(180, 0);
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.headers = {{"Authorization", std::string("Bearer ") + kKey}};
      req.body = body.dump();
      req.set_header("Content-Type", "application/json");
      std::string text;
      const auto start = Clock::now();
      req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
        if (text.empty()) first_chunk_ms[static_cast<size_t>(i)] = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        text.append(d, n);
        return true;
      };
      httplib::Response res;
      httplib::Error err;
      if (c.send(req, res, err)) status[static_cast<size_t>(i)] = res.status;
      else text += "(no response: " + httplib::to_string(err) + ")";
      got[static_cast<size_t>(i)] = text;
    });
  for (auto& t : threads) t.join();
  const double wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  double ttft_sum = 0;
  for (int i = 0; i < clients; ++i) {
    SCOPED_TRACE("client " + std::to_string(i));
    EXPECT_EQ(status[static_cast<size_t>(i)], 200) << got[static_cast<size_t>(i)];
    const std::vector<std::string> data = sse_data(got[static_cast<size_t>(i)]);
    ASSERT_FALSE(data.empty());
    EXPECT_EQ(data.back(), "[DONE]");
    EXPECT_EQ(sse_text(data), stories_reference(prompts[static_cast<size_t>(i) % prompts.size()], 24 + 8 * (i / 20)).text);
    ttft_sum += first_chunk_ms[static_cast<size_t>(i)];
  }
  std::printf("[ingress] %d concurrent streams finished in %.2f s; mean time to first chunk %.1f ms\n", clients, wall_s,
              ttft_sum / clients);
}

TEST_F(IngressE2E, DisconnectMidStreamCancels) {
  // A greedy completion that runs long (no end-of-text within 300 tokens), so that only the
  // cancel can end it early.
  const int n = 450;
  std::string prompt;
  for (const std::string& p : story_prompts())
    if (stories_reference(p, n).tokens.size() >= 300) {
      prompt = p;
      break;
    }
  ASSERT_FALSE(prompt.empty()) << "no story prompt runs 300 greedy tokens";
  const ParsedMetrics before = scrape_until(port(), quiet);
  ASSERT_TRUE(quiet(before));
  httplib::Client c("127.0.0.1", port());
  c.set_read_timeout(60, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = {{"Authorization", std::string("Bearer ") + kKey}};
  req.body = completion_body(prompt, n, true).dump();
  req.set_header("Content-Type", "application/json");
  std::string seen;
  req.content_receiver = [&](const char* d, size_t len, uint64_t, uint64_t) {
    seen.append(d, len);
    return seen.find("\n\n") == std::string::npos;  // the first event in: hang up
  };
  httplib::Response res;
  httplib::Error err;
  c.send(req, res, err);
  c.stop();
  const auto hung_up = Clock::now();
  const std::vector<std::string> data = sse_data(seen);
  ASSERT_FALSE(data.empty()) << seen;
  const std::string oai_id = json::parse(data[0])["id"];
  ASSERT_EQ(oai_id.rfind("cmpl-", 0), 0u);
  const std::string id = oai_id.substr(5);
  RedisClient redis(redis_url());
  std::string finish;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    finish = redis.hget("fleet:req:" + id, "finish_reason").value_or("");
    if (!finish.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling Redis for the request's end
  }
  EXPECT_EQ(finish, "cancelled") << ingress_->log();
  const size_t generated = redis.lrange("fleet:req:" + id + ":tokens", 0, -1).size();
  EXPECT_LT(generated, 300u);  // stopped early: no work left running
  // The ingress counted the hang-up and holds nothing for the request any more.
  const auto disconnects = [&](const ParsedMetrics& m) { return m.sum("fleet_http_client_disconnects_total"); };
  const ParsedMetrics after = scrape_until(port(), [&](const ParsedMetrics& m) {
    return quiet(m) && disconnects(m) == disconnects(before) + 1;
  });
  EXPECT_EQ(disconnects(after), disconnects(before) + 1);
  EXPECT_TRUE(quiet(after));
  std::printf("[ingress] disconnect after the first event: cancelled in Redis %.0f ms after the hang-up, after %zu tokens\n",
              std::chrono::duration<double, std::milli>(Clock::now() - hung_up).count(), generated);
}

// n = 3 choices, sampled with seed 5: choice i is the request with seed 5 + i (the in-process
// engine's text), streamed chunks reassemble per choice index to the same texts, usage sums.
TEST_F(IngressE2E, NChoicesAreTheRequestsWithSeedsSeedPlusI) {
  const int n = 20;
  json body = completion_body("The little dog", n, false);
  body["n"] = 3;
  body["temperature"] = 0.9;
  body["seed"] = 5;
  const HttpResult r = http_post(port(), "/v1/completions", body.dump(), kKey);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);
  ASSERT_EQ(j["choices"].size(), 3u) << r.body;
  int completion_tokens = 0;
  std::set<std::string> texts;
  for (int i = 0; i < 3; ++i) {
    const GenerateResult& ref = stories_reference("The little dog", n, 0.9f, 5 + i);
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["text"], ref.text) << i;
    completion_tokens += static_cast<int>(ref.tokens.size());
    texts.insert(ref.text);
  }
  EXPECT_GT(texts.size(), 1u);  // different seeds, different samples
  EXPECT_EQ(j["usage"]["completion_tokens"], completion_tokens);
  EXPECT_EQ(j["usage"]["total_tokens"], completion_tokens + j["usage"]["prompt_tokens"].get<int>());

  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const HttpResult s = http_post(port(), "/v1/completions", body.dump(), kKey);
  ASSERT_EQ(s.status, 200) << s.body;
  std::map<int, std::string> streamed;
  std::map<int, std::string> finish;
  int done_lines = 0;
  json usage;
  std::istringstream lines(s.body);
  for (std::string line; std::getline(lines, line);) {
    if (line == "data: [DONE]") ++done_lines;
    if (line.rfind("data: {", 0) != 0) continue;
    const json c = json::parse(line.substr(6));
    if (!c["usage"].is_null()) usage = c["usage"];
    for (const json& ch : c["choices"]) {
      streamed[ch["index"].get<int>()] += ch["text"].get<std::string>();
      if (!ch["finish_reason"].is_null()) finish[ch["index"].get<int>()] = ch["finish_reason"];
    }
  }
  EXPECT_EQ(done_lines, 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(streamed[i], j["choices"][i]["text"]) << i;
    EXPECT_EQ(finish[i], j["choices"][i]["finish_reason"]) << i;
  }
  EXPECT_EQ(usage["completion_tokens"], completion_tokens) << s.body.substr(s.body.size() > 600 ? s.body.size() - 600 : 0);
}

// logit_bias bans the unbiased greedy text's first tokens: the text changes, and equals what
// the in-process engine gives with the same bias.
TEST_F(IngressE2E, LogitBiasEqualsGenerate) {
  const int n = 24;
  const GenerateResult& plain = stories_reference("The little dog", n);
  ASSERT_GE(plain.tokens.size(), 2u);
  GenerateParams p;
  p.max_tokens = n;
  p.sampling.temperature = 0;
  json bias = json::object();
  for (size_t i = 0; i < 2; ++i) {
    bias[std::to_string(plain.tokens[i])] = -100;
    p.sampling.logit_bias.emplace_back(plain.tokens[i], -100.0);
  }
  p.sampling.logit_bias.emplace_back(13, 1.5);  // and a positive one
  bias["13"] = 1.5;
  json body = completion_body("The little dog", n, false);
  body["logit_bias"] = bias;
  const HttpResult r = http_post(port(), "/v1/completions", body.dump(), kKey);
  ASSERT_EQ(r.status, 200) << r.body;
  const GenerateResult ref = generate_in_process("The little dog", p);
  EXPECT_EQ(json::parse(r.body)["choices"][0]["text"], ref.text);
  EXPECT_NE(ref.text, plain.text);
  EXPECT_NE(ref.tokens.at(0), plain.tokens[0]);
}

TEST_F(IngressE2E, PenaltiesAndLogprobsEqualGenerate) {
  const int n = 40;
  json body = completion_body("The little dog", n, false);
  body["frequency_penalty"] = 0.8;
  body["presence_penalty"] = 0.5;
  body["logprobs"] = 2;
  const HttpResult r = http_post(port(), "/v1/completions", body.dump(), kKey);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = json::parse(r.body);

  GenerateParams p;
  p.max_tokens = n;
  p.sampling.temperature = 0;
  p.sampling.frequency_penalty = 0.8;
  p.sampling.presence_penalty = 0.5;
  p.top_logprobs = 2;
  const GenerateResult ref = generate_in_process("The little dog", p);
  EXPECT_EQ(j["choices"][0]["text"], ref.text);
  EXPECT_NE(ref.text, stories_reference("The little dog", n).text);  // the penalties changed the text
  const json& lp = j["choices"][0]["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), ref.logprobs.size());
  for (size_t i = 0; i < ref.logprobs.size(); ++i) {
    EXPECT_DOUBLE_EQ(lp["token_logprobs"][i].get<double>(), ref.logprobs[i].sampled) << i;
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
  }
}

TEST_F(IngressE2E, BadInputGetsOpenAIErrors) {
  struct Case {
    std::string name, path, body, key;
    int status;
    std::string param;  // "" = not checked
  };
  const std::string big(10u << 20, 'a');
  const std::vector<Case> cases = {
      {"malformed JSON", "/v1/completions", "{\"model\": ", kKey, 400, ""},
      {"not an object", "/v1/chat/completions", "[1, 2]", kKey, 400, ""},
      {"wrong type", "/v1/completions", R"({"model":"stories260K","prompt":"x","max_tokens":"ten"})", kKey, 400, "max_tokens"},
      {"wrong type temperature", "/v1/chat/completions",
       R"({"model":"stories260K","messages":[{"role":"user","content":"x"}],"temperature":"hot"})", kKey, 400, "temperature"},
      {"unknown model", "/v1/completions", R"({"model":"gpt-4","prompt":"x"})", kKey, 404, "model"},
      {"missing messages", "/v1/chat/completions", R"({"model":"stories260K"})", kKey, 400, "messages"},
      {"missing model", "/v1/completions", R"({"prompt":"x"})", kKey, 400, "model"},
      {"logit_bias", "/v1/completions", R"({"model":"stories260K","prompt":"x","logit_bias":{"5":200}})", kKey, 400, "logit_bias"},
      {"logit_bias outside the vocabulary", "/v1/completions", R"({"model":"stories260K","prompt":"x","logit_bias":{"99999":1}})",
       kKey, 400, ""},
      {"a prompt larger than a Kafka record", "/v1/completions",
       json({{"model", kModel}, {"prompt", std::string(1000000, 'a')}}).dump(), kKey, 400, "prompt"},
      {"n > 8", "/v1/chat/completions", R"({"model":"stories260K","messages":[{"role":"user","content":"x"}],"n":9})", kKey, 400, "n"},
      {"tools", "/v1/chat/completions",
       R"({"model":"stories260K","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", kKey, 400, "tools"},
      {"unknown field", "/v1/completions", R"({"model":"stories260K","prompt":"x","max_token":5})", kKey, 400, "max_token"},
      {"10 MB body", "/v1/completions", R"({"model":"stories260K","prompt":")" + big + "\"}", kKey, 413, ""},
      {"wrong key", "/v1/completions", R"({"model":"stories260K","prompt":"x"})", "nope", 401, ""},
      {"no key", "/v1/completions", R"({"model":"stories260K","prompt":"x"})", "", 401, ""},
      {"prompt too long", "/v1/completions",
       json({{"model", kModel}, {"prompt", [] { std::string s; for (int i = 0; i < 700; ++i) s += "hello "; return s; }()},
             {"max_tokens", 5}}).dump(), kKey, 400, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const HttpResult r = http_post(port(), c.path, c.body, c.key);
    EXPECT_EQ(r.status, c.status) << r.body;
    const json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
    const json& e = j["error"];
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
    EXPECT_TRUE(e["type"].is_string());
    EXPECT_TRUE(e.contains("param") && e.contains("code"));
    if (!c.param.empty()) {
      EXPECT_EQ(e["param"], c.param);
    }
  }
  EXPECT_TRUE(ingress_->running());
  EXPECT_EQ(http_get(port(), "/health", "").status, 200);
  const HttpResult unknown = http_get(port(), "/v2/nothing", kKey);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_TRUE(json::parse(unknown.body, nullptr, false).contains("error")) << unknown.body;
}

TEST_F(IngressE2E, HealthModelsAndFleet) {
  const HttpResult h = http_get(port(), "/health", "");
  EXPECT_EQ(h.status, 200) << h.body;
  const HttpResult m = http_get(port(), "/v1/models", kKey);
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(json::parse(m.body)["data"][0]["id"], kModel);
  EXPECT_EQ(http_get(port(), "/v1/models", "").status, 401);
  const HttpResult f = http_get(port(), "/v1/fleet", kKey);
  ASSERT_EQ(f.status, 200) << f.body;
  const json fleet = json::parse(f.body);
  EXPECT_TRUE(fleet["ready"].get<bool>());
  ASSERT_EQ(fleet["workers"].size(), 2u) << f.body;
  EXPECT_EQ(fleet["workers"][0]["layers"], json::array({0, 3}));
  EXPECT_EQ(fleet["workers"][1]["layers"], json::array({3, 5}));
}

TEST_F(IngressE2E, MetricsCountTheRequests) {
  const ParsedMetrics before = scrape_until(port(), quiet);  // no stream of an earlier test still open
  ASSERT_TRUE(quiet(before));
  for (const char* family : {"fleet_http_requests", "fleet_http_rejected", "fleet_http_streams_active",
                             "fleet_http_requests_in_flight", "fleet_http_time_to_first_token_seconds",
                             "fleet_http_request_duration_seconds", "fleet_http_completion_tokens",
                             "fleet_http_prompt_tokens", "fleet_http_client_disconnects"}) {
    const ParsedFamily* f = before.family(family);
    ASSERT_NE(f, nullptr) << family;
    for (const ParsedSample& x : f->samples)
      EXPECT_TRUE(x.labels.count("service") && x.labels.at("service") == "ingress" && x.labels.count("model") &&
                  x.labels.at("model") == kModel) << x.name << " lacks service/model labels";
  }
  // 3 completions and 1 streamed chat with usage; a wrong key, a malformed body.
  int prompt_tokens = 0, completion_tokens = 0;
  for (int i = 0; i < 3; ++i) {
    const json body = completion_body(story_prompts()[static_cast<size_t>(i)], 8 + 4 * i, false);
    const HttpResult r = http_post(port(), "/v1/completions", body.dump(), kKey);
    ASSERT_EQ(r.status, 200) << r.body;
    const json u = json::parse(r.body)["usage"];
    prompt_tokens += u["prompt_tokens"].get<int>();
    completion_tokens += u["completion_tokens"].get<int>();
    ASSERT_GT(u["completion_tokens"].get<int>(), 0);
  }
  const json chat = {{"model", kModel}, {"messages", kMessages}, {"max_tokens", 12}, {"temperature", 0},
                     {"stream", true}, {"stream_options", {{"include_usage", true}}}};
  const HttpResult sr = http_post(port(), "/v1/chat/completions", chat.dump(), kKey);
  ASSERT_EQ(sr.status, 200) << sr.body;
  const std::vector<std::string> data = sse_data(sr.body);
  ASSERT_GE(data.size(), 2u);
  const json u = json::parse(data[data.size() - 2])["usage"];  // the usage chunk before [DONE]
  ASSERT_TRUE(u.is_object()) << sr.body;
  prompt_tokens += u["prompt_tokens"].get<int>();
  completion_tokens += u["completion_tokens"].get<int>();
  EXPECT_EQ(http_post(port(), "/v1/completions", completion_body("x", 4, false).dump(), "wrong").status, 401);
  EXPECT_EQ(http_post(port(), "/v1/completions", R"({"prompt":"x"})", kKey).status, 400);

  const auto count = [&](const ParsedMetrics& m, const std::string& endpoint, const std::string& status) {
    return m.sum("fleet_http_requests_total", {{"endpoint", endpoint}, {"status", status}});
  };
  const auto delta = [&](const ParsedMetrics& after, const std::string& name, std::map<std::string, std::string> l = {}) {
    return after.sum(name, l) - before.sum(name, l);
  };
  const std::vector<std::tuple<std::string, std::string, int>> sent = {
      {"/v1/completions", "200", 3}, {"/v1/chat/completions", "200", 1}, {"/v1/completions", "401", 1},
      {"/v1/completions", "400", 1}};
  const ParsedMetrics after = scrape_until(port(), [&](const ParsedMetrics& m) {
    bool all = quiet(m);
    for (const auto& [e, status, n] : sent) all = all && count(m, e, status) == count(before, e, status) + n;
    return all;
  });
  EXPECT_TRUE(quiet(after));
  for (const auto& [e, status, n] : sent) EXPECT_EQ(count(after, e, status) - count(before, e, status), n) << e << status;
  EXPECT_GE(count(after, "/metrics", "200") - count(before, "/metrics", "200"), 1);  // the scrapes themselves
  for (const auto& [why, n] : std::map<std::string, int>{{"auth", 1}, {"bad_request", 1}, {"rate_limit", 0}, {"unavailable", 0}})
    EXPECT_EQ(delta(after, "fleet_http_rejected_total", {{"reason", why}}), n) << why;
  EXPECT_EQ(delta(after, "fleet_http_completion_tokens_total"), completion_tokens);
  EXPECT_EQ(delta(after, "fleet_http_prompt_tokens_total"), prompt_tokens);
  EXPECT_EQ(delta(after, "fleet_http_client_disconnects_total"), 0);
  // Every request sent to the pipeline: one duration and one time to first token each.
  EXPECT_EQ(delta(after, "fleet_http_request_duration_seconds_count"), 4);
  EXPECT_EQ(delta(after, "fleet_http_time_to_first_token_seconds_count"), 4);
  EXPECT_GT(delta(after, "fleet_http_time_to_first_token_seconds_sum"), 0);
  EXPECT_LE(delta(after, "fleet_http_time_to_first_token_seconds_sum"),
            delta(after, "fleet_http_request_duration_seconds_sum"));
}

// Another ingress over a 3-stage cut of the same model: stage 2 has no worker, so it is not
// ready and refuses work with a 503; one with max_in_flight 1 answers a second request with a 429.
TEST_F(IngressE2E, NotReadyAndInFlightLimit) {
  const std::string dir = scratch_dir("ingress-extra");
  std::string cfg = read_file(deployment_->config_path());
  {
    std::string three = cfg;
    const size_t a = three.find("stages:\n"), b = three.find("batching:");
    three.replace(a, b - a, "stages:\n  - layers: [0, 2]\n  - layers: [2, 4]\n  - layers: [4, 5]\n");
    std::ofstream(dir + "/three.yaml") << three;
    IngressProcess three_stage(dir + "/three.yaml", dir + "/three.log", {{"FLEET_TEST_INGRESS_KEYS", kKey}});
    const HttpResult h = http_get(three_stage.port(), "/health", "");
    EXPECT_EQ(h.status, 503) << h.body;
    EXPECT_NE(h.body.find("stage 2 has no live worker"), std::string::npos) << h.body;
    const HttpResult r = http_post(three_stage.port(), "/v1/completions", completion_body("Once", 4, false).dump(), kKey);
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(scrape(three_stage.port()).sum("fleet_http_rejected_total", {{"reason", "unavailable"}}), 1);
    EXPECT_EQ(three_stage.stop(), 0);
  }
  const size_t at = cfg.find("ingress: {max_in_flight: 64");
  ASSERT_NE(at, std::string::npos);
  cfg.replace(at, std::string("ingress: {max_in_flight: 64").size(), "ingress: {max_in_flight: 1");
  std::ofstream(dir + "/one.yaml") << cfg;
  IngressProcess one(dir + "/one.yaml", dir + "/one.log", {{"FLEET_TEST_INGRESS_KEYS", kKey}});
  std::atomic<bool> first_in{false};
  std::thread long_stream([&] {
    httplib::Client c("127.0.0.1", one.port());
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.headers = {{"Authorization", std::string("Bearer ") + kKey}};
    req.body = completion_body("Once upon a time", 450, true).dump();
    req.set_header("Content-Type", "application/json");
    std::string seen;
    req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
      seen.append(d, n);
      first_in = true;
      return seen.size() < 2000;
    };
    httplib::Response res;
    httplib::Error err;
    c.send(req, res, err);
  });
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!first_in && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling
  ASSERT_TRUE(first_in.load());
  const HttpResult r = http_post(one.port(), "/v1/completions", completion_body("Once", 4, false).dump(), kKey);
  long_stream.join();
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(scrape(one.port()).sum("fleet_http_rejected_total", {{"reason", "rate_limit"}}), 1);
  EXPECT_EQ(one.stop(), 0);
}

}  // namespace
}  // namespace fleet::test
