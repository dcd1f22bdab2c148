// llama2.c tokenizer.bin: int32 max_token_length, then per token: float32 score,
// int32 length, bytes. Pieces there use " " for SentencePiece's "▁" and wrap BOS/EOS
// in newlines; it carries no normalizer settings, so SentencePiece's defaults for
// these models apply (see ../shared/models/README.md).
#include <algorithm>
#include <cstring>
#include <functional>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "tokenizer_data.h"

namespace fleet::tok {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

int parse_byte_piece(const std::string& p) {
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  const int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

void fill_sentencepiece_token_bytes(TokenizerData& d) {
  d.token_bytes.assign(d.pieces.size(), std::string());
  for (size_t id = 0; id < d.pieces.size(); ++id) {
    const std::string& p = d.pieces[id];
    switch (d.kinds[id]) {
      case TokenKind::kControl:
        break;
      case TokenKind::kUnknown:
        d.token_bytes[id] = " \xE2\x81\x87 ";  // SentencePiece renders <unk> as " ⁇ "
        break;
      case TokenKind::kByte:
        d.token_bytes[id] = std::string(1, static_cast<char>(parse_byte_piece(p)));
        break;
      case TokenKind::kUserDefined:
        d.token_bytes[id] = p;
        break;
      case TokenKind::kNormal: {
        std::string s;
        for (size_t i = 0; i < p.size();) {
          if (p.compare(i, 3, "\xE2\x96\x81") == 0) {
            s.push_back(' ');
            i += 3;
          } else {
            s.push_back(p[i++]);
          }
        }
        d.token_bytes[id] = std::move(s);
        break;
      }
    }
  }
}

// Classifies SentencePiece-style pieces and fills the byte table.
void classify_sentencepiece_pieces(TokenizerData& d) {
  d.kinds.assign(d.pieces.size(), TokenKind::kNormal);
  for (size_t id = 0; id < d.pieces.size(); ++id) {
    const std::string& p = d.pieces[id];
    const int byte = parse_byte_piece(p);
    if (byte >= 0) {
      d.kinds[id] = TokenKind::kByte;
      d.byte_token[byte] = static_cast<int32_t>(id);
    }
  }
}

void build_merges_from_scores(TokenizerData& d) {
  // Rank = position of the merged piece's score among the distinct scores, highest
  // first, so equal scores tie and the leftmost pair wins (SentencePiece's order).
  std::vector<float> distinct;
  for (size_t id = 0; id < d.pieces.size(); ++id)
    if (d.kinds[id] == TokenKind::kNormal) distinct.push_back(d.scores[id]);
  std::sort(distinct.begin(), distinct.end(), std::greater<float>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  auto rank_of = [&](float s) {
    return static_cast<int32_t>(std::lower_bound(distinct.begin(), distinct.end(), s, std::greater<float>()) -
                                distinct.begin());
  };
  for (size_t id = 0; id < d.pieces.size(); ++id) {
    if (d.kinds[id] != TokenKind::kNormal) continue;
    const std::string& p = d.pieces[id];
    for (size_t cut = 1; cut < p.size(); ++cut) {
      if ((static_cast<unsigned char>(p[cut]) & 0xC0) == 0x80) continue;  // inside a character
      auto l = d.model_vocab.find(std::string_view(p).substr(0, cut));
      auto r = d.model_vocab.find(std::string_view(p).substr(cut));
      if (l == d.model_vocab.end() || r == d.model_vocab.end()) continue;
      d.merges.add(l->second, r->second, rank_of(d.scores[id]), static_cast<int32_t>(id));
    }
  }
}

std::unique_ptr<TokenizerData> load_llama2c_tokenizer_bin(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto fail = [&](const std::string& what) { return std::runtime_error(path + ": not a llama2.c tokenizer.bin: " + what); };
  if (bytes.size() < 4) throw fail("file too short");
  int32_t max_len = 0;
  std::memcpy(&max_len, bytes.data(), 4);
  if (max_len <= 0 || max_len > 4096) throw fail("bad max_token_length " + std::to_string(max_len));
  auto d = std::make_unique<TokenizerData>();
  d->source = path;
  d->kind = ModelKind::kSentencePieceBpe;
  size_t off = 4;
  while (off < bytes.size()) {
    if (bytes.size() - off < 8) throw fail("truncated entry for token " + std::to_string(d->pieces.size()));
    float score = 0;
    int32_t len = 0;
    std::memcpy(&score, bytes.data() + off, 4);
    std::memcpy(&len, bytes.data() + off + 4, 4);
    off += 8;
    if (len < 0 || len > max_len || static_cast<size_t>(len) > bytes.size() - off)
      throw fail("bad length " + std::to_string(len) + " for token " + std::to_string(d->pieces.size()));
    std::string piece = bytes.substr(off, static_cast<size_t>(len));
    off += static_cast<size_t>(len);
    if (piece == "\n<s>\n") piece = "<s>";
    if (piece == "\n</s>\n") piece = "</s>";
    std::string sp;  // " " back to "▁"
    for (char c : piece) {
      if (c == ' ') {
        sp.append("\xE2\x96\x81");
      } else {
        sp.push_back(c);
      }
    }
    d->pieces.push_back(std::move(sp));
    d->scores.push_back(score);
  }
  if (d->pieces.empty()) throw fail("no tokens");
  classify_sentencepiece_pieces(*d);
  for (size_t id = 0; id < d->pieces.size(); ++id) {
    const std::string& p = d->pieces[id];
    const auto i = static_cast<int32_t>(id);
    if (p == "<unk>") {
      d->kinds[id] = TokenKind::kUnknown;
      d->unk_id = i;
    } else if (p == "<s>" || p == "</s>") {
      d->kinds[id] = TokenKind::kControl;
      (p == "<s>" ? d->bos_id : d->eos_id) = i;
      d->added.push_back(AddedToken{i, p, true});
    } else if (d->kinds[id] == TokenKind::kNormal) {
      d->model_vocab.emplace(p, i);
    }
  }
  d->byte_fallback = true;
  d->sp_native_normalizer = true;
  d->add_dummy_prefix = true;
  d->remove_extra_whitespaces = true;
  d->escape_whitespaces = true;
  d->strip_leading_space = true;
  build_merges_from_scores(*d);
  fill_sentencepiece_token_bytes(*d);
  return d;
}

}  // namespace fleet::tok
