// Prompts records: the example records of proto/schemas, ids, validation messages, limits.
#include <filesystem>

#include <gtest/gtest.h>

#include "contracts/prompt_request.h"
#include "test_support.h"

namespace fleet {
namespace {

namespace fs = std::filesystem;

std::string examples_dir() { return std::string(FLEET_SOURCE_ROOT) + "/proto/schemas/examples/prompt"; }

std::vector<fs::path> files_in(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".json") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The error message of parsing `json` ("" if it parses).
std::string message_of(const std::string& json) {
  auto r = parse_prompt_record(json);
  return r.error ? r.error->message : "";
}

TEST(PromptExamples, ValidExamplesAreAccepted) {
  auto files = files_in(examples_dir() + "/valid");
  ASSERT_GE(files.size(), 5u);
  for (const auto& f : files) {
    auto r = parse_prompt_record(test::read_file(f.string()));
    EXPECT_TRUE(r.ok()) << f << ": " << (r.error ? r.error->message : "");
    EXPECT_FALSE(r.id.empty()) << f;
    // The canonical JSON parses back to the same request.
    if (r.ok()) {
      auto again = parse_prompt_record(r.request->to_json().dump());
      ASSERT_TRUE(again.ok()) << f << ": " << again.error->message;
      EXPECT_EQ(again.request->to_json(), r.request->to_json()) << f;
    }
  }
}

TEST(PromptExamples, InvalidExamplesAreRejected) {
  auto files = files_in(examples_dir() + "/invalid");
  ASSERT_GE(files.size(), 20u);
  for (const auto& f : files) {
    auto r = parse_prompt_record(test::read_file(f.string()), "key-1");
    ASSERT_FALSE(r.ok()) << f << " was accepted";
    EXPECT_EQ(r.error->code, error_code::kInvalidRequest) << f;
    EXPECT_FALSE(r.error->message.empty()) << f;
    EXPECT_FALSE(r.id.empty()) << f;
  }
  auto r = parse_prompt_record(test::read_file(examples_dir() + "/not-json.txt"), "key-2");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->code, error_code::kInvalidJson);
  EXPECT_NE(r.error->message.find("not valid JSON"), std::string::npos) << r.error->message;
  EXPECT_EQ(r.id, "key-2");  // the key keys the error event
}

TEST(PromptRecord, FieldsAndDefaults) {
  auto r = parse_prompt_record(test::read_file(examples_dir() + "/valid/full.json"));
  ASSERT_TRUE(r.ok()) << r.error->message;
  const PromptRequest& p = *r.request;
  EXPECT_EQ(p.id, "req-0001");
  EXPECT_FALSE(p.id_generated);
  EXPECT_EQ(p.prompt, "Once upon a time");
  EXPECT_FALSE(p.is_chat());
  EXPECT_EQ(p.max_tokens, 64);
  EXPECT_DOUBLE_EQ(p.temperature, 0.8);
  EXPECT_DOUBLE_EQ(p.top_p, 0.95);
  EXPECT_EQ(p.top_k, 40);
  EXPECT_EQ(p.seed, 1234u);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"\n\n", "The end"}));

  r = parse_prompt_record(R"({"prompt": "hi"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.request->max_tokens, 256);
  EXPECT_DOUBLE_EQ(r.request->temperature, 1.0);
  EXPECT_DOUBLE_EQ(r.request->top_p, 1.0);
  EXPECT_EQ(r.request->top_k, 0);
  EXPECT_FALSE(r.request->seed.has_value());
  EXPECT_TRUE(r.request->stop.empty());

  r = parse_prompt_record(test::read_file(examples_dir() + "/valid/chat.json"));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.request->is_chat());
  ASSERT_EQ(r.request->messages.size(), 2u);
  EXPECT_EQ(r.request->messages[1].role, "user");
  EXPECT_EQ(r.request->messages[1].content, "A story about a cat.");
  EXPECT_DOUBLE_EQ(r.request->temperature, 0.0);

  r = parse_prompt_record(R"({"prompt": "x", "stop": "\n", "max_tokens": 12.0, "seed": 7.0})");
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.request->stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(r.request->max_tokens, 12);
  EXPECT_EQ(r.request->seed, 7u);
}

TEST(PromptRecord, IdComesFromTheBodyThenTheKeyThenIsGenerated) {
  auto r = parse_prompt_record(R"({"id": "body-id", "prompt": "x"})", "key-id");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.id, "body-id");
  EXPECT_EQ(r.request->id, "body-id");

  r = parse_prompt_record(R"({"prompt": "x"})", "key-id");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.request->id, "key-id");
  EXPECT_FALSE(r.request->id_generated);

  r = parse_prompt_record(R"({"prompt": "x"})", "");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.request->id_generated);
  EXPECT_EQ(r.request->id.size(), 32u);
  EXPECT_TRUE(is_valid_request_id(r.request->id));
  EXPECT_EQ(r.request->id.find_first_not_of("0123456789abcdef"), std::string::npos);

  auto other = parse_prompt_record(R"({"prompt": "x"})");
  EXPECT_NE(other.request->id, r.request->id);

  // A key that cannot be an id is refused when it would become one.
  r = parse_prompt_record(R"({"prompt": "x"})", "bad key");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error->message.find("record key"), std::string::npos) << r.error->message;
}

TEST(PromptRecord, ErrorsKeepTheIdForTheErrorEvent) {
  auto r = parse_prompt_record(R"({"id": "abc", "prompt": "x", "max_tokens": 0})", "key");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.id, "abc");
  r = parse_prompt_record(R"({"id": "has space", "prompt": "x"})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.id, "has space");  // kept for correlation, although not a valid id
  r = parse_prompt_record(R"({"max_tokens": 0})", "the-key");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.id, "the-key");
  r = parse_prompt_record("nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.id.size(), 32u);  // generated: nothing to recover
}

TEST(PromptRecord, MessagesSayWhatIsWrong) {
  EXPECT_NE(message_of(R"({"prompt": "x", "messages": [{"role": "user", "content": "y"}]})")
                .find("exactly one of 'prompt' and 'messages'"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt": "x", "max_token": 5})").find("unknown field 'max_token'"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt": "x", "max_tokens": 0})").find("max_tokens must be in [1, 8192], got 0"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt": "x", "max_tokens": "5"})").find("max_tokens must be an integer, got a string"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt": "x", "temperature": -1})").find("temperature must be >= 0"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt": "x", "top_p": 0})").find("top_p must be in (0, 1]"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt": "x", "top_k": -2})").find("top_k must be in [0,"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt": "x", "seed": -1})").find("seed must be an integer in [0, 2^64)"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"prompt": "x", "stop": ["a","b","c","d","e"]})").find("at most 4"), std::string::npos);
  EXPECT_NE(message_of(R"({"prompt": "x", "stop": ""})").find("must not be empty"), std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "bot", "content": "y"}]})").find("messages[0].role must be"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "user"}]})").find("messages[0].content must be a string"),
            std::string::npos);
  EXPECT_NE(message_of(R"([1])").find("must be a JSON object, got an array"), std::string::npos);
  EXPECT_NE(message_of(R"({"id": 5, "prompt": "x"})").find("id must be a string, got an integer"), std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "user", "content": "y"}], "tools": )" + std::string(200, '[') +
                       std::string(200, ']') + "}")
                .find("nests JSON deeper than 64 levels"),
            std::string::npos);
  // Tools: what the schema cannot say.
  const std::string tool = R"("tools": [{"type": "function", "function": {"name": "f"}}])";
  EXPECT_NE(message_of(R"({"messages": [{"role": "user", "content": "y"}], )" + tool +
                       R"(, "tool_choice": {"type": "function", "function": {"name": "g"}}})")
                .find("names the function \"g\", which is not among the tools"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "user", "content": "y"}], "tool_choice": "auto"})").find("needs tools"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "user", "content": "y", "tool_call_id": "c"}]})").find("in a tool message"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": 3}}]}]})")
                .find("arguments must be JSON text"),
            std::string::npos);
}

TEST(PromptRecord, ToolsRoundTripThroughRedisParams) {
  const PromptParseResult r = parse_prompt_record(test::read_file(examples_dir() + "/valid/tools.json"));
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_TRUE(r.request->tools_enabled());
  EXPECT_EQ(r.request->tool_choice, "required");
  EXPECT_FALSE(r.request->parallel_tool_calls);
  const RequestParams back = RequestParams::from_json(r.request->RequestParams::to_json());
  EXPECT_EQ(back, static_cast<const RequestParams&>(*r.request));
  const PromptParseResult h = parse_prompt_record(test::read_file(examples_dir() + "/valid/tool-history.json"));
  ASSERT_TRUE(h.ok()) << h.error->message;
  EXPECT_EQ(h.request->tool_choice, "auto");  // the default with tools
  ASSERT_EQ(h.request->messages.size(), 3u);
  EXPECT_TRUE(h.request->messages[1].fields.at("content").is_null());
  EXPECT_EQ(h.request->messages[2].fields.at("tool_call_id"), "call_1");
  // The canonical JSON parses back to the same request.
  const PromptParseResult again = parse_prompt_record(h.request->to_json().dump());
  ASSERT_TRUE(again.ok()) << again.error->message;
  EXPECT_EQ(again.request->messages[1].fields, h.request->messages[1].fields);
}

TEST(PromptRecord, LimitsAreEnforced) {
  PromptLimits small;
  small.max_prompt_bytes = 10;
  small.max_tokens = 16;
  small.max_record_bytes = 200;
  EXPECT_TRUE(parse_prompt_record(R"({"prompt": "0123456789", "max_tokens": 16})", std::nullopt, small).ok());
  auto r = parse_prompt_record(R"({"prompt": "0123456789a"})", std::nullopt, small);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error->message.find("prompt is 11 bytes"), std::string::npos) << r.error->message;
  r = parse_prompt_record(R"({"messages": [{"role": "user", "content": "012345"}, {"role": "user", "content": "6789a"}]})",
                          std::nullopt, small);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error->message.find("11 bytes of content"), std::string::npos) << r.error->message;
  r = parse_prompt_record(R"({"prompt": "x", "max_tokens": 17})", std::nullopt, small);
  EXPECT_FALSE(r.ok());
  r = parse_prompt_record(std::string(300, ' '), std::nullopt, small);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error->message.find("300 bytes"), std::string::npos) << r.error->message;
}

TEST(PromptRecord, HostileInputNeverThrows) {
  const std::vector<std::string> inputs = {
      "",   "{",  "null", "\"str\"", "{\"prompt\": \"\xff\xfe\"}", std::string("{\"prompt\": \"a\0b\"}", 17),
      R"({"prompt": "x", "seed": 1e400})", R"({"prompt": "x", "max_tokens": 1e300})",
      R"({"prompt": "x", "top_k": 99999999999999999999})", R"({"prompt": "x", "stop": {"a": 1}})",
      std::string(100000, '['), R"({"messages": [null]})"};
  for (const auto& in : inputs) {
    PromptParseResult r;
    EXPECT_NO_THROW(r = parse_prompt_record(in)) << in.substr(0, 40);
    EXPECT_FALSE(r.ok()) << in.substr(0, 40);
    EXPECT_FALSE(r.id.empty());
  }
}

TEST(PromptRecord, PenaltiesAndLogprobs) {
  auto r = parse_prompt_record(
      R"({"prompt": "x", "frequency_penalty": 0.5, "presence_penalty": -2, "logprobs": true, "top_logprobs": 20})");
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.request->frequency_penalty, 0.5);
  EXPECT_EQ(r.request->presence_penalty, -2);
  EXPECT_TRUE(r.request->logprobs);
  EXPECT_EQ(r.request->top_logprobs, 20);
  // Stored in Redis as params and read back by the last stage.
  EXPECT_EQ(RequestParams::from_json(r.request->to_json()), static_cast<const RequestParams&>(*r.request));
  // Defaults leave the params JSON as it was before these fields existed.
  auto plain = parse_prompt_record(R"({"prompt": "x"})");
  EXPECT_FALSE(plain.request->to_json().contains("frequency_penalty"));
  EXPECT_FALSE(plain.request->to_json().contains("logprobs"));
  for (const char* bad : {R"({"prompt": "x", "frequency_penalty": 2.01})", R"({"prompt": "x", "presence_penalty": "1"})",
                          R"({"prompt": "x", "logprobs": 1})", R"({"prompt": "x", "top_logprobs": 3})",
                          R"({"prompt": "x", "logprobs": true, "top_logprobs": 21})"}) {
    auto b = parse_prompt_record(bad);
    EXPECT_FALSE(b.ok()) << bad;
  }
}

TEST(PromptRecord, RequestIds) {
  EXPECT_TRUE(is_valid_request_id("a"));
  EXPECT_TRUE(is_valid_request_id("550e8400-e29b-41d4-a716-446655440000"));
  EXPECT_TRUE(is_valid_request_id("user:42.req_7"));
  EXPECT_FALSE(is_valid_request_id(""));
  EXPECT_FALSE(is_valid_request_id(std::string(129, 'a')));
  EXPECT_FALSE(is_valid_request_id("a/b"));
  EXPECT_FALSE(is_valid_request_id("a b"));
  EXPECT_NE(generate_request_id(), generate_request_id());
}

}  // namespace
}  // namespace fleet
