// Hugging Face tokenizer.json (model type BPE): byte-level vocabularies (GPT-2,
// Llama 3, Qwen) and SentencePiece-style ones (▁ pieces with byte fallback).
// tokenizer_config.json next to it supplies bos/eos, add_bos_token and the chat template.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "byte_level.h"
#include "tokenizer_data.h"

namespace fleet::tok {
namespace {
using nlohmann::json;

constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct Loader {
  std::string path;
  bool byte_level = false;

  std::runtime_error error(const std::string& what) const { return std::runtime_error(path + ": " + what); }

  // A token id: an integer in [0, 10^7]. json's get<int32_t>() would cast a float (undefined
  // behaviour out of range) and wrap a large integer; a negative added-token id indexed pieces.
  int32_t token_id(const json& v, const std::string& what) const {
    if (!v.is_number() && !v.is_boolean()) (void)v.get<int32_t>();  // json's type_error: "unexpected structure"
    if (!v.is_number_integer() || (v.is_number_unsigned() ? v.get<uint64_t>() > 10'000'000
                                                          : v.get<int64_t>() < 0 || v.get<int64_t>() > 10'000'000))
      throw error("bad " + what + " id " + v.dump());
    return static_cast<int32_t>(v.get<int64_t>());
  }

  std::string pattern_of(const json& pat, bool* is_regex) const {
    if (pat.contains("Regex")) {
      *is_regex = true;
      return pat.at("Regex").get<std::string>();
    }
    if (pat.contains("String")) {
      *is_regex = false;
      return pat.at("String").get<std::string>();
    }
    throw error("pattern must be {\"String\": ...} or {\"Regex\": ...}");
  }

  static std::string regex_escape(const std::string& s) {
    std::string r;
    for (char c : s) {
      if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) r.push_back('\\');
      r.push_back(c);
    }
    return r;
  }

  void parse_normalizer(const json& n, TokenizerData& d) const {
    if (n.is_null()) return;
    const std::string type = n.at("type").get<std::string>();
    if (type == "Sequence") {
      for (const auto& s : n.at("normalizers")) parse_normalizer(s, d);
    } else if (type == "NFC") {
      d.normalizer.push_back({NormalizerStep::Kind::kNfc, "", "", nullptr});
    } else if (type == "Prepend") {
      d.normalizer.push_back({NormalizerStep::Kind::kPrepend, "", n.at("prepend").get<std::string>(), nullptr});
    } else if (type == "Replace") {
      bool is_regex = false;
      std::string pat = pattern_of(n.at("pattern"), &is_regex);
      const std::string content = n.at("content").get<std::string>();
      if (is_regex) {
        auto re = std::make_shared<Regex>(pat);
        d.normalizer.push_back({NormalizerStep::Kind::kReplaceRegex, pat, content, re});
      } else {
        d.normalizer.push_back({NormalizerStep::Kind::kReplaceLiteral, pat, content, nullptr});
      }
    } else {
      throw error("unsupported normalizer type '" + type + "'");
    }
  }

  void parse_pre_tokenizer(const json& p, TokenizerData& d) {
    if (p.is_null()) return;
    const std::string type = p.at("type").get<std::string>();
    if (type == "Sequence") {
      for (const auto& s : p.at("pretokenizers")) parse_pre_tokenizer(s, d);
    } else if (type == "Split") {
      bool is_regex = false;
      std::string pat = pattern_of(p.at("pattern"), &is_regex);
      const std::string behavior = p.value("behavior", "Isolated");
      if (behavior != "Isolated" || p.value("invert", false))
        throw error("unsupported Split pre-tokenizer (behavior '" + behavior + "', invert)");
      d.split_regexes.push_back(std::make_shared<Regex>(is_regex ? pat : regex_escape(pat)));
    } else if (type == "ByteLevel") {
      byte_level = true;
      d.byte_level_add_prefix_space = p.value("add_prefix_space", false);
      if (p.value("use_regex", true)) d.split_regexes.push_back(std::make_shared<Regex>(kGpt2Pattern));
    } else if (type == "Metaspace") {
      d.metaspace.enabled = true;
      d.metaspace.replacement = p.value("replacement", std::string("\xE2\x96\x81"));
      d.metaspace.split = p.value("split", true);
      const std::string scheme =
          p.contains("prepend_scheme") ? p.at("prepend_scheme").get<std::string>()
                                       : (p.value("add_prefix_space", true) ? "always" : "never");
      if (scheme == "always") {
        d.metaspace.prepend = Metaspace::Prepend::kAlways;
      } else if (scheme == "first") {
        d.metaspace.prepend = Metaspace::Prepend::kFirst;
      } else if (scheme == "never") {
        d.metaspace.prepend = Metaspace::Prepend::kNever;
      } else {
        throw error("unsupported Metaspace prepend_scheme '" + scheme + "'");
      }
    } else {
      throw error("unsupported pre_tokenizer type '" + type + "'");
    }
  }

  static bool mentions_type(const json& j, const std::string& type) {
    if (j.is_object()) {
      if (j.contains("type") && j.at("type") == type) return true;
      for (const auto& [k, v] : j.items())
        if (mentions_type(v, type)) return true;
    } else if (j.is_array()) {
      for (const auto& v : j)
        if (mentions_type(v, type)) return true;
    }
    return false;
  }

  static std::string token_content(const json& t) {
    if (t.is_string()) return t.get<std::string>();
    if (t.is_object() && t.contains("content")) return t.at("content").get<std::string>();
    return {};
  }

  void read_config(const std::filesystem::path& dir, TokenizerData& d) const {
    const auto cfg_path = dir / "tokenizer_config.json";
    std::ifstream in(cfg_path);
    if (!in) return;
    json cfg;
    try {
      cfg = json::parse(in);
    } catch (const json::exception& e) {
      throw std::runtime_error(cfg_path.string() + ": invalid JSON: " + e.what());
    }
    auto id_of = [&](const char* key) -> int32_t {
      if (!cfg.contains(key)) return -2;  // not mentioned
      const std::string content = token_content(cfg.at(key));
      if (content.empty()) return -1;
      for (const auto& a : d.added)
        if (a.content == content) return a.id;
      if (auto it = d.model_vocab.find(content); it != d.model_vocab.end()) return it->second;
      return -1;
    };
    if (const int32_t b = id_of("bos_token"); b != -2) d.bos_id = b;
    if (const int32_t e = id_of("eos_token"); e != -2) d.eos_id = e;
    if (cfg.contains("add_bos_token")) {
      const json& ab = cfg.at("add_bos_token");
      if (!ab.is_boolean()) throw std::runtime_error(cfg_path.string() + ": add_bos_token must be true or false");
      d.add_bos = ab.get<bool>();
    }
    if (cfg.contains("chat_template")) {
      const json& ct = cfg.at("chat_template");
      if (ct.is_string()) {
        d.chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {
        for (const auto& t : ct)
          if (t.value("name", "") == "default") d.chat_template = t.value("template", "");
      }
    }
  }

  std::unique_ptr<TokenizerData> load() {
    std::ifstream in(path);
    if (!in) throw error("cannot open");
    json j;
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw error(std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object() || !j.contains("model")) throw error("not a tokenizer.json (no \"model\")");
    auto d = std::make_unique<TokenizerData>();
    d->source = path;
    try {
      fill(j, *d);
    } catch (const json::exception& e) {
      throw error(std::string("unexpected structure: ") + e.what());
    } catch (const std::runtime_error& e) {
      if (std::string_view(e.what()).rfind(path, 0) == 0) throw;
      throw error(e.what());  // e.g. a regex that does not compile
    }
    read_config(std::filesystem::path(path).parent_path(), *d);
    detect_end_of_turn(*d);
    return d;
  }

  void fill(const json& j, TokenizerData& d) {
    const json& model = j.at("model");
    const std::string type = model.value("type", "BPE");
    if (type != "BPE") throw error("unsupported model type '" + type + "' (only BPE)");
    parse_normalizer(j.value("normalizer", json()), d);
    parse_pre_tokenizer(j.value("pre_tokenizer", json()), d);
    byte_level = byte_level || mentions_type(j.value("decoder", json()), "ByteLevel");
    d.kind = byte_level ? ModelKind::kByteLevelBpe : ModelKind::kSentencePieceBpe;

    // Vocabulary: model vocab plus added tokens.
    StringIdMap piece_to_id;
    int32_t max_id = -1;
    for (const auto& [piece, id] : model.at("vocab").items()) {
      const int32_t i = token_id(id, "vocabulary");
      piece_to_id.emplace(piece, i);
      max_id = std::max(max_id, i);
    }
    const json added = j.value("added_tokens", json::array());
    for (const auto& a : added) max_id = std::max(max_id, token_id(a.at("id"), "added token"));
    d.pieces.assign(static_cast<size_t>(max_id + 1), std::string());
    for (const auto& [piece, id] : piece_to_id) d.pieces[id] = piece;

    d.byte_fallback = model.value("byte_fallback", false);
    d.fuse_unk = model.value("fuse_unk", false);
    d.ignore_merges = model.value("ignore_merges", false);
    if (model.contains("unk_token") && model.at("unk_token").is_string()) {
      auto it = piece_to_id.find(model.at("unk_token").get<std::string>());
      if (it != piece_to_id.end()) d.unk_id = it->second;
    }

    if (d.kind == ModelKind::kByteLevelBpe) {
      const auto& alpha = byte_level_alphabet();
      d.kinds.assign(d.pieces.size(), TokenKind::kNormal);
      d.token_bytes.assign(d.pieces.size(), std::string());
      std::string raw;
      for (const auto& [piece, id] : piece_to_id) {
        if (!alpha.to_bytes(piece, raw)) continue;  // not byte-level text: only reachable as an added token
        d.token_bytes[id] = raw;
        d.model_vocab.emplace(raw, id);
        if (raw.size() == 1) d.byte_token[static_cast<unsigned char>(raw[0])] = id;
      }
    } else {
      classify_sentencepiece_pieces(d);
      for (const auto& [piece, id] : piece_to_id)
        if (d.kinds[id] == TokenKind::kNormal) d.model_vocab.emplace(piece, id);
      bool prepends = d.metaspace.enabled && d.metaspace.prepend != Metaspace::Prepend::kNever;
      for (const auto& s : d.normalizer) prepends = prepends || s.kind == NormalizerStep::Kind::kPrepend;
      d.strip_leading_space = prepends;
    }

    // Merges: "a b" strings or [a, b] pairs; rank = position.
    const json& merges = model.at("merges");
    d.merges.reserve(merges.size());
    int32_t rank = 0;
    for (const auto& m : merges) {
      std::string a, b;
      if (m.is_array() && m.size() == 2) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos) throw error("merge '" + s + "' is not 'left right'");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        throw error("merge entry is neither a string nor a pair");
      }
      auto la = piece_to_id.find(a), lb = piece_to_id.find(b), lr = piece_to_id.find(a + b);
      if (la == piece_to_id.end() || lb == piece_to_id.end() || lr == piece_to_id.end())
        throw error("merge '" + a + " " + b + "' refers to a piece not in the vocabulary");
      d.merges.add(la->second, lb->second, rank++, lr->second);
    }

    for (const auto& a : added) {
      AddedToken t;
      t.id = token_id(a.at("id"), "added token");
      t.content = a.at("content").get<std::string>();
      t.special = a.value("special", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
      d.pieces[t.id] = t.content;
      d.model_vocab.erase(t.content);
      if (d.kind == ModelKind::kByteLevelBpe) {
        d.kinds[t.id] = TokenKind::kUserDefined;
        d.token_bytes[t.id] = t.content;
      } else {
        d.kinds[t.id] = t.id == d.unk_id ? TokenKind::kUnknown
                                         : (t.special ? TokenKind::kControl : TokenKind::kUserDefined);
      }
      if (t.content == "<s>" || t.content == "<|begin_of_text|>") d.bos_id = t.id;
      if (t.content == "</s>" || t.content == "<|endoftext|>" || t.content == "<|end_of_text|>") d.eos_id = t.id;
      d.added.push_back(std::move(t));
    }
    if (d.kind == ModelKind::kSentencePieceBpe) fill_sentencepiece_token_bytes(d);
  }
};

}  // namespace

std::unique_ptr<TokenizerData> load_hf_tokenizer_json(const std::string& path) {
  Loader l;
  l.path = path;
  return l.load();
}

}  // namespace fleet::tok
