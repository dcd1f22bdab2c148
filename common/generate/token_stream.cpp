#include "generate/token_stream.h"

#include <algorithm>

namespace fleet {

TokenStream::TokenStream(const Tokenizer& tok, std::vector<int32_t> stop_tokens, std::vector<std::string> stop_strings,
                         int max_tokens)
    : stop_tokens_(std::move(stop_tokens)), max_tokens_(max_tokens), decoder_(tok), stop_(std::move(stop_strings)) {}

TokenStream::Pushed TokenStream::push(int32_t token) {
  Pushed r;
  if (std::find(stop_tokens_.begin(), stop_tokens_.end(), token) != stop_tokens_.end()) {
    r.finished = true;
    r.finish_reason = "stop";
    return r;
  }
  r.accepted = true;
  ++generated_;
  r.text = stop_.push(decoder_.push(token));
  text_ += r.text;
  if (stop_.stopped()) {
    r.finished = true;
    r.finish_reason = "stop";
  } else if (generated_ >= max_tokens_) {
    r.finished = true;
    r.finish_reason = "length";
  }
  return r;
}

std::string TokenStream::flush() {
  if (stop_.stopped()) return "";
  std::string s = stop_.push(decoder_.flush());  // the decoder's bytes first, then what the matcher holds
  s += stop_.flush();
  text_ += s;
  return s;
}

}  // namespace fleet
