// llama2.c's tokenizer.bin loader (common/tokenizer/load_llama2c.cpp) through Tokenizer::load
// (a path: the input is written to a scratch tokenizer.bin); a loaded tokenizer must encode,
// decode and export to tokenizer.json without crashing.
#include <exception>
#include <vector>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fleet::fuzz::write_scratch("tokenizer.bin", data, size);
  std::unique_ptr<fleet::Tokenizer> tok;
  try {
    tok = fleet::Tokenizer::load(path);
  } catch (const std::exception&) {
    return 0;
  }
  try {
    const std::vector<int32_t> ids = tok->encode("Once upon a time \xC3\xA9 \xFF\n  x", {.add_bos = true});
    (void)tok->decode(ids);
    fleet::StreamDecoder stream(*tok);
    for (int32_t id = 0; id < static_cast<int32_t>(tok->vocab_size()) && id < 512; ++id) (void)stream.push(id);
    (void)stream.flush();
    (void)tok->to_hf_tokenizer_json();
  } catch (const std::exception&) {
  }
  return 0;
}
