// response_format -> grammar, and the matcher that masks logits: outputs of random walks under
// the mask always parse and have the schema's shape; the state is a function of the tokens
// (a rebuilt matcher masks the same); mask() and allows() agree.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "grammar/grammar_matcher.h"
#include "grammar/grammar_walk.h"
#include "grammar/response_format.h"
#include "sampling/sampler.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace fleet {
namespace {

using json = nlohmann::json;

json schema_format(const json& schema) {
  return {{"type", "json_schema"}, {"json_schema", {{"name", "t"}, {"schema", schema}, {"strict", true}}}};
}

std::string error_of(const json& rf) {
  try {
    grammar_for_response_format(rf);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(ResponseFormat, TextIsNoGrammarAndJsonObjectIsOne) {
  EXPECT_EQ(grammar_for_response_format({{"type", "text"}}), "");
  const std::string g = grammar_for_response_format({{"type", "json_object"}});
  EXPECT_NE(g.find("root ::="), std::string::npos) << g;
}

TEST(ResponseFormat, KeysComeInTheOrderOfRequiredThenByName) {
  const json schema = {{"type", "object"},
                       {"properties", {{"a", {{"type", "integer"}}}, {"zeta", {{"type", "integer"}}}, {"m", {{"type", "integer"}}}}},
                       {"required", {"zeta", "a"}}};
  const std::string g = grammar_for_response_format(schema_format(schema));
  const size_t zeta = g.find("\\\"zeta\\\""), a = g.find("\\\"a\\\""), m = g.find("\\\"m\\\"");
  ASSERT_NE(zeta, std::string::npos) << g;
  ASSERT_NE(a, std::string::npos) << g;
  ASSERT_NE(m, std::string::npos) << g;
  const size_t root = g.find("root ::=");
  const std::string root_rule = g.substr(root, g.find('\n', root) - root);
  EXPECT_LT(root_rule.find("zeta-kv"), root_rule.find("a-kv")) << root_rule;
  EXPECT_LT(root_rule.find("a-kv"), root_rule.find("m-kv")) << root_rule;
}

TEST(ResponseFormat, BadFormatsGetErrorsNamingTheField) {
  EXPECT_NE(error_of(json::array()).find("response_format must be an object"), std::string::npos);
  EXPECT_NE(error_of(json::object()).find("response_format.type"), std::string::npos);
  EXPECT_NE(error_of({{"type", "xml"}}).find("\"xml\""), std::string::npos);
  EXPECT_NE(error_of({{"type", "json_schema"}}).find("response_format.json_schema must be an object"), std::string::npos);
  EXPECT_NE(error_of({{"type", "json_object"}, {"extra", 1}}).find("unknown field 'extra'"), std::string::npos);
  EXPECT_NE(error_of({{"type", "json_schema"}, {"json_schema", {{"schema", 5}}}}).find("json_schema.schema"),
            std::string::npos);
  EXPECT_NE(error_of({{"type", "json_schema"}, {"json_schema", {{"schema", {{"type", "object"}}}, {"strict", "yes"}}}})
                .find("strict"),
            std::string::npos);
  // Keywords the grammar cannot enforce are refused, not dropped.
  EXPECT_NE(error_of(schema_format({{"type", "object"}, {"minProperties", 1}})).find("'minProperties' at # is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "object"}, {"properties", {{"x", {{"type", "number"}, {"minimum", 0}}}}}}))
                .find("'minimum' at #/properties/x is only supported with \"type\": \"integer\""),
            std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "string"}, {"format", "email"}})).find("'format' at #"), std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "string"}, {"pattern", "(?=a)b"}})).find("cannot be used"), std::string::npos);
  // Bounds the engine cannot unroll, or that nothing satisfies (the fuzzer's out-of-memory find).
  EXPECT_NE(error_of(schema_format({{"type", "string"}, {"minLength", 2}, {"maxLength", 1}})).find("'minLength' at # is above"),
            std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "string"}, {"maxLength", 100000}})).find("[0, 2000]"), std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "array"}, {"maxItems", -1}})).find("'maxItems'"), std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "string"}, {"pattern", "^a{3,2}$"}})).find("m > n"), std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "string"}, {"pattern", "^a{3, 1}$"}})).find("m > n"), std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "string"}, {"pattern", "^a{1, +5000}$"}})).find("above 2000"), std::string::npos);
  // Nesting and size are bounded before anything recurses (a deep body is an error, not a crash).
  json deep = {{"type", "string"}};
  for (int i = 0; i < 50000; ++i) deep = json{{"type", "array"}, {"items", std::move(deep)}};  // moved, never copied
  json deep_format = {{"type", "json_schema"}};
  deep_format["json_schema"]["schema"] = std::move(deep);
  EXPECT_NE(error_of(deep_format).find("nests deeper than"), std::string::npos);
  json wide = {{"type", "object"}, {"properties", json::object()}};
  for (int i = 0; i < 200; ++i) wide["properties"]["p" + std::to_string(i)] = {{"type", "integer"}};
  EXPECT_NE(error_of(schema_format(wide)).find("more than 128 entries"), std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "string"}, {"pattern", std::string(40, '(') + "a" + std::string(40, ')')}}))
                .find("nests groups deeper"),
            std::string::npos);
  EXPECT_NE(error_of(schema_format({{"type", "string"}, {"pattern", "^a{5000}$"}})).find("above 2000"), std::string::npos);
  EXPECT_EQ(error_of(schema_format({{"type", "string"}, {"pattern", "^a\\{5000}$"}})).find("above 2000"),
            std::string::npos);  // an escaped brace is no repetition
  // A schema the converter cannot express: a $ref to nothing.
  const std::string e = error_of(schema_format({{"$ref", "#/$defs/missing"}}));
  EXPECT_NE(e.find("the JSON schema cannot be used"), std::string::npos) << e;
}

// No blank outside strings.
bool compact(const std::string& text) {
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (ch == '\\') escaped = true;
      else if (ch == '"') in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r') {
      return false;
    }
  }
  return true;
}

struct Case {
  const char* name;
  json schema;
  std::function<void(const json&)> check;
};

std::vector<Case> cases() {
  return {
      {"object_with_bounds",
       {{"type", "object"},
        {"properties", {{"name", {{"type", "string"}, {"maxLength", 12}}}, {"age", {{"type", "integer"}, {"minimum", 0}, {"maximum", 120}}}}},
        {"required", {"name", "age"}},
        {"additionalProperties", false}},
       [](const json& v) {
         ASSERT_TRUE(v.at("name").is_string());
         EXPECT_LE(v.at("name").get<std::string>().size(), 12u * 4);  // maxLength counts characters
         ASSERT_TRUE(v.at("age").is_number_integer());
         EXPECT_GE(v.at("age").get<int64_t>(), 0);
         EXPECT_LE(v.at("age").get<int64_t>(), 120);
         EXPECT_EQ(v.size(), 2u);
       }},
      {"enum_and_const",
       {{"type", "object"},
        {"properties", {{"color", {{"enum", {"red", "green", "blue"}}}}, {"kind", {{"const", "fruit"}}}}},
        {"required", {"color", "kind"}},
        {"additionalProperties", false}},
       [](const json& v) {
         const std::string c = v.at("color").get<std::string>();
         EXPECT_TRUE(c == "red" || c == "green" || c == "blue") << c;
         EXPECT_EQ(v.at("kind"), "fruit");
       }},
      {"array_max_items",
       {{"type", "object"},
        {"properties", {{"tags", {{"type", "array"}, {"items", {{"type", "string"}, {"maxLength", 8}}}, {"maxItems", 3}}}}},
        {"required", {"tags"}},
        {"additionalProperties", false}},
       [](const json& v) {
         ASSERT_TRUE(v.at("tags").is_array());
         EXPECT_LE(v.at("tags").size(), 3u);
         for (const json& t : v.at("tags")) EXPECT_TRUE(t.is_string());
       }},
      {"nested_numbers",
       {{"type", "object"},
        {"properties",
         {{"point",
           {{"type", "object"},
            {"properties", {{"x", {{"type", "integer"}, {"minimum", -10}, {"maximum", 10}}}, {"y", {{"type", "number"}}}}},
            {"required", {"x", "y"}},
            {"additionalProperties", false}}},
          {"ok", {{"type", "boolean"}}}}},
        {"required", {"point", "ok"}},
        {"additionalProperties", false}},
       [](const json& v) {
         ASSERT_TRUE(v.at("point").at("x").is_number_integer());
         EXPECT_GE(v.at("point").at("x").get<int64_t>(), -10);
         EXPECT_LE(v.at("point").at("x").get<int64_t>(), 10);
         EXPECT_TRUE(v.at("point").at("y").is_number());
         EXPECT_TRUE(v.at("ok").is_boolean());
       }},
      {"pattern",
       {{"type", "object"},
        {"properties", {{"code", {{"type", "string"}, {"pattern", "^[A-Z]{3}-[0-9]{2}$"}}}}},
        {"required", {"code"}},
        {"additionalProperties", false}},
       [](const json& v) {
         const std::string c = v.at("code").get<std::string>();
         ASSERT_EQ(c.size(), 6u) << c;
         for (int i = 0; i < 3; ++i) EXPECT_TRUE(c[i] >= 'A' && c[i] <= 'Z') << c;
         EXPECT_EQ(c[3], '-');
         EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(c[4])) && std::isdigit(static_cast<unsigned char>(c[5]))) << c;
       }},
  };
}

class GrammarOnVocabulary : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    tok_ = Tokenizer::load(GetParam() == "smollm2" ? test::smollm2_gguf() : test::stories_tok());
    for (int32_t s : {tok_->eos_id(), tok_->eot_id()})
      if (s >= 0) stops_.push_back(s);
    vocab_ = std::make_unique<GrammarVocabulary>(*tok_, stops_);
  }
  std::unique_ptr<Tokenizer> tok_;
  std::vector<int32_t> stops_;
  std::unique_ptr<GrammarVocabulary> vocab_;
};

TEST_P(GrammarOnVocabulary, RandomWalksUnderTheMaskAreValidJsonOfTheSchemasShape) {
  for (const Case& c : cases()) {
    const std::string gbnf = grammar_for_response_format(schema_format(c.schema));
    for (uint32_t seed = 1; seed <= 2; ++seed) {
      SCOPED_TRACE(std::string(c.name) + " seed " + std::to_string(seed));
      const Walk w = walk(*tok_, *vocab_, stops_, gbnf, seed);
      ASSERT_TRUE(w.ended) << "no stop token within the step limit";
      const std::string text = tok_->decode(w.tokens);
      json v;
      ASSERT_NO_THROW(v = json::parse(text)) << text;
      EXPECT_TRUE(compact(text)) << text;
      c.check(v);
    }
  }
  const std::string any = grammar_for_response_format({{"type", "json_object"}});
  for (uint32_t seed = 1; seed <= 2; ++seed) {
    const Walk w = walk(*tok_, *vocab_, stops_, any, seed);
    ASSERT_TRUE(w.ended);
    const std::string text = tok_->decode(w.tokens);
    json v;
    ASSERT_NO_THROW(v = json::parse(text)) << text;
    EXPECT_TRUE(v.is_object()) << text;
  }
}

TEST_P(GrammarOnVocabulary, TheStateIsAFunctionOfTheTokensAndMaskAgreesWithAllows) {
  const std::string gbnf = grammar_for_response_format(schema_format(cases()[0].schema));
  const Walk w = walk(*tok_, *vocab_, stops_, gbnf, 7);
  ASSERT_GE(w.tokens.size(), 4u);
  GrammarMatcher live(gbnf, *vocab_);
  std::vector<float> zeros(tok_->vocab_size(), 0.0f);
  for (size_t i = 0; i < w.tokens.size(); ++i) {
    // A matcher rebuilt from the tokens so far (as a worker taking the request over does).
    GrammarMatcher rebuilt(gbnf, *vocab_);
    for (size_t j = 0; j < i; ++j) rebuilt.accept(w.tokens[j]);
    std::vector<float> a = zeros, b = zeros;
    const size_t na = live.mask(a), nb = rebuilt.mask(b);
    ASSERT_EQ(na, nb) << "at token " << i;
    ASSERT_EQ(a, b) << "at token " << i;
    size_t allowed = 0;
    for (size_t t = 0; t < a.size(); t += 1) {
      const bool by_mask = !std::isinf(a[t]);
      if (t % 7 == 0) {
        ASSERT_EQ(by_mask, live.allows(static_cast<int32_t>(t))) << "token " << t << " at " << i;
      }
      allowed += by_mask;
    }
    EXPECT_EQ(allowed, na);
    EXPECT_GT(na, 0u);
    live.accept(w.tokens[i]);
  }
}

TEST_P(GrammarOnVocabulary, TheBestAllowedTokensGiveTheSameDrawsAsTheFullMask) {
  const std::string gbnf = grammar_for_response_format(schema_format(cases()[5 - 1].schema));
  const Walk w = walk(*tok_, *vocab_, stops_, gbnf, 11);
  GrammarMatcher m(gbnf, *vocab_);
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.0f, 3.0f);
  std::vector<float> logits(tok_->vocab_size()), full, best;
  for (size_t i = 0; i < std::min<size_t>(w.tokens.size(), 12); ++i) {  // 12 positions: seconds under ASan
    for (float& l : logits) l = noise(rng);
    for (const SamplingParams& p : {SamplingParams{0.0f, 1.0f, 0, 1}, SamplingParams{0.8f, 1.0f, 5, 3},
                                    SamplingParams{1.0f, 0.9f, 40, 9}}) {
      const int k = tokens_deciding_the_draw(p, false);
      ASSERT_GT(k, 0);
      for (uint64_t index = 0; index < 2; ++index)
        ASSERT_EQ(sample_token(m.masked(logits, full, 0), p, index), sample_token(m.masked(logits, best, k), p, index))
            << "at token " << i << " top_k " << p.top_k;
    }
    m.accept(w.tokens[i]);
  }
  EXPECT_EQ(tokens_deciding_the_draw(SamplingParams{0.0f, 1.0f, 0, 1}, true), 0);  // logprobs: the whole row
  EXPECT_EQ(tokens_deciding_the_draw(SamplingParams{1.0f, 1.0f, 0, 1}, false), 0);  // no top_k: the whole row
}

TEST_P(GrammarOnVocabulary, ATokenThatDoesNotFitIsRefusedAndStopWaitsForACompleteValue) {
  GrammarMatcher m(grammar_for_response_format({{"type", "json_object"}}), *vocab_);
  EXPECT_FALSE(m.complete());
  for (int32_t s : stops_) EXPECT_FALSE(m.allows(s));  // "" is not an object
  const std::vector<int32_t> x = tok_->encode("x");
  ASSERT_FALSE(x.empty());
  EXPECT_FALSE(m.allows(x.back()));
  EXPECT_THROW(m.accept(x.back()), std::runtime_error);
  for (int32_t t : tok_->encode("{}")) {  // a whole object, token by token
    if (!tok_->is_ordinary(t) || tok_->token_bytes(t, true).empty()) continue;  // SentencePiece's lone "▁"
    m.accept(t);
  }
  EXPECT_TRUE(m.complete());
  for (int32_t s : stops_) EXPECT_TRUE(m.allows(s));
}

// json_matches_schema (the check of tool-call arguments written without the grammar) accepts
// every value the grammar writes, whatever the key order and blanks, and refuses values outside
// the schema: the fixture's schemas without $ref (tool parameters cannot hold one), plus anyOf and
// allOf objects.
TEST_P(GrammarOnVocabulary, JsonMatchesSchemaAcceptsWhatTheGrammarWritesInAnyKeyOrder) {
  json schemas = json::parse(test::read_file(test::fixture("structured_outputs/schemas.json")));
  schemas.erase("defs_ref");
  schemas["any_of_object"] = json::parse(R"({"type": "object", "properties": {"opt": {"anyOf": [
      {"type": "object", "properties": {"limit": {"type": "integer"}, "query": {"type": "string", "maxLength": 8}},
       "required": ["query"], "additionalProperties": false}, {"type": "null"}]}}, "required": ["opt"], "additionalProperties": false})");
  schemas["all_of"] = json::parse(R"({"allOf": [{"type": "object", "properties": {"b": {"type": "integer"}}},
      {"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}}}]})");
  auto reversed = [](const nlohmann::ordered_json& v, auto&& self) -> nlohmann::ordered_json {
    if (v.is_array()) {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& e : v) out.push_back(self(e, self));
      return out;
    }
    if (!v.is_object()) return v;
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    std::vector<std::string> keys;
    for (const auto& [k, e] : v.items()) keys.push_back(k);
    for (auto it = keys.rbegin(); it != keys.rend(); ++it) out[*it] = self(v.at(*it), self);
    return out;
  };
  int checked = 0;
  for (const auto& [name, schema] : schemas.items()) {
    const std::string gbnf = grammar_for_json_schema(schema, name);
    for (uint32_t seed = 1; seed <= 3; ++seed) {
      const Walk w = walk(*tok_, *vocab_, stops_, gbnf, seed);
      if (!w.ended) continue;
      const auto v = nlohmann::ordered_json::parse(tok_->decode(w.tokens));
      EXPECT_TRUE(json_matches_schema(schema, v)) << name << ": " << v.dump();
      EXPECT_TRUE(json_matches_schema(schema, reversed(v, reversed))) << name << ": " << reversed(v, reversed).dump();
      ++checked;
    }
  }
  EXPECT_GE(checked, 25);
  const json any_of = schemas["any_of_object"];
  EXPECT_TRUE(json_matches_schema(any_of, nlohmann::ordered_json::parse(R"({"opt": {"limit": 3, "query": "x"}})")));
  EXPECT_TRUE(json_matches_schema(any_of, nlohmann::ordered_json::parse(R"({"opt": null})")));
  EXPECT_FALSE(json_matches_schema(any_of, nlohmann::ordered_json::parse(R"({"opt": {"limit": "3", "query": "x"}})")));
  EXPECT_FALSE(json_matches_schema(any_of, nlohmann::ordered_json::parse(R"({"opt": {"query": "much too long"}})")));
  EXPECT_FALSE(json_matches_schema(any_of, nlohmann::ordered_json::parse(R"({})")));
  EXPECT_TRUE(json_matches_schema(schemas["all_of"], nlohmann::ordered_json::parse(R"({"a": "x", "b": 2})")));
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, GrammarOnVocabulary, ::testing::Values("smollm2", "stories260K"));

}  // namespace
}  // namespace fleet
