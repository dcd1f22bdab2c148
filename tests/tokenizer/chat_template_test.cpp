// Chat templates: recognised from their Jinja source, rendered exactly as Jinja renders
// them (expected text made by scripts/reference/tokenizer_reference.py with jinja2).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "tokenizer/tokenizer.h"
#include "tokenizer_fixtures.h"

namespace fleet {
namespace {

TEST(ChatTemplate, RendersLikeJinjaForEveryKnownTemplate) {
  const auto rows = test::read_jsonl("chat_renders.jsonl");
  ASSERT_GE(rows.size(), 30u);
  std::set<std::string> seen;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const ChatTemplate t = ChatTemplate::recognise(r.at("source").get<std::string>());
    EXPECT_EQ(t.name(), r.at("template").get<std::string>()) << "row " << i;
    std::vector<ChatMessage> messages;
    for (const auto& m : r.at("messages")) messages.push_back({m.at("role"), m.at("content")});
    EXPECT_EQ(t.render(messages, r.at("add_generation_prompt").get<bool>()), r.at("rendered").get<std::string>())
        << "row " << i << " (" << t.name() << ")";
    seen.insert(t.name());
  }
  EXPECT_EQ(seen, (std::set<std::string>{"chatml", "llama3", "llama2", "mistral"}));
}

TEST(ChatTemplate, Qwen3ConfigIsChatMLAndPromptEncodesWithSpecialTokens) {
  const ChatTemplate t = ChatTemplate::from_tokenizer_config(test::qwen3_dir());
  EXPECT_EQ(t.kind(), ChatTemplateKind::kChatML);
  auto tok = Tokenizer::load(test::qwen3_dir());
  EXPECT_EQ(ChatTemplate::recognise(tok->chat_template_source()).kind(), ChatTemplateKind::kChatML);
  const std::string prompt = t.render({{"user", "Hi"}});
  EXPECT_EQ(prompt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const auto ids = tok->encode(prompt, {.allow_special = true});
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151645), 1);  // <|im_end|>
}

TEST(ChatTemplate, UnknownTemplateIsAClearError) {
  try {
    ChatTemplate::recognise("{% for m in messages %}<|user|>{{ m.content }}{% endfor %}");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown chat template"), std::string::npos);
  }
  const std::string dir = test::test_out_dir() + "/no_template";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer_config.json") << R"({"bos_token": "<s>"})";
  EXPECT_THROW(ChatTemplate::from_tokenizer_config(dir), std::runtime_error);
  EXPECT_THROW(ChatTemplate::from_tokenizer_config(dir + "/missing"), std::runtime_error);
}

TEST(ChatTemplate, Llama2RejectsNonAlternatingRoles) {
  const auto rows = test::read_jsonl("chat_renders.jsonl");
  for (const auto& r : rows) {
    if (r.at("template") != "llama2") continue;
    const ChatTemplate t = ChatTemplate::recognise(r.at("source").get<std::string>());
    EXPECT_THROW(t.render({{"user", "a"}, {"user", "b"}}), std::runtime_error);
    EXPECT_THROW(t.render({{"tool", "a"}}), std::runtime_error);
    return;
  }
  FAIL() << "no llama2 row in chat_renders.jsonl";
}

}  // namespace
}  // namespace fleet
