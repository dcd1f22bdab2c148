// SmolLM2-135M-Instruct's GGUF carries its template (tokenizer.chat_template): a chat prompt
// without a system message gets the model's default system prompt, as jinja2 renders it.
#include <gtest/gtest.h>

#include <filesystem>

#include "chat/chat.h"
#include "chat_fixtures.h"
#include "tokenizer/tokenizer.h"

namespace fleet {
namespace {

TEST(ChatTemplateSource, SmolLM2GgufTemplateRendersLikeJinja2) {
  const std::string gguf = test::smollm2_gguf();
  auto tok = Tokenizer::load(gguf);
  const ChatTemplate t = chat_template_for(*tok, gguf);
  ASSERT_TRUE(t.is_jinja());
  EXPECT_EQ(t.source(), test::read_file(test::chat_fixture_path("extra/SmolLM2-135M-Instruct.jinja")));

  const nlohmann::json ref = test::read_renders();
  int checked = 0;
  for (const auto& tr : ref.at("templates")) {
    if (tr.at("name") != "SmolLM2-135M-Instruct") continue;
    for (const auto& r : tr.at("renders")) {
      ChatRenderOptions opt;
      opt.add_generation_prompt = r.at("add_generation_prompt");
      EXPECT_EQ(t.render(test::messages_of(ref.at("conversations").at(r.at("conversation").get<std::string>())), opt),
                r.at("rendered").get<std::string>());
      ++checked;
    }
  }
  EXPECT_GE(checked, 10);
  const std::string prompt = t.render({{"user", "What is the capital of France?"}});
  EXPECT_EQ(prompt.rfind("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n", 0), 0u);
  const auto ids = tok->encode(prompt, {.allow_special = true});
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 3);  // <|im_start|>: system, user, assistant
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 2);  // <|im_end|>
}

// The prompts of the transformers reference (tests/fixtures/smollm2/reference.json): the GGUF's
// template renders each conversation exactly as apply_chat_template did, and the GGUF's
// tokenizer encodes it to the same ids (so stage 0 feeds the model what transformers fed it).
TEST(ChatTemplateSource, SmolLM2ReferencePromptsRenderAndTokenizeLikeTransformers) {
  const std::string gguf = test::smollm2_gguf();
  auto tok = Tokenizer::load(gguf);
  const ChatTemplate t = chat_template_for(*tok, gguf);
  const nlohmann::json ref = nlohmann::json::parse(test::read_file(test::fixture("smollm2/reference.json")));
  ASSERT_GE(ref.at("prompts").size(), 5u);
  for (const auto& p : ref.at("prompts")) {
    const std::string rendered = t.render(test::messages_of(p.at("messages")));
    EXPECT_EQ(rendered, p.at("rendered").get<std::string>());
    EXPECT_EQ(tok->encode(rendered, {.allow_special = true}), p.at("prompt_ids").get<std::vector<int32_t>>());
  }
}

}  // namespace
}  // namespace fleet
