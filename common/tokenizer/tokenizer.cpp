// Tokenizer: loading dispatch, the encode pipeline (added tokens -> normalizer ->
// pre-tokenizer -> BPE) and decoding.
#include "tokenizer.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "tokenizer_data.h"
#include "unicode_nfc.h"
#include "utf8.h"

namespace fleet {
namespace fs = std::filesystem;
using tok::ModelKind;
using tok::TokenizerData;
using tok::TokenKind;

namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_';
}

// SentencePiece's normalizer with the identity character map: optional removal of
// leading, trailing and repeated spaces, the dummy prefix, and " " -> "▁".
std::string sentencepiece_normalize(const TokenizerData& d, std::string_view in) {
  std::string out;
  out.reserve(in.size() + 16);
  if (d.remove_extra_whitespaces) {
    while (!in.empty() && in.front() == ' ') in.remove_prefix(1);
  }
  if (in.empty()) return out;
  const std::string_view space = d.escape_whitespaces ? kSpaceSymbol : std::string_view(" ");
  if (d.add_dummy_prefix) out.append(space);
  bool prev_space = d.remove_extra_whitespaces;
  for (char c : in) {
    if (c == ' ') {
      if (prev_space) continue;
      out.append(space);
      prev_space = d.remove_extra_whitespaces;
    } else {
      out.push_back(c);
      prev_space = false;
    }
  }
  if (d.remove_extra_whitespaces) {
    while (ends_with(out, space)) out.resize(out.size() - space.size());
  }
  return out;
}

std::string apply_normalizer(const TokenizerData& d, std::string_view in) {
  std::string s(in);
  for (const auto& step : d.normalizer) {
    switch (step.kind) {
      case tok::NormalizerStep::Kind::kNfc:
        s = tok::nfc_normalize(s);
        break;
      case tok::NormalizerStep::Kind::kPrepend:
        if (!s.empty()) s = step.content + s;
        break;
      case tok::NormalizerStep::Kind::kReplaceLiteral: {
        if (step.pattern.empty()) break;
        std::string r;
        size_t pos = 0;
        for (size_t hit; (hit = s.find(step.pattern, pos)) != std::string::npos; pos = hit + step.pattern.size())
          r.append(s, pos, hit - pos).append(step.content);
        r.append(s, pos);
        s = std::move(r);
        break;
      }
      case tok::NormalizerStep::Kind::kReplaceRegex:
        s = step.regex->replace_all(s, step.content);
        break;
    }
  }
  return s;
}

// Appends the BPE ids of one pre-tokenized word.
void encode_word(const TokenizerData& d, std::string_view word, std::vector<int32_t>& out) {
  if (word.empty()) return;
  if (d.ignore_merges || d.kind == ModelKind::kSentencePieceBpe) {
    // SentencePiece vocabularies rarely hold whole words; byte-level ones with
    // ignore_merges take a whole-word match first.
    if (d.ignore_merges) {
      if (auto it = d.model_vocab.find(word); it != d.model_vocab.end()) {
        out.push_back(it->second);
        return;
      }
    }
  }
  // Byte-level words repeat a lot in real text: remember their ids (per thread, so
  // encode() stays const and thread-safe without locks).
  struct WordCache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::vector<int32_t>, tok::StringHash, std::equal_to<>> ids;
  };
  thread_local WordCache cache;
  const bool cacheable = d.kind == ModelKind::kByteLevelBpe && word.size() <= 64;
  if (cacheable) {
    if (cache.owner != d.instance_id || cache.ids.size() > 100'000) {
      cache.ids.clear();
      cache.owner = d.instance_id;
    }
    if (auto it = cache.ids.find(word); it != cache.ids.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  if (d.kind == ModelKind::kByteLevelBpe) {
    for (char c : word) {
      const int32_t id = d.byte_token[static_cast<unsigned char>(c)];
      if (id < 0) throw std::runtime_error(d.source + ": vocabulary has no token for byte " +
                                           std::to_string(static_cast<unsigned char>(c)));
      ids.push_back(id);
    }
  } else {
    bool prev_unk = false;
    for (size_t i = 0; i < word.size();) {
      size_t len = tok::valid_utf8_char_length(word.substr(i));
      if (len == 0) len = 1;
      const std::string_view ch = word.substr(i, len);
      i += len;
      if (auto it = d.model_vocab.find(ch); it != d.model_vocab.end()) {
        ids.push_back(it->second);
        prev_unk = false;
        continue;
      }
      bool all_bytes = d.byte_fallback;
      for (char c : ch) all_bytes = all_bytes && d.byte_token[static_cast<unsigned char>(c)] >= 0;
      if (all_bytes) {
        for (char c : ch) ids.push_back(d.byte_token[static_cast<unsigned char>(c)]);
        prev_unk = false;
      } else {
        if (d.unk_id < 0) throw std::runtime_error(d.source + ": character not in vocabulary and no <unk> token");
        if (!(d.fuse_unk && prev_unk)) ids.push_back(d.unk_id);
        prev_unk = true;
      }
    }
  }
  tok::apply_bpe(d.merges, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) cache.ids.emplace(std::string(word), std::move(ids));
}

// Normalizes and pre-tokenizes one stretch of text between added tokens.
void encode_text_segment(const TokenizerData& d, std::string_view segment, bool at_text_start,
                         std::vector<int32_t>& out) {
  if (segment.empty()) return;
  if (d.sp_native_normalizer) {
    encode_word(d, sentencepiece_normalize(d, segment), out);
    return;
  }
  std::string normalized = d.normalizer.empty() ? std::string(segment) : apply_normalizer(d, segment);
  if (d.byte_level_add_prefix_space && !normalized.empty() && normalized.front() != ' ') normalized = std::string(" ") + normalized;
  if (d.metaspace.enabled) {
    std::string r;
    const std::string& rep = d.metaspace.replacement;
    const bool prepend = d.metaspace.prepend == tok::Metaspace::Prepend::kAlways ||
                         (d.metaspace.prepend == tok::Metaspace::Prepend::kFirst && at_text_start);
    for (char c : normalized) {
      if (c == ' ') {
        r.append(rep);
      } else {
        r.push_back(c);
      }
    }
    // Spaces are replaced first, so text starting with a space gets no extra "▁" (HF).
    normalized = (prepend && r.compare(0, rep.size(), rep) != 0) ? rep + r : std::move(r);
  }
  std::vector<std::string_view> pieces{normalized};
  if (d.metaspace.enabled && d.metaspace.split) {
    std::vector<std::string_view> split;
    const std::string& rep = d.metaspace.replacement;
    for (std::string_view p : pieces) {
      size_t start = 0;
      for (size_t pos = p.find(rep, 1); pos != std::string_view::npos; pos = p.find(rep, pos + rep.size())) {
        split.push_back(p.substr(start, pos - start));
        start = pos;
      }
      split.push_back(p.substr(start));
    }
    pieces = std::move(split);
  }
  for (const auto& re : d.split_regexes) {
    std::vector<std::string_view> split;
    for (std::string_view p : pieces) re->split(p, tok::Regex::SplitBehavior::kIsolated, false, split);
    pieces = std::move(split);
  }
  for (std::string_view p : pieces) encode_word(d, p, out);
}

bool has_gguf_magic(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string_view(magic, 4) == "GGUF";
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "tokenizer.json")) {
      p /= "tokenizer.json";
    } else if (fs::exists(p / "tokenizer.bin")) {
      p /= "tokenizer.bin";
    } else {
      // llama2.c model directories name it after the vocabulary (tok512.bin): take the only
      // one; else the only GGUF file.
      std::vector<fs::path> found, ggufs;
      for (const auto& e : fs::directory_iterator(p, ec)) {
        if (e.path().filename().string().starts_with("tok") && e.path().extension() == ".bin") found.push_back(e.path());
        if (e.path().extension() == ".gguf") ggufs.push_back(e.path());
      }
      if (found.empty() && ggufs.size() == 1) found = ggufs;
      if (found.size() != 1)
        throw std::runtime_error(path + ": directory has neither tokenizer.json nor tokenizer.bin" +
                                 (found.empty() ? std::string(ggufs.empty() ? "" : " (and more than one .gguf)")
                                                : std::string(" (and more than one tok*.bin)")));
      p = found.front();
    }
  } else if (!fs::exists(p, ec)) {
    throw std::runtime_error(path + ": no such file or directory");
  }
  const std::string file = p.string();
  std::unique_ptr<TokenizerData> data;
  if (has_gguf_magic(p)) {
    data = tok::load_gguf_tokenizer(file);
  } else if (p.extension() == ".gguf") {
    throw std::runtime_error(file + ": not a GGUF file (it does not start with \"GGUF\")");
  } else if (p.extension() == ".json") {
    data = tok::load_hf_tokenizer_json(file);
  } else {
    data = tok::load_llama2c_tokenizer_bin(file);
  }
  return std::make_unique<Tokenizer>(std::move(data));
}

Tokenizer::Tokenizer(std::unique_ptr<TokenizerData> data) : data_(std::move(data)) {}
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view raw, const EncodeOptions& opt) const {
  const TokenizerData& d = *data_;
  const std::string text = d.kind == ModelKind::kSentencePieceBpe ? tok::replace_invalid_utf8_per_byte(raw)
                                                                  : tok::replace_invalid_utf8_maximal(raw);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (opt.add_bos && d.bos_id >= 0) out.push_back(d.bos_id);

  // Split at added tokens (leftmost, longest), then encode the text between them.
  size_t seg_start = 0;
  size_t pos = 0;
  const std::string_view t(text);
  bool may_start[256] = {};
  for (const auto& a : d.added)
    if (!a.content.empty() && (!a.special || opt.allow_special)) may_start[static_cast<unsigned char>(a.content[0])] = true;
  while (pos < t.size()) {
    const tok::AddedToken* best = nullptr;
    if (may_start[static_cast<unsigned char>(t[pos])]) {
      for (const auto& a : d.added) {
        if (a.special && !opt.allow_special) continue;
        if (a.content.empty() || t.compare(pos, a.content.size(), a.content) != 0) continue;
        if (best != nullptr && best->content.size() >= a.content.size()) continue;
        if (a.single_word) {
          const size_t end = pos + a.content.size();
          if ((pos > 0 && is_word_byte(t[pos - 1])) || (end < t.size() && is_word_byte(t[end]))) continue;
        }
        best = &a;
      }
    }
    if (best == nullptr) {
      ++pos;
      continue;
    }
    size_t seg_end = pos;
    if (best->lstrip) {
      while (seg_end > seg_start && is_ascii_space(t[seg_end - 1])) --seg_end;
    }
    encode_text_segment(d, t.substr(seg_start, seg_end - seg_start), seg_start == 0, out);
    out.push_back(best->id);
    pos += best->content.size();
    if (best->rstrip) {
      while (pos < t.size() && is_ascii_space(t[pos])) ++pos;
    }
    seg_start = pos;
  }
  encode_text_segment(d, t.substr(seg_start), seg_start == 0, out);
  return out;
}

bool Tokenizer::produces_text(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= data_->pieces.size() || data_->pieces[id].empty())
    throw std::runtime_error(data_->source + ": token id " + std::to_string(id) + " is outside the vocabulary");
  if (data_->kind == ModelKind::kSentencePieceBpe && data_->kinds[id] == TokenKind::kControl) return false;
  return true;
}

bool Tokenizer::is_ordinary(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= data_->kinds.size())
    throw std::runtime_error(data_->source + ": token id " + std::to_string(id) + " is outside the vocabulary");
  return data_->kinds[id] == TokenKind::kNormal || data_->kinds[id] == TokenKind::kByte;
}

std::string_view Tokenizer::token_bytes(int32_t id, bool first_piece) const {
  if (id < 0 || static_cast<size_t>(id) >= data_->token_bytes.size())
    throw std::runtime_error(data_->source + ": token id " + std::to_string(id) + " is outside the vocabulary");
  std::string_view b = data_->token_bytes[id];
  if (first_piece && data_->strip_leading_space && data_->kinds[id] == TokenKind::kNormal && !b.empty() &&
      b.front() == ' ')
    b.remove_prefix(1);
  return b;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  StreamDecoder dec(*this);
  std::string out;
  for (int32_t id : ids) out += dec.push(id);
  out += dec.flush();
  return out;
}

int32_t Tokenizer::bos_id() const { return data_->bos_id; }
int32_t Tokenizer::eos_id() const { return data_->eos_id; }
int32_t Tokenizer::eot_id() const { return data_->eot_id; }
bool Tokenizer::add_bos_by_default() const { return data_->bos_id >= 0 && data_->add_bos.value_or(true); }
std::string Tokenizer::bos_token() const { return data_->bos_id >= 0 ? data_->pieces[data_->bos_id] : std::string(); }
std::string Tokenizer::eos_token() const { return data_->eos_id >= 0 ? data_->pieces[data_->eos_id] : std::string(); }
size_t Tokenizer::vocab_size() const { return data_->pieces.size(); }

const std::string& Tokenizer::id_to_piece(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= data_->pieces.size())
    throw std::runtime_error(data_->source + ": token id " + std::to_string(id) + " is outside the vocabulary");
  return data_->pieces[id];
}

std::string Tokenizer::to_hf_tokenizer_json() const { return tok::export_hf_tokenizer_json(*data_); }
std::string Tokenizer::to_hf_tokenizer_config_json() const { return tok::export_hf_tokenizer_config_json(*data_); }
const std::string& Tokenizer::chat_template_source() const { return data_->chat_template; }

struct StreamDecoder::Pending {
  tok::Utf8LossyDecoder utf8;
};

StreamDecoder::StreamDecoder(const Tokenizer& tok) : tok_(tok), pending_(std::make_unique<Pending>()) {}
StreamDecoder::~StreamDecoder() = default;

std::string StreamDecoder::push(int32_t id) {
  if (!tok_.produces_text(id)) return {};
  const std::string_view bytes = tok_.token_bytes(id, !seen_text_);
  seen_text_ = true;
  return pending_->utf8.push(bytes);
}

std::string StreamDecoder::flush() { return pending_->utf8.flush(); }

}  // namespace fleet
