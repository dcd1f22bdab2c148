// Results events and dead-letter records: builders equal the schema examples, the reader
// accepts the valid examples and rejects the invalid ones.
#include <filesystem>
#include <limits>

#include <gtest/gtest.h>

#include "contracts/result_events.h"
#include "test_support.h"

namespace fleet {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string example(const std::string& rel) {
  return test::read_file(std::string(FLEET_SOURCE_ROOT) + "/proto/schemas/examples/" + rel);
}

TEST(ResultEvents, BuildersProduceTheSchemaExamples) {
  EXPECT_EQ(json::parse(token_event("req-0001", 0, 403, " Once")), json::parse(example("result/valid/token.json")));
  RequestTimings t;
  t.queue_ms = 1.5;
  t.time_to_first_token_ms = 12.25;
  t.total_ms = 40;
  t.tokens_per_s = 150;
  EXPECT_EQ(json::parse(done_event("req-0001", " Once upon a time", FinishReason::Length, {5, 4}, t)),
            json::parse(example("result/valid/done.json")));
  EXPECT_EQ(json::parse(error_event("req-0002", {error_code::kInvalidRequest, "max_tokens must be in [1, 8192], got 0"})),
            json::parse(example("result/valid/error.json")));
  RequestTimings extra;
  extra.extra = {{"prefill_ms", 3.0}};
  EXPECT_EQ(json::parse(done_event("x", "", FinishReason::Stop, {1, 0}, extra)),
            json::parse(example("result/valid/done-stop-with-extra-timings.json")));
}

TEST(ResultEvents, ReaderAcceptsValidAndRejectsInvalidExamples) {
  const std::string root = std::string(FLEET_SOURCE_ROOT) + "/proto/schemas/examples/result";
  int valid = 0, invalid = 0;
  for (const auto& e : fs::directory_iterator(root + "/valid")) {
    std::string err;
    EXPECT_TRUE(parse_result_event(test::read_file(e.path().string()), &err).has_value()) << e.path() << ": " << err;
    ++valid;
  }
  for (const auto& e : fs::directory_iterator(root + "/invalid")) {
    std::string err;
    EXPECT_FALSE(parse_result_event(test::read_file(e.path().string()), &err).has_value()) << e.path();
    EXPECT_FALSE(err.empty()) << e.path();
    ++invalid;
  }
  EXPECT_GE(valid, 3);
  EXPECT_GE(invalid, 5);
}

TEST(ResultEvents, TokenEventsCarryLogprobsWhenAsked) {
  TokenLogprobs lp;
  lp.sampled = {403, " Once", -0.12};
  lp.top = {{403, " Once", -0.12}, {9, " The", -2.5}};
  const std::string ev = token_event("req-lp", 0, 403, " Once", &lp);
  EXPECT_EQ(json::parse(ev), json::parse(example("result/valid/token-with-logprobs.json")));
  std::string err;
  auto back = parse_result_event(ev, &err);
  ASSERT_TRUE(back.has_value()) << err;
  ASSERT_TRUE(back->logprobs.has_value());
  EXPECT_EQ(*back->logprobs, lp);
  EXPECT_FALSE(parse_result_event(token_event("x", 0, 1, "a"))->logprobs.has_value());
  TokenLogprobs inf;
  inf.sampled = {1, "a", -std::numeric_limits<double>::infinity()};
  EXPECT_EQ(json::parse(token_event("x", 0, 1, "a", &inf))["logprob"], -9999.0);  // JSON has no -inf
}

TEST(ResultEvents, ReadBackFields) {
  auto ev = parse_result_event(token_event("r", 3, 17, "cat"));
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->type, ResultEvent::Type::Token);
  EXPECT_EQ(ev->id, "r");
  EXPECT_EQ(ev->index, 3);
  EXPECT_EQ(ev->token_id, 17);
  EXPECT_EQ(ev->text, "cat");
  ev = parse_result_event(done_event("r", "the cat", FinishReason::Stop, {2, 9}, {}));
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->type, ResultEvent::Type::Done);
  EXPECT_EQ(ev->finish_reason, "stop");
  EXPECT_EQ(ev->usage.prompt_tokens, 2);
  EXPECT_EQ(ev->usage.completion_tokens, 9);
  EXPECT_TRUE(ev->timings.contains("total_ms"));
  ev = parse_result_event(error_event("r", {error_code::kKvCacheMissing, "no cache for step 4"}));
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->type, ResultEvent::Type::Error);
  EXPECT_EQ(ev->error.code, "kv_cache_missing");
  EXPECT_EQ(ev->error.message, "no cache for step 4");
  std::string err;
  EXPECT_FALSE(parse_result_event("{oops", &err));
  EXPECT_NE(err.find("not valid JSON"), std::string::npos) << err;
  EXPECT_FALSE(parse_result_event(R"({"id":"a","type":"token","index":99999999999,"token_id":1,"text":""})"));
}

TEST(ResultEvents, InvalidUtf8TextIsReplacedNotThrown) {
  std::string s;
  EXPECT_NO_THROW(s = token_event("r", 0, 1, "\xe2\x96"));  // half of a 3-byte sequence
  auto ev = parse_result_event(s);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->text, "\xef\xbf\xbd");  // U+FFFD
}

TEST(DeadLetter, RecordsCarryTheOriginalAndTheError) {
  DeadLetterSource src{"fleet.prompts", 3, 42, std::string("req-9"), "{\"prompt\": "};
  json j = json::parse(dead_letter_record(src, {error_code::kInvalidJson, "the record is not valid JSON"},
                                          "fleet-stage 0", 1700000000000));
  EXPECT_EQ(j, json::parse(example("dead-letter/valid/text-value.json")));

  DeadLetterSource bin{"fleet.stage.1", 0, 7, std::nullopt, std::string("\xff\x00", 2)};
  j = json::parse(dead_letter_record(bin, {error_code::kInvalidRequest, "not a valid ActivationMsg protobuf (2 bytes)"},
                                     "fleet-stage 1", 1700000000001));
  EXPECT_EQ(j, json::parse(example("dead-letter/valid/binary-value.json")));

  DeadLetterSource bin_key{"t", 1, 2, std::string("\xc3\x28"), "v"};
  j = json::parse(dead_letter_record(bin_key, {"c", "m"}, "s", 1));
  EXPECT_EQ(j["source"]["key_base64"], "wyg=");
  EXPECT_FALSE(j["source"].contains("key"));
}

TEST(DeadLetter, AValueLargerThanTheLimitIsCutSoTheDeadLetterFitsTheBroker) {
  // A 990 KB prompt of quotes: escaped whole it would be ~2 MB, over the broker's 1 MB.
  std::string quotes(990000, '"');
  json j = json::parse(dead_letter_record({"p", 0, 1, std::string("k"), quotes}, {"c", "m"}, "s", 1));
  EXPECT_EQ(j["value"].get<std::string>().size(), kDeadLetterValueBytes);
  EXPECT_EQ(j["value_truncated"], true);
  EXPECT_EQ(j["value_bytes"], 990000);
  EXPECT_LT(j.dump().size(), 200000u);
  // Text is cut at a character boundary (stays UTF-8); binary is cut and base64-encoded.
  std::string euros;
  for (int i = 0; i < 30000; ++i) euros += "\xe2\x82\xac";
  j = json::parse(dead_letter_record({"p", 0, 1, std::nullopt, euros}, {"c", "m"}, "s", 1));
  EXPECT_TRUE(j.contains("value"));
  EXPECT_EQ(j["value"].get<std::string>().size() % 3, 0u);
  j = json::parse(dead_letter_record({"p", 0, 1, std::nullopt, std::string(200000, '\xff')}, {"c", "m"}, "s", 1));
  EXPECT_EQ(j["value_base64"].get<std::string>().size(), (kDeadLetterValueBytes + 2) / 3 * 4);
  EXPECT_EQ(j["value_bytes"], 200000);
}

TEST(DeadLetter, Utf8AndBase64Helpers) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_FALSE(is_valid_utf8("\xc3"));                                // truncated
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));                            // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));                        // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));                    // above U+10FFFF
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

}  // namespace
}  // namespace fleet
