// ChatTemplate::from_jinja + render (common/chat, the vendored llama.cpp Jinja engine): the
// input is a template source. Whatever it is, parsing and rendering must end in a rendered
// string or a ChatTemplateError, never a crash, a sanitizer report or another exception.
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <string>

#include "chat/chat.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;  // real templates are a few KB; keeps each run short
  const std::string source(reinterpret_cast<const char*>(data), size);
  std::optional<fleet::ChatTemplate> t;
  try {
    t = fleet::ChatTemplate::from_jinja(source, "<s>", "</s>");
  } catch (const fleet::ChatTemplateError& e) {
    if (e.kind() != fleet::ChatTemplateError::Kind::kSyntax) std::abort();
    return 0;
  }
  std::vector<fleet::ChatMessage> messages = {
      {"system", "Be brief."}, {"user", "Hi {{ x }}"}, {"assistant", "Hello!"}, {"user", "Bye"}};
  fleet::ChatRenderOptions opt;
  opt.now = std::tm{};
  for (bool agp : {true, false}) {
    opt.add_generation_prompt = agp;
    try {
      (void)t->render(messages, opt);
    } catch (const fleet::ChatTemplateError&) {
    }
  }
  return 0;
}
