#pragma once
// Chat prompts: messages [{role, content, ...}] -> prompt text, rendered from the model's own
// Jinja chat template (GGUF tokenizer.chat_template, tokenizer_config.json's chat_template, or
// chat_template.jinja) the way Hugging Face's apply_chat_template renders it (jinja2 with
// trim_blocks, lstrip_blocks, loop controls, tojson, raise_exception, strftime_now), by
// llama.cpp's C++ Jinja engine (third_party/llama-jinja). Models without a template fall
// back to built-in families (ChatML, Llama 3, Llama 2, Mistral).
// The rendered text holds special tokens as text: encode it with allow_special = true.
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fleet {

class Tokenizer;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool", ...
  std::string content;
  // Further fields of the message (name, tool_calls, tool_call_id, ...), given to the template as
  // they are; a "content" here replaces the one above (null: an assistant turn of tool calls only).
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

class ChatTemplateError : public std::runtime_error {
 public:
  enum class Kind {
    kSyntax,      // the template does not parse
    kRaised,      // the template called raise_exception(message): the conversation is refused
    kNeedsTools,  // the template needs tool definitions, which are not passed
    kRender,      // any other failure while rendering
  };
  ChatTemplateError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct ChatRenderOptions {
  bool add_generation_prompt = true;  // open the assistant's turn at the end
  // The local date and time strftime_now() formats; default: the current local time.
  std::optional<std::tm> now;
  // The tool definitions the template sees as `tools` (OpenAI's [{"type": "function",
  // "function": {...}}]); null: none (tools = None, as apply_chat_template without tools).
  nlohmann::ordered_json tools;
};

// Built-in families, for models that carry no chat template.
enum class BuiltinChatFamily { kChatML, kLlama3, kLlama2, kMistral };

class BuiltinChatTemplate {
 public:
  explicit BuiltinChatTemplate(BuiltinChatFamily family) : family_(family) {}
  // Recognises a family from a Jinja source's markers; throws std::runtime_error if unknown.
  static BuiltinChatTemplate recognise(std::string_view jinja_source);
  BuiltinChatFamily family() const { return family_; }
  const char* name() const;
  // Throws std::runtime_error for roles the family lacks, or non-alternating Llama 2/Mistral turns.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;

 private:
  std::string render_qwen3_assistant(const std::vector<ChatMessage>& messages, size_t i) const;
  BuiltinChatFamily family_;
  bool qwen25_default_system_ = false;  // Qwen2.5 adds a default system turn
  bool qwen3_thinking_ = false;         // Qwen3 handles <think> in assistant turns
};

class ChatTemplate {
 public:
  // Parses a Jinja chat template; bos/eos are what the template sees as bos_token/eos_token.
  // Throws ChatTemplateError (kSyntax) naming line and column.
  static ChatTemplate from_jinja(const std::string& source, const std::string& bos_token,
                                 const std::string& eos_token);
  static ChatTemplate from_builtin(BuiltinChatFamily family);

  bool is_jinja() const { return jinja_ != nullptr; }
  // "jinja" or the built-in family's name.
  std::string name() const;
  const std::string& source() const;  // the Jinja source (empty for a built-in)

  // Renders the conversation. The template sees messages, add_generation_prompt, bos_token,
  // eos_token, tools (opt.tools, or None), documents = None (as apply_chat_template passes
  // them), raise_exception and strftime_now. Throws ChatTemplateError.
  std::string render(const std::vector<ChatMessage>& messages, const ChatRenderOptions& opt = {}) const;

  struct Jinja;  // internal: the parsed template (jinja_template.cpp)

 private:
  std::shared_ptr<const Jinja> jinja_;
  std::optional<BuiltinChatTemplate> builtin_;
};

// The chat template a model uses: its tokenizer's own (GGUF tokenizer.chat_template or
// tokenizer_config.json's chat_template), else chat_template.jinja in model_dir, else a
// built-in family chosen by the vocabulary's special tokens (<|im_start|>: ChatML,
// <|start_header_id|>: Llama 3, [INST]: Mistral). Throws std::runtime_error when none fits.
// model_dir: a directory, or a file whose directory is meant (may be empty).
ChatTemplate chat_template_for(const Tokenizer& tok, const std::string& model_dir);
// A Jinja template file given by the operator (model.chat_template); throws std::runtime_error
// when it cannot be read, ChatTemplateError (kSyntax) when it does not parse.
ChatTemplate chat_template_from_file(const std::string& path, const Tokenizer& tok);

}  // namespace fleet
