// Built-in chat template families (the fallback for models without a template): rendered
// exactly as jinja2 renders those families' templates (tests/fixtures/tokenizer/chat_renders.jsonl).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "chat/chat.h"
#include "chat_fixtures.h"
#include "tokenizer/tokenizer.h"

namespace fleet {
namespace {

TEST(BuiltinChatTemplate, RendersLikeJinjaForEveryKnownFamily) {
  const auto rows = test::read_builtin_renders();
  ASSERT_GE(rows.size(), 30u);
  std::set<std::string> seen;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const BuiltinChatTemplate t = BuiltinChatTemplate::recognise(r.at("source").get<std::string>());
    EXPECT_EQ(t.name(), r.at("template").get<std::string>()) << "row " << i;
    EXPECT_EQ(t.render(test::messages_of(r.at("messages")), r.at("add_generation_prompt").get<bool>()),
              r.at("rendered").get<std::string>())
        << "row " << i << " (" << t.name() << ")";
    seen.insert(t.name());
  }
  EXPECT_EQ(seen, (std::set<std::string>{"chatml", "llama3", "llama2", "mistral"}));
}

TEST(BuiltinChatTemplate, UnknownTemplateIsAClearError) {
  try {
    BuiltinChatTemplate::recognise("{% for m in messages %}<|user|>{{ m.content }}{% endfor %}");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown chat template"), std::string::npos);
  }
}

TEST(BuiltinChatTemplate, Llama2RejectsNonAlternatingRolesAndUnknownRoles) {
  const BuiltinChatTemplate t(BuiltinChatFamily::kLlama2);
  EXPECT_THROW(t.render({{"user", "a"}, {"user", "b"}}), std::runtime_error);
  EXPECT_THROW(t.render({{"tool", "a"}}), std::runtime_error);
  const ChatTemplate wrapped = ChatTemplate::from_builtin(BuiltinChatFamily::kLlama2);
  try {
    wrapped.render({{"user", "a"}, {"user", "b"}});
    FAIL() << "no exception";
  } catch (const ChatTemplateError& e) {
    EXPECT_EQ(e.kind(), ChatTemplateError::Kind::kRaised);
    EXPECT_NE(std::string(e.what()).find("alternate"), std::string::npos) << e.what();
  }
}

// A model whose tokenizer carries no template and has no chat_template.jinja falls back to a
// built-in family chosen by its vocabulary (Qwen3's tokenizer.json: ChatML).
TEST(ChatTemplateSource, FallsBackToABuiltinFamilyByVocabulary) {
  ASSERT_TRUE(std::filesystem::exists(test::qwen3_dir() + "/tokenizer.json")) << "scripts/fetch-tokenizers provides it";
  const std::string dir = test::test_out_dir() + "/qwen3_no_template";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(test::qwen3_dir() + "/tokenizer.json", dir + "/tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(dir + "/chat_template.jinja");
  auto tok = Tokenizer::load(dir);
  ASSERT_TRUE(tok->chat_template_source().empty());
  const ChatTemplate t = chat_template_for(*tok, dir);
  EXPECT_FALSE(t.is_jinja());
  EXPECT_EQ(t.name(), "chatml");
  const std::string prompt = t.render({{"user", "Hi"}});
  EXPECT_EQ(prompt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const auto ids = tok->encode(prompt, {.allow_special = true});
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151645), 1);  // <|im_end|>

  // chat_template.jinja beside the tokenizer wins over the fallback.
  std::ofstream(dir + "/chat_template.jinja") << "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}";
  const ChatTemplate j = chat_template_for(*tok, dir);
  EXPECT_TRUE(j.is_jinja());
  EXPECT_EQ(j.render({{"user", "Hi"}}), "[user]Hi");
  std::filesystem::remove(dir + "/chat_template.jinja");
}

TEST(ChatTemplateSource, TokenizerTemplateComesFirst) {
  ASSERT_TRUE(std::filesystem::exists(test::qwen3_dir() + "/tokenizer.json")) << "scripts/fetch-tokenizers provides it";
  auto tok = Tokenizer::load(test::qwen3_dir());
  ASSERT_FALSE(tok->chat_template_source().empty()) << "no tokenizer_config.json beside Qwen3's tokenizer.json";
  const ChatTemplate t = chat_template_for(*tok, test::qwen3_dir());
  EXPECT_TRUE(t.is_jinja());
  EXPECT_EQ(t.source(), tok->chat_template_source());
  EXPECT_EQ(t.render({{"user", "Hi"}}), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace fleet
