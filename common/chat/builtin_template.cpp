// Built-in chat template families (the fallback for models without a Jinja template):
// ChatML (with Qwen2.5's default system turn and Qwen3's <think> handling), Llama 3,
// Llama 2 and Mistral, rendered natively. Identical to jinja2's renders of those families'
// templates (tests/chat/builtin_template_test.cpp).
#include <stdexcept>

#include "chat/chat.h"

namespace fleet {
namespace {

bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

std::string strip(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

constexpr std::string_view kQwen25DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

void check_role(const ChatMessage& m, std::initializer_list<std::string_view> allowed, const char* templ) {
  for (auto r : allowed)
    if (m.role == r) return;
  throw std::runtime_error(std::string("chat template ") + templ + ": unsupported role '" + m.role + "'");
}

// Llama 2 / Mistral: system folded into the first user turn, roles must alternate.
std::string render_inst(const std::vector<ChatMessage>& messages, bool llama2) {
  const char* name = llama2 ? "llama2" : "mistral";
  std::string system;
  size_t first = 0;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    first = 1;
  }
  std::string out = llama2 ? "" : "<s>";
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    check_role(m, {"user", "assistant"}, name);
    const bool expect_user = (i - first) % 2 == 0;
    if ((m.role == "user") != expect_user)
      throw std::runtime_error(std::string("chat template ") + name +
                               ": conversation roles must alternate user/assistant/user/...");
    std::string content = m.content;
    if (i == first && first == 1) {
      content = llama2 ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content : system + "\n\n" + content;
    }
    if (m.role == "user") {
      out += llama2 ? "<s>[INST] " + strip(content) + " [/INST]" : "[INST] " + content + " [/INST]";
    } else {
      out += llama2 ? " " + strip(content) + " </s>" : content + "</s>";
    }
  }
  return out;
}

std::string lstrip_newlines(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return std::string(s);
}
std::string strip_newlines(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

// Qwen3: reasoning before </think> is dropped from earlier turns; an assistant turn after
// the last user message keeps a <think> block.
std::string BuiltinChatTemplate::render_qwen3_assistant(const std::vector<ChatMessage>& messages, size_t i) const {
  size_t last_query = messages.size() - 1;
  for (size_t k = messages.size(); k-- > 0;) {
    if (messages[k].role == "user") {
      last_query = k;
      break;
    }
  }
  std::string content = messages[i].content;
  std::string reasoning;
  if (const size_t end = content.find("</think>"); end != std::string::npos) {
    std::string before = content.substr(0, end);
    while (!before.empty() && before.back() == '\n') before.pop_back();
    const size_t open = before.rfind("<think>");
    reasoning = lstrip_newlines(open == std::string::npos ? before : before.substr(open + 7));
    content = lstrip_newlines(content.substr(content.rfind("</think>") + 8));
  }
  std::string out = "<|im_start|>assistant\n";
  if (i > last_query && (i + 1 == messages.size() || !reasoning.empty())) {
    out += "<think>\n" + strip_newlines(reasoning) + "\n</think>\n\n" + lstrip_newlines(content);
  } else {
    out += content;
  }
  return out + "<|im_end|>\n";
}

BuiltinChatTemplate BuiltinChatTemplate::recognise(std::string_view src) {
  if (contains(src, "<|im_start|>") && contains(src, "<|im_end|>")) {
    BuiltinChatTemplate t(BuiltinChatFamily::kChatML);
    t.qwen25_default_system_ = contains(src, kQwen25DefaultSystem);
    t.qwen3_thinking_ = contains(src, "reasoning_content");
    return t;
  }
  if (contains(src, "<|start_header_id|>") && contains(src, "<|eot_id|>")) return BuiltinChatTemplate(BuiltinChatFamily::kLlama3);
  if (contains(src, "[INST]") && contains(src, "<<SYS>>")) return BuiltinChatTemplate(BuiltinChatFamily::kLlama2);
  if (contains(src, "[INST]") && contains(src, "[/INST]")) return BuiltinChatTemplate(BuiltinChatFamily::kMistral);
  throw std::runtime_error("unknown chat template (recognised: ChatML/Qwen, Llama 3, Llama 2, Mistral): " +
                           std::string(src.substr(0, 120)) + (src.size() > 120 ? "..." : ""));
}

const char* BuiltinChatTemplate::name() const {
  switch (family_) {
    case BuiltinChatFamily::kChatML:
      return "chatml";
    case BuiltinChatFamily::kLlama3:
      return "llama3";
    case BuiltinChatFamily::kLlama2:
      return "llama2";
    case BuiltinChatFamily::kMistral:
      return "mistral";
  }
  return "?";
}

std::string BuiltinChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::string out;
  switch (family_) {
    case BuiltinChatFamily::kChatML:
      if (qwen25_default_system_ && (messages.empty() || messages[0].role != "system"))
        out += "<|im_start|>system\n" + std::string(kQwen25DefaultSystem) + "<|im_end|>\n";
      for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        check_role(m, {"system", "user", "assistant"}, "chatml");
        if (qwen3_thinking_ && m.role == "assistant") {
          out += render_qwen3_assistant(messages, i);
        } else {
          out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        }
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    case BuiltinChatFamily::kLlama3:
      if (!messages.empty()) out = "<|begin_of_text|>";
      for (const auto& m : messages) {
        check_role(m, {"system", "user", "assistant"}, "llama3");
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + strip(m.content) + "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case BuiltinChatFamily::kLlama2:
      return render_inst(messages, true);
    case BuiltinChatFamily::kMistral:
      return render_inst(messages, false);
  }
  return out;
}

}  // namespace fleet
