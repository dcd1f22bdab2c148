// Tokenizer from a GGUF file's metadata (tokenizer.ggml.*), read the way llama.cpp reads it
// (src/llama-vocab.cpp), so that ids equal llama.cpp's for the same file:
//   model "gpt2":  byte-level BPE: tokens (GPT-2 byte alphabet), merges ("left right", rank =
//                  position), pre-tokenizer regexes named by tokenizer.ggml.pre;
//   model "llama": SentencePiece-style BPE: tokens ("▁" for space), scores (the higher, the
//                  earlier the merge), <0xNN> byte tokens for byte fallback.
// token_type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte) decides which
// tokens are matched whole in text: user-defined always, control and unknown only with
// EncodeOptions::allow_special (llama.cpp's parse_special).
#include <filesystem>
#include <stdexcept>

#include "byte_level.h"
#include "gguf/gguf_file.h"
#include "pretokenizer_presets.h"
#include "tokenizer_data.h"

namespace fleet::tok {
namespace {

enum GgufTokenType : int32_t { kUndefined = 0, kNormalType, kUnknownType, kControlType, kUserDefinedType, kUnusedType, kByteType };

// Texts llama.cpp treats as control tokens whatever their token_type says (they end turns).
constexpr const char* kEndOfTurnTexts[] = {"<|eot_id|>",     "<|im_end|>", "<|end|>", "<end_of_turn>",
                                           "<|endoftext|>",  "<|end_of_text|>", "<EOT>", "_<EOT>",
                                           "<|eom_id|>",     "<end_of_utterance>"};

class GgufTokenizerLoader {
 public:
  GgufTokenizerLoader(const GgufFile& f, const std::string& path) : f_(f), path_(path) {}

  std::unique_ptr<TokenizerData> load() {
    auto d = std::make_unique<TokenizerData>();
    d->source = path_;
    if (!f_.find("tokenizer.ggml.model")) throw error("no tokenizer in this file (tokenizer.ggml.model is missing)");
    const std::string model = f_.get<std::string>("tokenizer.ggml.model");
    read_tokens(*d);
    if (model == "gpt2") {
      fill_byte_level(*d);
    } else if (model == "llama") {
      fill_sentencepiece(*d);
    } else {
      throw error("tokenizer.ggml.model '" + model + "' is not supported (supported: gpt2, llama)");
    }
    d->bos_id = special_id("tokenizer.ggml.bos_token_id", d->bos_id, *d);
    d->eos_id = special_id("tokenizer.ggml.eos_token_id", d->eos_id, *d);
    d->eot_id = special_id("tokenizer.ggml.eot_token_id", -1, *d);
    d->unk_id = special_id("tokenizer.ggml.unknown_token_id", d->unk_id, *d);
    if (f_.find("tokenizer.ggml.add_bos_token")) d->add_bos = f_.get<bool>("tokenizer.ggml.add_bos_token");
    else d->add_bos = default_add_bos_;
    d->chat_template = f_.get_or<std::string>("tokenizer.chat_template", "");
    detect_end_of_turn(*d);
    return d;
  }

 private:
  const GgufFile& f_;
  const std::string& path_;
  std::vector<int32_t> types_;
  StringIdMap piece_to_id_;  // every token, whatever its type
  bool default_add_bos_ = false;

  std::runtime_error error(const std::string& what) const { return std::runtime_error(path_ + ": " + what); }

  void read_tokens(TokenizerData& d) {
    if (!f_.find("tokenizer.ggml.tokens")) throw error("tokenizer.ggml.tokens is missing");
    d.pieces = f_.get<std::vector<std::string>>("tokenizer.ggml.tokens");
    const size_t n = d.pieces.size();
    if (n == 0) throw error("tokenizer.ggml.tokens is empty");
    if (n > 10'000'000) throw error("tokenizer.ggml.tokens has " + std::to_string(n) + " tokens (more than 10^7)");
    if (f_.find("tokenizer.ggml.token_type")) {
      types_ = f_.get<std::vector<int32_t>>("tokenizer.ggml.token_type");
      if (types_.size() != n)
        throw error("tokenizer.ggml.token_type has " + std::to_string(types_.size()) + " entries for " +
                    std::to_string(n) + " tokens");
      for (size_t i = 0; i < n; ++i)
        if (types_[i] < kUndefined || types_[i] > kByteType)
          throw error("tokenizer.ggml.token_type[" + std::to_string(i) + "] is " + std::to_string(types_[i]) +
                      " (known: 0..6)");
    } else {
      types_.assign(n, kNormalType);
    }
    piece_to_id_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      std::string& p = d.pieces[i];
      if (p.empty()) p = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp names it
      auto [it, fresh] = piece_to_id_.emplace(p, static_cast<int32_t>(i));
      if (!fresh)
        throw error("tokenizer.ggml.tokens holds '" + p + "' twice (ids " + std::to_string(it->second) + " and " +
                    std::to_string(i) + ")");
    }
    for (const char* text : kEndOfTurnTexts)
      if (auto it = piece_to_id_.find(std::string_view(text)); it != piece_to_id_.end()) types_[it->second] = kControlType;
  }

  // Control, unknown and user-defined tokens are matched whole in text before the model runs.
  void add_special_tokens(TokenizerData& d) const {
    for (size_t i = 0; i < d.pieces.size(); ++i) {
      const int32_t t = types_[i];
      if (t != kControlType && t != kUnknownType && t != kUserDefinedType) continue;
      AddedToken a;
      a.id = static_cast<int32_t>(i);
      a.content = d.pieces[i];
      a.special = t != kUserDefinedType;
      d.added.push_back(std::move(a));
    }
  }

  static TokenKind kind_of(int32_t type) {
    switch (type) {
      case kUnknownType: return TokenKind::kUnknown;
      case kControlType: return TokenKind::kControl;
      case kUserDefinedType: return TokenKind::kUserDefined;
      case kByteType: return TokenKind::kByte;
      default: return TokenKind::kNormal;  // normal, unused, undefined
    }
  }

  void fill_byte_level(TokenizerData& d) {
    d.kind = ModelKind::kByteLevelBpe;
    const std::string pre = f_.get_or<std::string>("tokenizer.ggml.pre", "default");
    const PreTokenizerPreset* preset = find_pre_tokenizer_preset(pre);
    if (preset == nullptr)
      throw error("tokenizer.ggml.pre '" + pre + "' is not a pre-tokenizer fleet knows (known: " +
                  supported_pre_tokenizer_names() + ")");
    for (const std::string& re : preset->regexes) d.split_regexes.push_back(std::make_shared<Regex>(re));
    d.ignore_merges = preset->ignore_merges;
    default_add_bos_ = preset->add_bos;

    const auto& alpha = byte_level_alphabet();
    const size_t n = d.pieces.size();
    d.kinds.resize(n);
    d.token_bytes.assign(n, std::string());
    std::string raw;
    for (size_t i = 0; i < n; ++i) {
      const auto id = static_cast<int32_t>(i);
      d.kinds[i] = kind_of(types_[i]);
      const std::string& p = d.pieces[i];
      if (d.kinds[i] == TokenKind::kByte) {
        const int b = parse_byte_piece(p);
        if (b < 0) throw error("byte token " + std::to_string(i) + " '" + p + "' is not <0xNN>");
        d.token_bytes[i] = std::string(1, static_cast<char>(b));
        if (d.byte_token[b] < 0) d.byte_token[b] = id;
      } else if (d.kinds[i] != TokenKind::kNormal) {
        d.token_bytes[i] = p;  // control and added tokens decode to their text
      } else if (alpha.to_bytes(p, raw)) {
        d.token_bytes[i] = raw;
        d.model_vocab.emplace(raw, id);
        if (raw.size() == 1) d.byte_token[static_cast<unsigned char>(raw[0])] = id;
      } else {
        d.token_bytes[i] = p;  // not in the byte alphabet: unreachable by BPE, decodes as stored
      }
    }
    read_merges(d);
    add_special_tokens(d);
  }

  void read_merges(TokenizerData& d) const {
    if (!f_.find("tokenizer.ggml.merges")) throw error("tokenizer.ggml.merges is missing (required by model gpt2)");
    const auto merges = f_.get<std::vector<std::string>>("tokenizer.ggml.merges");
    d.merges.reserve(merges.size());
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const std::string& m = merges[rank];
      const size_t sp = m.find(' ', 1);
      const std::string where = "tokenizer.ggml.merges[" + std::to_string(rank) + "] '" + m + "'";
      if (sp == std::string::npos) throw error(where + " is not 'left right'");
      const std::string_view a = std::string_view(m).substr(0, sp), b = std::string_view(m).substr(sp + 1);
      auto la = piece_to_id_.find(a), lb = piece_to_id_.find(b), lr = piece_to_id_.find(std::string(a) + std::string(b));
      if (la == piece_to_id_.end() || lb == piece_to_id_.end() || lr == piece_to_id_.end())
        throw error(where + " refers to a token not in tokenizer.ggml.tokens");
      d.merges.add(la->second, lb->second, static_cast<int32_t>(rank), lr->second);
    }
  }

  void fill_sentencepiece(TokenizerData& d) {
    d.kind = ModelKind::kSentencePieceBpe;
    const size_t n = d.pieces.size();
    if (!f_.find("tokenizer.ggml.scores")) throw error("tokenizer.ggml.scores is missing (required by model llama)");
    d.scores = f_.get<std::vector<float>>("tokenizer.ggml.scores");
    if (d.scores.size() != n)
      throw error("tokenizer.ggml.scores has " + std::to_string(d.scores.size()) + " entries for " +
                  std::to_string(n) + " tokens");
    const bool typed = f_.find("tokenizer.ggml.token_type") != nullptr;
    d.kinds.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const auto id = static_cast<int32_t>(i);
      const std::string& p = d.pieces[i];
      const int b = parse_byte_piece(p);
      // Without token types, <0xNN> pieces are still the byte tokens (llama.cpp finds them by text).
      d.kinds[i] = (!typed && b >= 0) ? TokenKind::kByte : kind_of(types_[i]);
      if (d.kinds[i] == TokenKind::kByte) {
        if (b < 0) throw error("byte token " + std::to_string(i) + " '" + p + "' is not <0xNN>");
        if (d.byte_token[b] < 0) d.byte_token[b] = id;
        d.byte_fallback = true;
      } else if (d.kinds[i] == TokenKind::kNormal) {
        d.model_vocab.emplace(p, id);
      } else if (d.kinds[i] == TokenKind::kUnknown && d.unk_id < 0) {
        d.unk_id = id;
      }
    }
    // llama.cpp's defaults for SentencePiece vocabularies when the keys are absent.
    if (n > 2) {
      d.bos_id = 1;
      d.eos_id = 2;
    }
    if (d.unk_id < 0) d.unk_id = 0;
    default_add_bos_ = true;
    // llama.cpp: " " -> "▁", a "▁" before the text and after each special token, no other
    // normalization unless the file asks for it.
    d.sp_native_normalizer = true;
    d.add_dummy_prefix = f_.get_or<bool>("tokenizer.ggml.add_space_prefix", true);
    d.remove_extra_whitespaces = f_.get_or<bool>("tokenizer.ggml.remove_extra_whitespaces", false);
    d.escape_whitespaces = true;
    d.strip_leading_space = d.add_dummy_prefix;
    build_merges_from_scores(d);
    fill_sentencepiece_token_bytes(d);
    add_special_tokens(d);
  }

  int32_t special_id(const char* key, int32_t fallback, const TokenizerData& d) const {
    if (!f_.find(key)) return fallback;
    const auto id = f_.get<uint32_t>(key);
    if (id >= d.pieces.size())
      throw error(std::string(key) + " " + std::to_string(id) + " is outside the vocabulary (" +
                  std::to_string(d.pieces.size()) + " tokens)");
    return static_cast<int32_t>(id);
  }
};

}  // namespace

void detect_end_of_turn(TokenizerData& d) {
  if (d.eot_id >= 0) return;
  for (const char* text : kEndOfTurnTexts)
    for (const AddedToken& a : d.added)
      if (a.content == text) {
        d.eot_id = a.id;
        return;
      }
}

std::unique_ptr<TokenizerData> load_gguf_tokenizer(const std::string& path) {
  const GgufFile f = GgufFile::open(path);
  try {
    return GgufTokenizerLoader(f, path).load();
  } catch (const std::runtime_error& e) {
    if (std::string_view(e.what()).starts_with(path)) throw;
    throw std::runtime_error(path + ": " + e.what());  // e.g. a pre-tokenizer regex that does not compile
  }
}

}  // namespace fleet::tok
