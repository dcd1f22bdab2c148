// Where a model's chat template comes from: the tokenizer's own (GGUF or
// tokenizer_config.json), chat_template.jinja beside the model files, or a built-in family.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "chat/chat.h"
#include "tokenizer/tokenizer.h"

namespace fleet {
namespace {

namespace fs = std::filesystem;

// True when TEXT is one special token of the vocabulary.
bool has_token(const Tokenizer& tok, const std::string& text) {
  const std::vector<int32_t> ids = tok.encode(text, {.allow_special = true});
  return ids.size() == 1 && tok.id_to_piece(ids[0]) == text;
}

ChatTemplate read_template_file(const fs::path& file, const std::string& bos, const std::string& eos) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) throw std::runtime_error(file.string() + ": cannot read");
  try {
    return ChatTemplate::from_jinja(ss.str(), bos, eos);
  } catch (const ChatTemplateError& e) {
    throw ChatTemplateError(e.kind(), file.string() + ": " + e.what());
  }
}

}  // namespace

ChatTemplate chat_template_from_file(const std::string& path, const Tokenizer& tok) {
  return read_template_file(path, tok.bos_token(), tok.eos_token());
}

ChatTemplate chat_template_for(const Tokenizer& tok, const std::string& model_dir) {
  const std::string bos = tok.bos_token();
  const std::string eos = tok.eos_token();
  if (!tok.chat_template_source().empty()) return ChatTemplate::from_jinja(tok.chat_template_source(), bos, eos);

  fs::path dir;
  if (!model_dir.empty()) dir = fs::is_directory(model_dir) ? fs::path(model_dir) : fs::path(model_dir).parent_path();
  const fs::path jinja_file = dir / "chat_template.jinja";
  if (!model_dir.empty() && fs::is_regular_file(jinja_file)) return read_template_file(jinja_file, bos, eos);

  if (has_token(tok, "<|im_start|>") && has_token(tok, "<|im_end|>"))
    return ChatTemplate::from_builtin(BuiltinChatFamily::kChatML);
  if (has_token(tok, "<|start_header_id|>") && has_token(tok, "<|eot_id|>"))
    return ChatTemplate::from_builtin(BuiltinChatFamily::kLlama3);
  if (has_token(tok, "[INST]") && has_token(tok, "[/INST]"))
    return ChatTemplate::from_builtin(BuiltinChatFamily::kMistral);
  throw std::runtime_error(
      "the model has no chat template: its tokenizer carries none (GGUF tokenizer.chat_template, "
      "tokenizer_config.json chat_template), there is no " +
      (model_dir.empty() ? std::string("chat_template.jinja") : jinja_file.string()) +
      ", and its vocabulary fits no built-in family (ChatML, Llama 3, Mistral)");
}

}  // namespace fleet
