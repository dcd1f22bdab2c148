// The tokenizer.json loader (common/tokenizer/load_hf_json.cpp) through Tokenizer::load, which
// takes a path: the input is written to a scratch tokenizer.json. A tokenizer that loads must
// encode and decode a fixed text without crashing (errors it reports are fine).
#include <exception>
#include <vector>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fleet::fuzz::write_scratch("tokenizer.json", data, size);
  std::unique_ptr<fleet::Tokenizer> tok;
  try {
    tok = fleet::Tokenizer::load(path);
  } catch (const std::exception&) {
    return 0;
  }
  try {
    const std::vector<int32_t> ids =
        tok->encode("Hello, world! <s> \xC3\xA9t\xC3\xA9 \xF0\x9F\x99\x82 \xFF 12345\n", {.add_bos = true, .allow_special = true});
    (void)tok->decode(ids);
    fleet::StreamDecoder stream(*tok);
    for (int32_t id = 0; id < static_cast<int32_t>(tok->vocab_size()) && id < 512; ++id) (void)stream.push(id);
    (void)stream.flush();
  } catch (const std::exception&) {
  }
  return 0;
}
