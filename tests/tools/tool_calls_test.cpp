// Function calling around the model (issue 17): tool definitions are checked; templates that
// ignore tools get fleet's Hermes block; each template's call format is recognised; a forced call
// (tool_choice "required" or named) is a sentence of the grammar that the parser reads back as
// calls to allowed tools with arguments of their schema, in every format; anything else is content.
#include <gtest/gtest.h>

#include <map>

#include <nlohmann/json.hpp>

#include "chat/chat.h"
#include "chat/chat_fixtures.h"
#include "grammar/grammar_walk.h"
#include "grammar/tool_call_grammar.h"
#include "test_support.h"
#include "tools/tool_calls.h"

namespace fleet {
namespace {

using json = nlohmann::json;

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                   "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "add", "description": "Adds two integers",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer", "minimum": -100, "maximum": 100},
                   "b": {"type": "integer", "minimum": -100, "maximum": 100}}, "required": ["a", "b"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "now", "description": "The current time"}}
])");


std::string tools_error(const json& tools, const json& choice) {
  try {
    check_tools(tools, choice);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(ToolDefinitions, BadToolsAndChoicesGetErrorsNamingTheField) {
  EXPECT_EQ(tools_error(kTools, "auto"), "");
  EXPECT_EQ(tools_error(kTools, {{"type", "function"}, {"function", {{"name", "add"}}}}), "");
  EXPECT_EQ(tools_error(nullptr, "none"), "");
  const std::vector<std::pair<json, std::string>> bad_tools = {
      {json::object(), "tools must be an array"},
      {json::array({{{"type", "function"}}}), "tools[0].function must be an object"},
      {json::array({{{"type", "retrieval"}, {"function", {{"name", "x"}}}}}), "tools[0].type must be \"function\""},
      {json::array({{{"type", "function"}, {"function", {{"name", "has space"}}}}}), "tools[0].function.name must be 1 to 64"},
      {json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}, {{"type", "function"}, {"function", {{"name", "f"}}}}}),
       "tools[1].function.name \"f\" is defined twice"},
      {json::array({{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}, {"properties", {{"x", {{"$ref", "#/$defs/y"}}}}}}}}}}}),
       "\"$ref\" is not supported"},
      {json::array({{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}, {"properties", {{"x", {{"type", "number"}, {"multipleOf", 2}}}}}}}}}}}),
       "tools[0].function.parameters: the JSON schema cannot be used: 'multipleOf'"},
      {json::array({{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "string"}}}}}}}),
       "must be a JSON Schema of type \"object\""},
      {json::array({{{"type", "function"}, {"function", {{"name", "f"}, {"colour", "red"}}}}}), "tools[0].function.colour: unknown field"},
  };
  for (const auto& [tools, want] : bad_tools) EXPECT_NE(tools_error(tools, nullptr).find(want), std::string::npos) << tools_error(tools, nullptr);
  EXPECT_NE(tools_error(kTools, "sometimes").find("tool_choice must be"), std::string::npos);
  EXPECT_NE(tools_error(nullptr, "required").find("needs tools"), std::string::npos);
  EXPECT_NE(tools_error(kTools, {{"type", "function"}, {"function", {{"name", "sub"}}}}).find("\"sub\", which is not among the tools"),
            std::string::npos);
  EXPECT_NE(tools_error(kTools, {{"type", "function"}}).find("tool_choice must be"), std::string::npos);
}

TEST(ToolCallParser, ReadsEveryFormatAndLeavesAnythingElseAsContent) {
  ParsedToolCalls p = parse_tool_calls("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"b\": 2, \"a\": 1}}\n</tool_call>", kTools, "r1");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.content, "");
  EXPECT_EQ(p.calls[0].name, "add");
  EXPECT_EQ(p.calls[0].arguments, "{\"b\":2,\"a\":1}");  // compact, in the model's order
  EXPECT_EQ(p.calls[0].id.rfind("call_", 0), 0u);
  EXPECT_EQ(p.calls[0].id.size(), 21u);
  const ParsedToolCalls again = parse_tool_calls("<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>", kTools, "r1");
  ASSERT_EQ(again.calls.size(), 1u);
  EXPECT_EQ(again.calls[0].id, p.calls[0].id);  // derived from the request id and the call's place
  const ParsedToolCalls other = parse_tool_calls("<tool_call>{\"name\":\"now\",\"arguments\":{}}</tool_call>", kTools, "r2");
  ASSERT_EQ(other.calls.size(), 1u);
  EXPECT_NE(other.calls[0].id, p.calls[0].id);

  p = parse_tool_calls("Let me check.\n<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call>\n<tool_call>\n"
                       "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\",\"unit\":\"celsius\"}}\n</tool_call>",
                       kTools, "r3");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.content, "Let me check.");
  EXPECT_EQ(p.calls[1].name, "get_weather");
  EXPECT_NE(p.calls[0].id, p.calls[1].id);

  p = parse_tool_calls("[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}, {\"name\": \"now\", \"arguments\": {}}]", kTools, "r");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].arguments, "{\"a\":1,\"b\":2}");
  p = parse_tool_calls("{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}", kTools, "r");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments, "{\"a\":1,\"b\":2}");
  EXPECT_EQ(parse_tool_calls("<|python_tag|>{\"name\": \"now\", \"parameters\": {}}", kTools, "r").calls.size(), 1u);

  // Cut at max_tokens: the complete calls before the cut.
  const std::string two = "<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call>\n<tool_call>\n{\"name\":\"add\",\"argu";
  EXPECT_TRUE(parse_tool_calls(two, kTools, "r").calls.empty());
  p = parse_tool_calls(two, kTools, "r", /*cut=*/true);
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "now");
  EXPECT_TRUE(parse_tool_calls("<tool_call>\n{\"name\":\"now\",\"argu", kTools, "r", true).calls.empty());

  // A closing tag inside an argument string does not end the call; a Mistral array whose
  // [TOOL_CALLS] control token decoded to nothing is still calls; content keeps its leading blanks.
  p = parse_tool_calls("<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"a</tool_call>b\",\"unit\":\"celsius\"}}\n</tool_call>",
                       kTools, "r");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments, "{\"city\":\"a</tool_call>b\",\"unit\":\"celsius\"}");
  EXPECT_EQ(parse_tool_calls("[{\"name\": \"now\", \"arguments\": {}}]", kTools, "r").calls.size(), 1u);
  EXPECT_EQ(parse_tool_calls("\n Hi \n<tool_call>{\"name\":\"now\",\"arguments\":{}}</tool_call>", kTools, "r").content, "\n Hi");
  std::string deep = "{\"name\":\"now\",\"arguments\":{\"x\":" + std::string(5000, '[') + std::string(5000, ']') + "}}";
  EXPECT_TRUE(parse_tool_calls(deep, kTools, "r").calls.empty());  // refused before anything recurses

  // Not calls: the whole text is content.
  for (const std::string text : {"The answer is 3.", "<tool_call>\n{\"name\": \"sub\", \"arguments\": {}}\n</tool_call>",
                                 "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1\n</tool_call>",
                                 "<tool_call>\n{\"name\": \"add\", \"arguments\": [1, 2]}\n</tool_call>",
                                 "<tool_call>{\"name\":\"now\",\"arguments\":{}}</tool_call> and then some prose",
                                 "{\"name\": \"add\"}", "{\"city\": \"Oslo\"}", "[TOOL_CALLS] not json", ""}) {
    p = parse_tool_calls(text, kTools, "r");
    EXPECT_TRUE(p.calls.empty()) << text;
    EXPECT_EQ(p.content, text);
  }
  EXPECT_TRUE(parse_tool_calls("<tool_call>{\"name\":\"now\",\"arguments\":{}}</tool_call>", nullptr, "r").calls.empty());
  // Arguments that break the tool's schema (as its grammar enforces it) are no call either; key
  // order and blanks do not matter.
  for (const std::string args : {"{\"a\": 1}", "{\"a\": 1, \"b\": 1000}", "{\"a\": 1, \"b\": 2, \"c\": 3}", "{\"a\": \"1\", \"b\": 2}"})
    EXPECT_TRUE(parse_tool_calls("<tool_call>{\"name\":\"add\",\"arguments\":" + args + "}</tool_call>", kTools, "r").calls.empty()) << args;
  EXPECT_EQ(parse_tool_calls("<tool_call>{\"name\":\"add\",\"arguments\":{ \"b\" : 2,\n \"a\": -3 }}</tool_call>", kTools, "r").calls.size(), 1u);
  EXPECT_EQ(parse_tool_calls("{\"name\": \"get_weather\", \"parameters\": {\"unit\": \"celsius\", \"city\": \"Oslo\"}}", kTools, "r").calls.size(), 1u);
  EXPECT_TRUE(parse_tool_calls("{\"name\": \"get_weather\", \"parameters\": {\"unit\": \"kelvin\", \"city\": \"Oslo\"}}", kTools, "r").calls.empty());
}

ChatTemplate archive_template(const std::string& file) {
  return ChatTemplate::from_jinja(test::read_file(std::string(FLEET_SOURCE_ROOT) + "/tests/fixtures/chat_templates/" + file),
                                  "<s>", "</s>");
}

ToolCallFormat format_of(const ChatTemplate& t) { return tool_call_format(t, template_renders_tools(t)); }

TEST(ToolCallFormat, EachTemplateCallsToolsInItsOwnFormatOrFleetsHermesBlock) {
  EXPECT_EQ(format_of(archive_template("templates/Qwen-Qwen2.5-7B-Instruct.jinja")), ToolCallFormat::kHermes);
  EXPECT_EQ(format_of(archive_template("templates/NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja")), ToolCallFormat::kHermes);
  EXPECT_EQ(format_of(archive_template("templates/meta-llama-Llama-3.1-8B-Instruct.jinja")), ToolCallFormat::kLlama3Json);
  EXPECT_EQ(format_of(archive_template("templates/meta-llama-Llama-3.3-70B-Instruct.jinja")), ToolCallFormat::kLlama3Json);
  EXPECT_EQ(format_of(archive_template("templates/mistralai-Mistral-Nemo-Instruct-2407.jinja")), ToolCallFormat::kMistral);
  const ChatTemplate smol = archive_template("extra/SmolLM2-135M-Instruct.jinja");
  EXPECT_FALSE(template_renders_tools(smol));
  EXPECT_EQ(tool_call_format(smol, false), ToolCallFormat::kHermes);  // fleet's block
  EXPECT_EQ(tool_call_format(ChatTemplate::from_builtin(BuiltinChatFamily::kChatML), template_renders_tools(ChatTemplate::from_builtin(BuiltinChatFamily::kChatML))), ToolCallFormat::kHermes);
  try {
    format_of(archive_template("templates/openai-gpt-oss-120b.jinja"));  // its own channel format
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.chat_template"), std::string::npos) << e.what();
  }
}

// SmolLM2's template ignores tools: the prompt carries fleet's block (Qwen2.5's wording) in the
// system turn, earlier calls as <tool_call> lines and results as <tool_response> user turns.
TEST(ToolPrompt, TemplatesThatIgnoreToolsGetFleetsHermesBlock) {
  const ChatTemplate smol = archive_template("extra/SmolLM2-135M-Instruct.jinja");
  const json one_tool = json::array({kTools[1]});
  std::vector<ChatMessage> msgs = {
      {"system", "Be brief."},
      {"user", "What is 2+3?"},
      chat_message("assistant", "", {{"content", nullptr},
                                     {"tool_calls", {{{"id", "call_1"}, {"type", "function"},
                                                      {"function", {{"name", "add"}, {"arguments", "{\"a\": 2, \"b\": 3}"}}}}}}}),
      chat_message("tool", "5", {{"tool_call_id", "call_1"}}),
  };
  ChatInput in = chat_input_with_tools(msgs, one_tool, template_renders_tools(smol));
  EXPECT_TRUE(in.tools.is_null());
  ChatRenderOptions opt;
  opt.tools = in.tools;
  EXPECT_EQ(smol.render(in.messages, opt),
            "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            "{\"type\":\"function\",\"function\":{\"name\":\"add\",\"description\":\"Adds two integers\",\"parameters\":"
            "{\"additionalProperties\":false,\"properties\":{\"a\":{\"maximum\":100,\"minimum\":-100,\"type\":\"integer\"},"
            "\"b\":{\"maximum\":100,\"minimum\":-100,\"type\":\"integer\"}},\"required\":[\"a\",\"b\"],\"type\":\"object\"}}}\n"
            "</tools>\n\nFor each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
            "</tool_call><|im_end|>\n<|im_start|>user\nWhat is 2+3?<|im_end|>\n"
            "<|im_start|>assistant\n<tool_call>\n{\"name\":\"add\",\"arguments\":{\"a\":2,\"b\":3}}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n<|im_start|>assistant\n");
  // A template that renders tools gets them itself, and the messages as they are.
  const ChatTemplate qwen = archive_template("templates/Qwen-Qwen2.5-7B-Instruct.jinja");
  in = chat_input_with_tools(msgs, one_tool, template_renders_tools(qwen));
  ASSERT_TRUE(in.tools.is_array());
  EXPECT_EQ(in.tools[0]["function"]["name"], "add");
  EXPECT_EQ(in.messages.size(), msgs.size());
  opt.tools = in.tools;
  const std::string q = qwen.render(in.messages, opt);
  EXPECT_NE(q.find("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call>"), std::string::npos) << q;
  EXPECT_NE(q.find("<tool_response>\n5\n</tool_response>"), std::string::npos) << q;
}

// Templates that render tools, given tool definitions, a call and its result, must render as
// jinja2 does the way transformers' apply_chat_template(messages, tools=...) renders them
// (tests/fixtures/chat_templates/renders.json "tool_renders", by
// scripts/reference/chat_template_renders.py); where jinja2 raised, fleet must refuse too.
// Where jinja2 and the C++ engine (llama.cpp's) differ by design, each with the reason.
const std::map<std::string, std::string> kEngineDifferences = {
    {"Kimi-K2-Instruct/tools_call_and_result", "jinja2's sandbox refuses list.append (transformers cannot render it)"},
    {"Kimi-K2-Instruct/tools_answered", "jinja2's sandbox refuses list.append"},
    {"Kimi-K2-Thinking/tools_call_and_result", "jinja2's sandbox refuses list.append"},
    {"Kimi-K2-Thinking/tools_answered", "jinja2's sandbox refuses list.append"},
    {"meetkai-functionary-medium-v3.1/tools_ask", "jinja2's Markup: '...'|safe + text HTML-escapes the text; no Markup type in C++"},
    {"meetkai-functionary-medium-v3.1/tools_call_and_result", "jinja2's Markup (as above)"},
    {"meetkai-functionary-medium-v3.1/tools_answered", "jinja2's Markup (as above)"},
    {"meetkai-functionary-medium-v3.2/tools_call_and_result", "str + dict: jinja2 raises TypeError, the C++ engine concatenates"},
    {"meetkai-functionary-medium-v3.2/tools_answered", "str + dict (as above)"},
    // The probe (a user turn with one tool): jinja2 raises, the C++ engine renders undefined as empty.
    {"CohereForAI-c4ai-command-r-plus-tool_use", "reads tool.description (Cohere's own tool shape): jinja2 UndefinedError"},
    {"llama-cpp-deepseek-r1", "tojson of a generator: jinja2 TypeError"},
};

TEST(ToolPrompt, ToolAwareTemplatesRenderLikeTransformers) {
  const json ref = test::read_renders();
  ASSERT_TRUE(ref.at("tools").is_array());
  int templates = 0, renders = 0, identical = 0, refused = 0, mismatched = 0, excluded = 0, probe_agrees = 0;
  for (const json& t : ref.at("templates")) {
    const ChatTemplate tmpl = ChatTemplate::from_jinja(test::read_file(test::chat_fixture_path(t.at("file"))),
                                                       ref.at("bos_token"), ref.at("eos_token"));
    const bool renders_tools = t.value("renders_tools", false);
    probe_agrees += template_renders_tools(tmpl) == renders_tools;
    if (!kEngineDifferences.count(t.at("name"))) {
      EXPECT_EQ(template_renders_tools(tmpl), renders_tools) << t.at("name");
    }
    if (!renders_tools) continue;
    ++templates;
    for (const json& r : t.at("tool_renders")) {
      ++renders;
      const std::string id = t.at("name").get<std::string>() + "/" + r.at("conversation").get<std::string>();
      if (kEngineDifferences.count(id)) {
        ++excluded;
        continue;
      }
      std::vector<ChatMessage> msgs;
      for (const json& m : ref.at("tool_conversations").at(r.at("conversation").get<std::string>()))
        msgs.push_back(chat_message(m.at("role"), m.at("content").is_string() ? m.at("content").get<std::string>() : "", m));
      std::optional<std::string> got;
      std::string error;
      try {
        ChatInput in = chat_input_with_tools(msgs, ref.at("tools"), template_renders_tools(tmpl));
        ChatRenderOptions opt;
        opt.now = test::pinned_now();
        opt.tools = in.tools;
        got = tmpl.render(in.messages, opt);
      } catch (const ChatTemplateError& e) {
        error = e.what();
      }
      if (r.contains("error")) {
        EXPECT_FALSE(got) << id << ": jinja2 raised " << r.at("error") << " but fleet rendered:\n" << *got;
        (got ? mismatched : refused) += 1;
      } else if (got && *got == r.at("rendered").get<std::string>()) {
        ++identical;
      } else {
        ++mismatched;
        ADD_FAILURE() << id << (got ? ": differs from jinja2\n--- want ---\n" + r.at("rendered").get<std::string>() + "\n--- got ---\n" + *got
                                    : ": jinja2 rendered, fleet failed: " + error);
      }
    }
  }
  std::printf("templates rendering tools: %d; renders with tools: %d, identical: %d, refused where jinja2 refused: %d, "
              "engine differences (listed): %d, mismatched: %d; the probe agrees with jinja2's on %d of %zu templates\n",
              templates, renders, identical, refused, excluded, mismatched, probe_agrees, ref.at("templates").size());
  EXPECT_EQ(mismatched, 0);
  EXPECT_EQ(identical + refused + excluded, renders);
  EXPECT_GE(templates, 50);
  EXPECT_GE(identical, 150);
}

// Forced calls in every format: random walks under the grammar on SmolLM2's vocabulary are read
// back as calls to the allowed tools, with arguments of their schemas.
TEST(ToolCallGrammar, ForcedCallsParseAsCallsToAllowedToolsInEveryFormat) {
  auto tok = Tokenizer::load(test::smollm2_gguf());
  std::vector<int32_t> stops = {tok->eos_id()};
  if (tok->eot_id() >= 0 && tok->eot_id() != tok->eos_id()) stops.push_back(tok->eot_id());
  GrammarVocabulary vocab(*tok, stops);
  const json named = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  EXPECT_EQ(grammar_for_tool_choice(kTools, "auto", true, ToolCallFormat::kHermes), "");
  // Names that spell "root" are no problem for the wrapper around the converter's grammar.
  const json rooted = json::parse(R"([{"type": "function", "function": {"name": "get_root", "parameters": {"type": "object",
      "properties": {"root": {"enum": ["/root"]}, "root_dir": {"type": "string"}}, "required": ["root"]}}}])");
  GrammarMatcher rm(grammar_for_tool_choice(rooted, "required", false, ToolCallFormat::kHermes), vocab);
  for (int32_t t : tok->encode("<tool_call>\n{\"name\":\"get_root\",\"arguments\":{\"root\":\"/root\"}}\n</tool_call>", {})) {
    ASSERT_TRUE(rm.allows(t));
    rm.accept(t);
  }
  EXPECT_TRUE(rm.complete());
  EXPECT_EQ(grammar_for_tool_choice(kTools, "none", true, ToolCallFormat::kHermes), "");
  int calls_seen = 0, multi = 0;
  for (ToolCallFormat f : {ToolCallFormat::kHermes, ToolCallFormat::kLlama3Json, ToolCallFormat::kMistral}) {
    for (const json& choice : {json("required"), named}) {
      for (bool parallel : {false, true}) {
        const std::string gbnf = grammar_for_tool_choice(kTools, choice, parallel, f);
        for (uint32_t seed = 1; seed <= 3; ++seed) {
          SCOPED_TRACE(std::string(tool_call_format_name(f)) + " " + choice.dump() + (parallel ? " parallel" : "") +
                       " seed " + std::to_string(seed));
          const Walk w = walk(*tok, vocab, stops, gbnf, seed, 400);
          ASSERT_TRUE(w.ended);
          const std::string text = tok->decode(w.tokens);
          const ParsedToolCalls p = parse_tool_calls(text, kTools, "id");
          ASSERT_FALSE(p.calls.empty()) << text;
          EXPECT_EQ(p.content, "");
          if (!parallel || choice.is_object()) {
            EXPECT_EQ(p.calls.size(), 1u) << text;
          }
          multi += p.calls.size() > 1;
          for (const ToolCall& c : p.calls) {
            ++calls_seen;
            if (choice.is_object()) {
              EXPECT_EQ(c.name, "get_weather");
            }
            const json args = json::parse(c.arguments);
            if (c.name == "get_weather") {
              EXPECT_LE(args.at("city").get<std::string>().size(), 80u);
              EXPECT_TRUE(args.at("unit") == "celsius" || args.at("unit") == "fahrenheit") << text;
              EXPECT_EQ(args.size(), 2u);
            } else if (c.name == "add") {
              EXPECT_GE(args.at("a").get<int>(), -100);
              EXPECT_LE(args.at("b").get<int>(), 100);
            } else {
              EXPECT_EQ(c.name, "now");
              EXPECT_TRUE(args.is_object());
            }
          }
        }
      }
    }
  }
  std::printf("%d forced calls read back (%d answers with several)\n", calls_seen, multi);

  // Several calls in one answer: the grammar takes them only with parallel_tool_calls.
  const std::vector<std::pair<ToolCallFormat, std::string>> two_calls = {
      {ToolCallFormat::kHermes, "<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call>\n<tool_call>\n"
                                "{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}\n</tool_call>"},
      {ToolCallFormat::kMistral, "[TOOL_CALLS][{\"name\":\"now\",\"arguments\":{}},{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}]"}};
  for (const auto& [f, text] : two_calls) {
    for (bool parallel : {true, false}) {
      GrammarMatcher m(grammar_for_tool_choice(kTools, "required", parallel, f), vocab);
      bool taken = true;
      for (int32_t t : tok->encode(text, {})) {
        if (!m.allows(t)) {
          taken = false;
          break;
        }
        m.accept(t);
      }
      EXPECT_EQ(taken && m.complete(), parallel) << tool_call_format_name(f) << (parallel ? " parallel" : "");
    }
    EXPECT_EQ(parse_tool_calls(text, kTools, "id").calls.size(), 2u);
  }
}

}  // namespace
}  // namespace fleet
