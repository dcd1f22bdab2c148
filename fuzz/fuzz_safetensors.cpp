// The safetensors reader (open_safetensors_file, common/model/tensor_store.cpp). Its API takes
// a path: the input is written to a scratch file (tmpfs) and opened; every tensor it accepts
// must lie inside the file and have the byte size of its shape and dtype.
#include <cstdlib>
#include <exception>

#include "fuzz_util.h"
#include "model/tensor_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fleet::fuzz::write_scratch("model.safetensors", data, size);
  std::unique_ptr<fleet::TensorStore> store;
  try {
    store = fleet::open_safetensors_file(path);
  } catch (const std::exception&) {
    return 0;
  }
  unsigned sum = 0;
  for (const auto& [name, t] : store->tensors()) {
    if (name != t.name) std::abort();
    const size_t elem = t.dtype == fleet::DType::F32 ? 4 : 2;
    if (static_cast<size_t>(t.numel()) * elem != t.nbytes) std::abort();
    if (t.nbytes > size) std::abort();
    for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];  // faults if outside the mapping
  }
  return static_cast<int>(sum & 0);
}
