#include "generate/generate.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "generate/token_stream.h"
#include "grammar/grammar_matcher.h"

namespace fleet {

std::vector<int32_t> default_stop_tokens(const ModelConfig& config, const Tokenizer& tok) {
  std::vector<int32_t> ids;
  for (int32_t id : {config.eos_token_id, tok.eos_id(), tok.eot_id()})
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  if (config.rope_layout == RopeLayout::Adjacent && tok.bos_id() >= 0) ids.push_back(tok.bos_id());
  return ids;
}

std::string default_tokenizer_path(const std::string& model) {
  namespace fs = std::filesystem;
  if (fs::is_directory(model)) return model;
  // A GGUF file carries its tokenizer (recognised by name or by its "GGUF" magic).
  char magic[4] = {};
  if (fs::path(model).extension() == ".gguf" ||
      (std::ifstream(model, std::ios::binary).read(magic, 4) && std::string_view(magic, 4) == "GGUF"))
    return model;
  fs::path dir = fs::path(model).parent_path();
  if (dir.empty()) dir = ".";
  if (fs::exists(dir / "tokenizer.bin")) return (dir / "tokenizer.bin").string();
  std::vector<fs::path> found;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().starts_with("tok") && e.path().extension() == ".bin") found.push_back(e.path());
  if (found.size() == 1) return found[0].string();
  throw std::runtime_error(model + ": no tokenizer found beside the model; pass the tokenizer explicitly");
}

std::vector<int32_t> encode_prompt(const Tokenizer& tok, const std::string& text) {
  EncodeOptions opt;
  opt.add_bos = tok.add_bos_by_default();
  return tok.encode(text, opt);
}

GenerateResult generate(StageEngine& engine, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateParams& params, const std::function<void(const std::string&)>& on_text) {
  const ModelConfig& c = engine.config();
  if (engine.layer_begin() != 0 || engine.layer_end() != c.n_layers)
    throw std::runtime_error("generate needs the whole model in one engine");
  if (prompt.empty()) throw std::runtime_error("generate: empty prompt (at least BOS is needed)");
  if (params.max_tokens < 0) throw std::runtime_error("max_tokens must be >= 0");
  const std::vector<int32_t> stops =
      params.stop_token_ids.empty() ? default_stop_tokens(c, tok) : params.stop_token_ids;
  auto cache = engine.new_cache();
  if (static_cast<int>(prompt.size()) > cache->max_len())
    throw std::runtime_error("prompt of " + std::to_string(prompt.size()) + " tokens exceeds the context length " +
                             std::to_string(cache->max_len()));

  GenerateResult res;
  res.prompt_tokens = static_cast<int>(prompt.size());
  TokenStream stream(tok, stops, params.stop, params.max_tokens);
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    res.text += s;
    if (on_text) on_text(s);
  };
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  std::vector<float> hidden, logits(static_cast<size_t>(c.vocab_size));
  // Runs tokens [pos, pos + n) through every layer; returns the logits of the last one.
  auto step = [&](const int32_t* tokens, int pos, int n) {
    hidden.resize(static_cast<size_t>(n) * c.dim);
    engine.embed({tokens, static_cast<size_t>(n)}, hidden.data());
    SeqChunk chunk{cache.get(), pos, n};
    engine.forward_layers({&chunk, 1}, hidden.data());
    const int64_t last = n - 1;
    engine.head(hidden.data(), {&last, 1}, logits.data());
  };
  const int chunk = std::max(1, params.prefill_chunk);
  for (int pos = 0; pos < static_cast<int>(prompt.size()); pos += chunk)
    step(prompt.data() + pos, pos, std::min(chunk, static_cast<int>(prompt.size()) - pos));
  const auto t1 = clock::now();
  res.finish_reason = "length";
  int pos = static_cast<int>(prompt.size());
  std::unique_ptr<GrammarVocabulary> grammar_vocab;
  std::unique_ptr<GrammarMatcher> grammar;
  if (!params.grammar.empty()) {
    grammar_vocab = std::make_unique<GrammarVocabulary>(tok, stops);
    grammar = std::make_unique<GrammarMatcher>(params.grammar, *grammar_vocab);
  }
  std::vector<float> masked;
  for (int i = 0; i < params.max_tokens; ++i) {
    // Penalties see the tokens generated so far, as the fleet's last stage does (Redis's list);
    // then the grammar's mask.
    const int deciding = tokens_deciding_the_draw(params.sampling, params.top_logprobs >= 0);
    TokenChoice choice = choose_token(grammar ? grammar->masked(logits, masked, deciding) : std::span<const float>(logits),
                                      params.sampling, res.tokens, static_cast<uint64_t>(i), params.top_logprobs);
    const int32_t next = choice.token;
    if (grammar) grammar->accept(next);
    const TokenStream::Pushed r = stream.push(next);
    if (r.accepted) {
      res.tokens.push_back(next);
      if (choice.logprobs) res.logprobs.push_back(std::move(*choice.logprobs));
      emit(r.text);
    }
    if (r.finished) {
      res.finish_reason = r.finish_reason;
      break;
    }
    if (pos >= cache->max_len()) break;  // context full
    step(&next, pos, 1);
    ++pos;
  }
  emit(stream.flush());
  res.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  res.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return res;
}

}  // namespace fleet
