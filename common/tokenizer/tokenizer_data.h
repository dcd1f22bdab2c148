#pragma once
// Internal representation shared by the loaders, the encoder and the decoder.
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bpe.h"
#include "pretokenizer_regex.h"

namespace fleet::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

enum class ModelKind { kSentencePieceBpe, kByteLevelBpe };

enum class TokenKind : uint8_t {
  kNormal,       // ordinary vocabulary piece
  kControl,      // <s>, </s>: decode to nothing in SentencePiece-style
  kUnknown,      // <unk>
  kByte,         // <0xNN> byte-fallback piece
  kUserDefined,  // added token, decodes to its content
};

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;  // only matched in text when EncodeOptions::allow_special
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

// One step of a Hugging Face normalizer sequence.
struct NormalizerStep {
  enum class Kind { kNfc, kPrepend, kReplaceLiteral, kReplaceRegex } kind;
  std::string pattern;  // kReplaceLiteral / kReplaceRegex
  std::string content;  // replacement, or text to prepend
  std::shared_ptr<Regex> regex;
};

// Hugging Face Metaspace pre-tokenizer (SentencePiece-style tokenizer.json files).
struct Metaspace {
  bool enabled = false;
  std::string replacement = "\xE2\x96\x81";
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;
};

struct TokenizerData {
  std::string source;  // path it came from, for error messages
  uint64_t instance_id = next_instance_id();  // keys the per-thread word cache
  ModelKind kind = ModelKind::kSentencePieceBpe;
  std::vector<std::string> pieces;       // id -> piece as stored (with ▁ / GPT-2 byte chars)
  std::vector<std::string> token_bytes;  // id -> bytes it decodes to
  std::vector<TokenKind> kinds;
  std::vector<float> scores;  // SentencePiece scores (tokenizer.bin), else empty
  // Model lookup: SentencePiece-style by piece text, byte-level by raw bytes.
  StringIdMap model_vocab;
  BpeMerges merges;
  int32_t byte_token[256];  // byte -> id (<0xNN> pieces / byte-level single bytes), -1 if none
  bool byte_fallback = false;
  int32_t unk_id = -1;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t eot_id = -1;            // end of turn (<|im_end|>, <|eot_id|>, ...), -1 if none known
  std::optional<bool> add_bos;    // the model's BOS policy, when its files state one
  bool ignore_merges = false;
  bool fuse_unk = false;
  // Decoding strips the leading space of the first piece (SentencePiece dummy prefix).
  bool strip_leading_space = false;
  // ByteLevel pre-tokenizer add_prefix_space.
  bool byte_level_add_prefix_space = false;

  std::vector<AddedToken> added;

  // SentencePiece-native normalizer (tokenizer.bin); tokenizer.json uses `normalizer`.
  bool sp_native_normalizer = false;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;

  std::vector<NormalizerStep> normalizer;
  Metaspace metaspace;
  std::vector<std::shared_ptr<Regex>> split_regexes;  // Split / ByteLevel(use_regex) steps, in order

  std::string chat_template;  // tokenizer_config.json next to the file, or the GGUF's tokenizer.chat_template

  static uint64_t next_instance_id() {
    static std::atomic<uint64_t> counter{1};
    return counter.fetch_add(1);
  }
  TokenizerData() {
    for (auto& b : byte_token) b = -1;
  }
};

// Loaders (throw std::runtime_error naming the file).
std::unique_ptr<TokenizerData> load_llama2c_tokenizer_bin(const std::string& path);
std::unique_ptr<TokenizerData> load_hf_tokenizer_json(const std::string& path);
// The tokenizer.ggml.* metadata of a GGUF file (model gpt2 or llama), as llama.cpp reads it.
std::unique_ptr<TokenizerData> load_gguf_tokenizer(const std::string& path);
// Sets eot_id, when unset, from the first end-of-turn token text the vocabulary holds.
void detect_end_of_turn(TokenizerData& d);
// Builds the SentencePiece merge table from piece scores (highest score merges first).
void build_merges_from_scores(TokenizerData& d);
// The byte of a "<0xNN>" piece, or -1 if it is not one.
int parse_byte_piece(const std::string& piece);
// Marks <0xNN> pieces as byte tokens and fills byte_token.
void classify_sentencepiece_pieces(TokenizerData& d);
// Fills token_bytes for SentencePiece-style pieces.
void fill_sentencepiece_token_bytes(TokenizerData& d);

std::string export_hf_tokenizer_json(const TokenizerData& d);
std::string export_hf_tokenizer_config_json(const TokenizerData& d);

}  // namespace fleet::tok
