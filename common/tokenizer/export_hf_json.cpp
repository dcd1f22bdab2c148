// Writes a Hugging Face tokenizer.json / tokenizer_config.json equivalent to a
// SentencePiece-style vocabulary (e.g. one loaded from llama2.c's tokenizer.bin).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <tuple>

#include "tokenizer_data.h"

namespace fleet::tok {
namespace {
using nlohmann::ordered_json;

const char* kSpace = "\xE2\x96\x81";

void require_sentencepiece(const TokenizerData& d) {
  if (d.kind != ModelKind::kSentencePieceBpe)
    throw std::runtime_error(d.source + ": Hugging Face export is implemented for SentencePiece-style vocabularies only");
}

ordered_json added_token_json(int32_t id, const std::string& content, bool special) {
  return ordered_json{{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
                      {"rstrip", false},   {"normalized", false}, {"special", special}};
}

std::vector<std::tuple<int32_t, int32_t, std::string>> special_tokens(const TokenizerData& d) {
  std::vector<std::tuple<int32_t, int32_t, std::string>> out;  // id, kind, content
  for (size_t id = 0; id < d.pieces.size(); ++id) {
    const TokenKind k = d.kinds[id];
    if (k == TokenKind::kControl || k == TokenKind::kUnknown || k == TokenKind::kUserDefined)
      out.emplace_back(static_cast<int32_t>(id), static_cast<int32_t>(k), d.pieces[id]);
  }
  return out;
}

}  // namespace

std::string export_hf_tokenizer_json(const TokenizerData& d) {
  require_sentencepiece(d);
  ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  ordered_json added = ordered_json::array();
  for (const auto& [id, kind, content] : special_tokens(d))
    added.push_back(added_token_json(id, content, kind != static_cast<int32_t>(TokenKind::kUserDefined)));
  j["added_tokens"] = added;

  // SentencePiece's normalizer as a Hugging Face normalizer sequence.
  ordered_json norms = ordered_json::array();
  if (d.sp_native_normalizer) {
    if (d.remove_extra_whitespaces) {
      norms.push_back({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}});
      norms.push_back({{"type", "Replace"}, {"pattern", {{"Regex", "\\A | \\z"}}}, {"content", ""}});
    }
    if (d.add_dummy_prefix) norms.push_back({{"type", "Prepend"}, {"prepend", kSpace}});
    if (d.escape_whitespaces) norms.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}});
  } else {
    throw std::runtime_error(d.source + ": Hugging Face export is implemented for tokenizer.bin vocabularies only");
  }
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", norms}};
  j["pre_tokenizer"] = nullptr;
  ordered_json post;
  if (d.bos_id >= 0) {
    const std::string bos = d.pieces[d.bos_id];
    post = {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair",
             {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
              {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{bos, {{"id", bos}, {"ids", {d.bos_id}}, {"tokens", {bos}}}}}}};
  }
  j["post_processor"] = post;
  ordered_json decoders = ordered_json::array();
  decoders.push_back({{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}});
  decoders.push_back({{"type", "ByteFallback"}});
  decoders.push_back({{"type", "Fuse"}});
  if (d.add_dummy_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  j["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};

  ordered_json vocab = ordered_json::object();
  for (size_t id = 0; id < d.pieces.size(); ++id) vocab[d.pieces[id]] = id;
  // Merges ordered as SentencePiece applies them: merged piece's score rank, then ids.
  std::vector<std::tuple<int32_t, int32_t, int32_t>> merges;  // rank, left, right
  merges.reserve(d.merges.size());
  d.merges.for_each([&](int32_t l, int32_t r, const MergeResult& m) { merges.emplace_back(m.rank, l, r); });
  std::sort(merges.begin(), merges.end());
  ordered_json merge_list = ordered_json::array();
  for (const auto& [rank, l, r] : merges) merge_list.push_back(d.pieces[l] + " " + d.pieces[r]);
  ordered_json model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = d.unk_id >= 0 ? ordered_json(d.pieces[d.unk_id]) : ordered_json(nullptr);
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = true;
  model["byte_fallback"] = d.byte_fallback;
  model["ignore_merges"] = false;
  model["vocab"] = vocab;
  model["merges"] = merge_list;
  j["model"] = model;
  return j.dump(2);
}

std::string export_hf_tokenizer_config_json(const TokenizerData& d) {
  require_sentencepiece(d);
  ordered_json j;
  j["add_bos_token"] = d.bos_id >= 0 && d.add_bos.value_or(true);
  j["add_eos_token"] = false;
  ordered_json decoder = ordered_json::object();
  for (const auto& [id, kind, content] : special_tokens(d)) {
    ordered_json t = added_token_json(id, content, kind != static_cast<int32_t>(TokenKind::kUserDefined));
    t.erase("id");
    decoder[std::to_string(id)] = t;
  }
  j["added_tokens_decoder"] = decoder;
  j["bos_token"] = d.bos_id >= 0 ? ordered_json(d.pieces[d.bos_id]) : ordered_json(nullptr);
  j["eos_token"] = d.eos_id >= 0 ? ordered_json(d.pieces[d.eos_id]) : ordered_json(nullptr);
  j["unk_token"] = d.unk_id >= 0 ? ordered_json(d.pieces[d.unk_id]) : ordered_json(nullptr);
  j["pad_token"] = nullptr;
  j["clean_up_tokenization_spaces"] = false;
  j["legacy"] = true;
  j["model_max_length"] = 1000000000000000019884624838656.0;
  j["sp_model_kwargs"] = ordered_json::object();
  j["tokenizer_class"] = "LlamaTokenizer";
  if (!d.chat_template.empty()) j["chat_template"] = d.chat_template;
  return j.dump(2);
}

}  // namespace fleet::tok
