// The llama2.c checkpoint reader (open_llama2c, common/model/llama2c_store.cpp), a path API:
// the input is written to a scratch file. An accepted checkpoint's config must validate and
// every tensor must lie inside the file with the byte size of its shape.
#include <cstdlib>
#include <exception>

#include "fuzz_util.h"
#include "model/tensor_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fleet::fuzz::write_scratch("model.bin", data, size);
  fleet::ModelConfig config;
  std::unique_ptr<fleet::TensorStore> store;
  try {
    store = fleet::open_llama2c(path, &config);
  } catch (const std::exception&) {
    return 0;
  }
  try {
    config.validate("fuzz");
  } catch (const std::exception&) {
    std::abort();  // the reader returned a config that does not validate
  }
  unsigned sum = 0;
  for (const auto& [name, t] : store->tensors()) {
    if (static_cast<size_t>(t.numel()) * 4 != t.nbytes || t.nbytes > size) std::abort();
    if (t.nbytes) sum += t.data[0] + t.data[t.nbytes - 1];  // faults if outside the mapping
  }
  return static_cast<int>(sum & 0);
}
