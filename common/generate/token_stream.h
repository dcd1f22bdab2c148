#pragma once
// Sampled tokens -> streamed text, and the decision when generation ends (a stop token, a
// stop string, max_tokens). One implementation for the one-process loop (generate()) and the
// fleet's last stage (GenerationTail), so both end a request identically.
#include <cstdint>
#include <string>
#include <vector>

#include "sampling/stop_matcher.h"
#include "tokenizer/tokenizer.h"

namespace fleet {

class TokenStream {
 public:
  TokenStream(const Tokenizer& tok, std::vector<int32_t> stop_tokens, std::vector<std::string> stop_strings,
              int max_tokens);

  struct Pushed {
    bool accepted = false;       // part of the output (a stop token is not)
    std::string text;            // text that became final with this token
    bool finished = false;       // generation ends here
    const char* finish_reason = "";  // "stop" or "length" when finished
  };
  // The token sampled at index generated().
  Pushed push(int32_t token);
  // At the end: the text still held back (an unfinished stop-string prefix, the last bytes
  // of a character); empty after a stop string.
  std::string flush();

  int generated() const { return generated_; }
  const std::string& text() const { return text_; }

 private:
  std::vector<int32_t> stop_tokens_;
  int max_tokens_;
  StreamDecoder decoder_;
  StopMatcher stop_;
  int generated_ = 0;
  std::string text_;
};

}  // namespace fleet
