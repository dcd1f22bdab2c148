// ChatTemplate: a model's Jinja chat template rendered by llama.cpp's C++ Jinja engine
// (third_party/llama-jinja), with the globals Hugging Face's apply_chat_template provides.
#include <array>
#include <memory>
#include <sstream>

#include "chat/chat.h"
#include "jinja/lexer.h"
#include "jinja/parser.h"
#include "jinja/runtime.h"
#include "jinja/value.h"
#include "json.h"

namespace fleet {

struct ChatTemplate::Jinja {
  std::string source;        // as given
  std::string lexed_source;  // as the engine quotes it in errors
  std::string bos, eos;
  jinja::program program;
};

namespace {

// raise_exception(message) from the template. Deliberately not a std::exception: the engine
// wraps every std::exception into a long "While executing ..." text, this passes through it.
struct TemplateRaised {
  std::string message;
};

std::string first_lines(const std::string& s, size_t max_chars = 600) {
  std::string out = s;
  while (!out.empty() && out.front() == '\n') out.erase(out.begin());
  if (out.size() > max_chars) out = out.substr(0, max_chars) + "...";
  return out;
}

std::string format_time(const std::string& format, const std::tm& tm) {
  if (format.empty()) return {};
  for (size_t cap = 256; cap <= (1u << 16); cap *= 4) {
    std::string buf(cap, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &tm);
    if (n > 0) return buf.substr(0, n);
  }
  return {};  // a format that yields nothing (Python gives the empty string too)
}

nlohmann::ordered_json message_json(const ChatMessage& m) {
  nlohmann::ordered_json j;
  j["role"] = m.role;
  j["content"] = m.content;
  if (m.extra.is_object())
    for (const auto& [k, v] : m.extra.items())
      if (k != "role") j[k] = v;
  return j;
}

std::string render_once(const ChatTemplate::Jinja& t, const std::vector<ChatMessage>& messages,
                        const ChatRenderOptions& opt, bool with_empty_tools) {
  nlohmann::ordered_json inp;
  inp["messages"] = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) inp["messages"].push_back(message_json(m));
  inp["add_generation_prompt"] = opt.add_generation_prompt;
  inp["bos_token"] = t.bos;
  inp["eos_token"] = t.eos;
  // apply_chat_template passes tools=None and documents=None when the request has none. The
  // probe for "needs tools" gives empty lists instead.
  if (with_empty_tools) {
    inp["tools"] = nlohmann::ordered_json::array();
    inp["documents"] = nlohmann::ordered_json::array();
  } else {
    inp["tools"] = opt.tools;
    inp["documents"] = nullptr;
  }

  jinja::context ctx(t.lexed_source);
  jinja::global_from_json(ctx, common_json::parse(inp.dump()), /*mark_input=*/false);
  ctx.set_val("raise_exception", jinja::mk_val<jinja::value_func>(
                                     "raise_exception", [](const jinja::func_args& args) -> jinja::value {
                                       std::string msg = args.count() > 0 ? args.get_pos(0)->as_string().str() : "";
                                       throw TemplateRaised{msg};
                                     }));
  std::tm now{};
  if (opt.now) {
    now = *opt.now;
  } else {
    const std::time_t t_now = std::time(nullptr);
    localtime_r(&t_now, &now);
  }
  ctx.set_val("strftime_now", jinja::mk_val<jinja::value_func>(
                                  "strftime_now", [now](const jinja::func_args& args) -> jinja::value {
                                    args.ensure_vals<jinja::value_string>();
                                    return jinja::mk_val<jinja::value_string>(
                                        format_time(args.get_pos(0)->as_string().str(), now));
                                  }));
  jinja::runtime runtime(ctx);
  const jinja::value results = runtime.execute(t.program);
  return jinja::runtime::gather_string_parts(results)->as_string().str();
}

}  // namespace

ChatTemplate ChatTemplate::from_jinja(const std::string& source, const std::string& bos_token,
                                      const std::string& eos_token) {
  auto t = std::make_shared<Jinja>();
  t->source = source;
  t->bos = bos_token;
  t->eos = eos_token;
  try {
    jinja::lexer lexer;
    jinja::lexer_result lexed = lexer.tokenize(source);
    t->program = jinja::parse_from_tokens(lexed);
    t->lexed_source = std::move(lexed.source);
  } catch (const std::exception& e) {
    throw ChatTemplateError(ChatTemplateError::Kind::kSyntax, "chat template does not parse: " + first_lines(e.what()));
  }
  ChatTemplate out;
  out.jinja_ = std::move(t);
  return out;
}

ChatTemplate ChatTemplate::from_builtin(BuiltinChatFamily family) {
  ChatTemplate out;
  out.builtin_.emplace(family);
  return out;
}

std::string ChatTemplate::name() const { return jinja_ ? "jinja" : builtin_->name(); }

const std::string& ChatTemplate::source() const {
  static const std::string kNone;
  return jinja_ ? jinja_->source : kNone;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, const ChatRenderOptions& opt) const {
  using Kind = ChatTemplateError::Kind;
  if (!jinja_) {
    try {
      return builtin_->render(messages, opt.add_generation_prompt);
    } catch (const std::runtime_error& e) {
      throw ChatTemplateError(Kind::kRaised, e.what());
    }
  }
  try {
    return render_once(*jinja_, messages, opt, false);
  } catch (const TemplateRaised& r) {
    throw ChatTemplateError(Kind::kRaised, "the chat template refused the conversation: " + r.message);
  } catch (const std::exception& e) {
    // A template that renders once it is given (empty) tool definitions needs them: fleet
    // passes none (tools = None, as apply_chat_template without tools).
    bool needs_tools = false;
    try {
      render_once(*jinja_, messages, opt, true);
      needs_tools = true;
    } catch (...) {
    }
    if (needs_tools)
      throw ChatTemplateError(Kind::kNeedsTools,
                              "the chat template needs tool definitions ('tools'), which are not supported; "
                              "give the model a template for plain chat. Engine error: " + first_lines(e.what()));
    throw ChatTemplateError(Kind::kRender, "the chat template failed to render: " + first_lines(e.what()));
  }
}

}  // namespace fleet
