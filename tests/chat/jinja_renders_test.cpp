// The model's own Jinja chat template, rendered by the vendored C++ engine, must equal jinja2's
// rendering as transformers' apply_chat_template does it (tests/fixtures/chat_templates/
// renders.json, by scripts/reference/chat_template_renders.py) for the 70 real templates of the
// pinned llama-cpp-python archive and SmolLM2's; where jinja2 raised (templates that need tool
// definitions, raise_exception on a conversation they refuse), the render must fail too, with
// a ChatTemplateError.
#include <gtest/gtest.h>

#include <iostream>
#include <map>

#include "chat/chat.h"
#include "chat_fixtures.h"

namespace fleet {
namespace {

// Templates (or single renders, "name/conversation/add_generation_prompt") whose C++ render is
// known to differ from jinja2's, each with the reason. Everything else must match exactly.
const std::map<std::string, std::string> kExcluded = {
};

struct Counts {
  int templates = 0, identical_templates = 0, refusing_templates = 0, excluded_templates = 0;
  int renders = 0, identical = 0, refused = 0, needs_tools = 0, excluded = 0, mismatched = 0;
};

TEST(JinjaChatTemplate, RendersEveryTemplateLikeJinja2) {
  const nlohmann::json ref = test::read_renders();
  ASSERT_EQ(ref.at("strftime_now").get<std::string>(), "2024-07-26T14:30:00");
  const std::string bos = ref.at("bos_token"), eos = ref.at("eos_token");
  const nlohmann::json& conversations = ref.at("conversations");
  Counts c;
  int archive = 0;
  for (const auto& t : ref.at("templates")) {
    const std::string name = t.at("name");
    archive += t.at("set") == "archive";
    ++c.templates;
    const bool template_excluded = kExcluded.count(name) > 0;
    ASSERT_FALSE(t.contains("compile_error")) << name;
    const std::string source = test::read_file(test::chat_fixture_path(t.at("file")));
    std::optional<ChatTemplate> tmpl;
    try {
      tmpl = ChatTemplate::from_jinja(source, bos, eos);
    } catch (const ChatTemplateError& e) {
      if (template_excluded) {
        ++c.excluded_templates;
        continue;
      }
      ADD_FAILURE() << name << ": " << e.what();
      continue;
    }
    bool all_identical = true, any_refused = false, any_excluded = template_excluded;
    for (const auto& r : t.at("renders")) {
      ++c.renders;
      const std::string conv = r.at("conversation");
      const bool agp = r.at("add_generation_prompt");
      const std::string id = name + "/" + conv + "/" + (agp ? "true" : "false");
      const bool excluded = template_excluded || kExcluded.count(id) > 0;
      ChatRenderOptions opt;
      opt.add_generation_prompt = agp;
      opt.now = test::pinned_now();
      std::optional<std::string> got;
      std::string error;
      std::optional<ChatTemplateError::Kind> kind;
      try {
        got = tmpl->render(test::messages_of(conversations.at(conv)), opt);
      } catch (const ChatTemplateError& e) {
        error = e.what();
        kind = e.kind();
      }
      if (excluded) {
        ++c.excluded;
        any_excluded = true;
        continue;
      }
      if (r.contains("error")) {
        EXPECT_FALSE(got.has_value()) << id << ": jinja2 raised " << r.at("error") << " but C++ rendered:\n" << *got;
        if (got) {
          ++c.mismatched, all_identical = false;
          continue;
        }
        ++c.refused, any_refused = true;
        // raise_exception(msg) in jinja2 is TemplateError(msg): the same refusal with the same
        // message. A TypeError here is iterating tools=None: refused as needing tools. An
        // UndefinedError is a variable apply_chat_template never passes (firefunction v2 reads
        // `functions` and `datetime`): a render error naming the expression.
        const std::string jinja2_error = r.at("error");
        const std::string raised = "TemplateError: ";
        if (jinja2_error.rfind(raised, 0) == 0) {
          EXPECT_EQ(kind, ChatTemplateError::Kind::kRaised) << id << ": " << error;
          EXPECT_EQ(error, "the chat template refused the conversation: " + jinja2_error.substr(raised.size())) << id;
        } else if (jinja2_error.rfind("TypeError: 'NoneType' object is not iterable", 0) == 0) {
          EXPECT_EQ(kind, ChatTemplateError::Kind::kNeedsTools) << id << ": " << error;
          ++c.needs_tools;
        } else {
          EXPECT_EQ(jinja2_error.rfind("UndefinedError: ", 0), 0u) << id << ": " << jinja2_error;
          EXPECT_EQ(kind, ChatTemplateError::Kind::kRender) << id << ": " << error;
          EXPECT_NE(error.find("on undefined values"), std::string::npos) << id << ": " << error;
        }
        continue;
      }
      const std::string want = r.at("rendered");
      if (got && *got == want) {
        ++c.identical;
        continue;
      }
      ++c.mismatched;
      all_identical = false;
      if (got) ADD_FAILURE() << id << ": differs from jinja2\n--- want ---\n" << want << "\n--- got ---\n" << *got;
      else ADD_FAILURE() << id << ": jinja2 rendered, C++ failed: " << error;
    }
    if (any_excluded) ++c.excluded_templates;
    else if (any_refused && all_identical) ++c.refusing_templates;
    else if (all_identical) ++c.identical_templates;
  }
  std::cout << "chat templates: " << c.templates << " (" << archive << " from the archive), all renders identical: "
            << c.identical_templates << ", identical or refused as jinja2 refused: " << c.refusing_templates
            << ", excluded: " << c.excluded_templates << "\nrenders: " << c.renders << ", identical: " << c.identical
            << ", refused (jinja2 refused too): " << c.refused << " (" << c.needs_tools << " as needing tools), excluded: " << c.excluded
            << ", mismatched: " << c.mismatched << "\n";
  EXPECT_EQ(archive, 70);
  EXPECT_EQ(c.mismatched, 0);
  EXPECT_EQ(c.identical + c.refused + c.excluded, c.renders);
  EXPECT_GE(c.identical, 800);
  EXPECT_EQ(c.needs_tools, 3 * 13);  // Hermes 2 Pro / 3 tool_use, Command R+ tool_use: every conversation
}

// Templates that iterate tools (tool_use variants) are refused as needing tools; a template's
// raise_exception reaches the caller with its own message.
TEST(JinjaChatTemplate, RefusalsAreClearErrors) {
  const std::vector<ChatMessage> with_system = {{"system", "Be brief."}, {"user", "Hi"}};
  const auto tmpl = [](const std::string& file) {
    return ChatTemplate::from_jinja(test::read_file(test::chat_fixture_path("templates/" + file)), "<s>", "</s>");
  };
  try {
    tmpl("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja").render(with_system);
    FAIL() << "no exception";
  } catch (const ChatTemplateError& e) {
    EXPECT_EQ(e.kind(), ChatTemplateError::Kind::kNeedsTools) << e.what();
    EXPECT_NE(std::string(e.what()).find("tool definitions"), std::string::npos) << e.what();
  }
  try {
    tmpl("google-gemma-2-2b-it.jinja").render(with_system);
    FAIL() << "no exception";
  } catch (const ChatTemplateError& e) {
    EXPECT_EQ(e.kind(), ChatTemplateError::Kind::kRaised) << e.what();
    EXPECT_EQ(std::string(e.what()), "the chat template refused the conversation: System role not supported");
  }
  try {
    tmpl("mistralai-Mistral-Nemo-Instruct-2407.jinja").render({{"user", "a"}, {"user", "b"}});
    FAIL() << "no exception";
  } catch (const ChatTemplateError& e) {
    EXPECT_EQ(e.kind(), ChatTemplateError::Kind::kRaised) << e.what();
    EXPECT_NE(std::string(e.what()).find("alternate"), std::string::npos) << e.what();
  }
}

TEST(JinjaChatTemplate, MalformedTemplatesAreSyntaxErrors) {
  for (const char* bad : {"{% for m in messages %}", "{{ messages[ }}", "{% if %}{% endif %}", "{{ 'unterminated }}",
                          "{% endfor %}", "{% raw %}"}) {
    try {
      ChatTemplate::from_jinja(bad, "", "").render({{"user", "x"}});
      ADD_FAILURE() << "no exception for " << bad;
    } catch (const ChatTemplateError& e) {
      EXPECT_TRUE(e.kind() == ChatTemplateError::Kind::kSyntax || e.kind() == ChatTemplateError::Kind::kRender)
          << bad << ": " << e.what();
    }
  }
}

TEST(JinjaChatTemplate, StrftimeNowUsesThePinnedDateAndMessageFieldsReachTheTemplate) {
  const ChatTemplate t = ChatTemplate::from_jinja(
      "{{ strftime_now('%d %b %Y') }}|{{ bos_token }}{{ eos_token }}|{% for m in messages %}{{ m.role }}:{{ m.name }};"
      "{% endfor %}{{ add_generation_prompt }}",
      "<B>", "<E>");
  ChatMessage m{"user", "x"};
  m.extra["name"] = "ann";
  ChatRenderOptions opt;
  opt.now = test::pinned_now();
  opt.add_generation_prompt = false;
  EXPECT_EQ(t.render({m}, opt), "26 Jul 2024|<B><E>|user:ann;False");
}

// SmolLM2-135M-Instruct's own template (its GGUF's tokenizer.chat_template) inserts its default
// system prompt when the conversation has none.
TEST(JinjaChatTemplate, SmolLM2InsertsItsDefaultSystemPrompt) {
  const ChatTemplate t = ChatTemplate::from_jinja(
      test::read_file(test::chat_fixture_path("extra/SmolLM2-135M-Instruct.jinja")), "<|im_start|>", "<|im_end|>");
  EXPECT_EQ(t.render({{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.render({{"system", "S"}, {"user", "Hi"}}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace fleet
