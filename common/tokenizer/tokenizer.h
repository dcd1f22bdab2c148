#pragma once
// Tokenizers for the model families fleet serves: SentencePiece-style BPE (the "▁"
// whitespace convention with byte fallback: Llama 2, Mistral, TinyLlama, llama2.c's
// tok512) and byte-level BPE with a PCRE2 pre-tokenizer (GPT-2, Llama 3, Qwen2/3).
// Both load from Hugging Face tokenizer.json; SentencePiece-style also from llama2.c's
// tokenizer.bin, and both from a GGUF file's tokenizer.ggml.* metadata. Ids match the
// reference tokenizers (SentencePiece, HF tokenizers; llama.cpp for GGUF files).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fleet {

struct EncodeOptions {
  bool add_bos = false;        // prepend bos_id() when the vocabulary has one
  bool allow_special = false;  // text may contain special tokens (matched whole)
};

namespace tok {
struct TokenizerData;
}

class Tokenizer {
 public:
  // PATH: tokenizer.json, llama2.c tokenizer.bin, a GGUF file (recognised by its "GGUF"
  // magic, whatever its name), or a directory holding tokenizer.json (else tokenizer.bin,
  // else its only .gguf). Throws std::runtime_error naming the file and problem on bad input.
  static std::unique_ptr<Tokenizer> load(const std::string& path);
  explicit Tokenizer(std::unique_ptr<tok::TokenizerData> data);
  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Malformed UTF-8 in text is replaced by U+FFFD the way the family's reference does:
  // one per byte for SentencePiece-style, one per maximal subpart for byte-level
  // (Python's bytes.decode('utf-8', 'replace')).
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opt = {}) const;
  // One-shot decode. SentencePiece-style: "▁" becomes a space, the leading space of
  // the first piece is stripped, <0xNN> become raw bytes, control tokens vanish.
  // The result is valid UTF-8: incomplete or malformed byte sequences become U+FFFD.
  // Throws std::runtime_error for ids outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;
  int32_t bos_id() const;  // -1 if none
  int32_t eos_id() const;  // -1 if none
  int32_t eot_id() const;  // end of turn (<|im_end|>, <|eot_id|>, ...); -1 if none known
  // Whether prompts start with BOS: the model's add_bos_token (GGUF tokenizer.ggml.add_bos_token,
  // else llama.cpp's default for the vocabulary; tokenizer_config.json), true where it says
  // nothing (llama2.c). False when there is no BOS token.
  bool add_bos_by_default() const;
  // Piece text of BOS / EOS ("" if none), e.g. for a chat template's bos_token / eos_token.
  std::string bos_token() const;
  std::string eos_token() const;
  size_t vocab_size() const;
  // Piece text as stored in the vocabulary (e.g. "▁the", "<0x0A>", "Ġthe").
  const std::string& id_to_piece(int32_t id) const;
  // Hugging Face tokenizer.json / tokenizer_config.json equivalent to this tokenizer
  // (SentencePiece-style vocabularies; throws for byte-level ones).
  std::string to_hf_tokenizer_json() const;
  std::string to_hf_tokenizer_config_json() const;
  // The model's Jinja chat template: tokenizer.chat_template of a GGUF file, else chat_template
  // from the tokenizer_config.json found next to the loaded file (empty if there was none).
  const std::string& chat_template_source() const;

  // Internal: the bytes one id contributes to decoded text, given whether it is the
  // first text-producing piece (used by StreamDecoder).
  std::string_view token_bytes(int32_t id, bool first_piece) const;
  bool produces_text(int32_t id) const;
  // A vocabulary piece or a byte token: not a control, unknown or added (special) token.
  bool is_ordinary(int32_t id) const;

 private:
  std::unique_ptr<tok::TokenizerData> data_;
};

// Streaming-safe decoding: never emits half a UTF-8 character. The concatenation of
// all push() results and flush() equals Tokenizer::decode of the same ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok);
  ~StreamDecoder();
  std::string push(int32_t id);  // text that became final with this id (may be empty)
  std::string flush();           // whatever remains

 private:
  const Tokenizer& tok_;
  bool seen_text_ = false;
  struct Pending;
  std::unique_ptr<Pending> pending_;
};

// Chat templates live in common/chat (chat/chat.h).

}  // namespace fleet
