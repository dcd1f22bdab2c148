// The GGUF reader (GgufFile::parse, common/gguf/gguf_file.h), in memory. Everything it accepts
// must be readable: every metadata value converts or throws GgufError, arrays decode, and every
// tensor dequantizes (small ones) or at least lies inside the image.
#include <cstdlib>
#include <exception>
#include <vector>

#include "gguf/gguf_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy so that ASan sees reads past the end of the image (the fuzzer's buffer is exact too).
  std::vector<uint8_t> image(data, data + size);
  try {
    const fleet::GgufFile f = fleet::GgufFile::parse(image.data(), image.size(), "fuzz.gguf");
    for (const fleet::GgufKV& kv : f.metadata()) {
      if (f.find(kv.key) != &kv.value) std::abort();
      try {
        if (kv.value.is_array()) {
          for (const fleet::GgufValue& e : kv.value.elements())
            if (e.is_array()) (void)e.elements();
          (void)f.get<std::vector<std::string>>(kv.key);
        } else {
          (void)f.get<int64_t>(kv.key);
        }
      } catch (const fleet::GgufError&) {
      }
    }
    for (const fleet::GgufTensorInfo& t : f.tensors()) {
      if (f.find_tensor(t.name) != &t) std::abort();
      if (t.offset + t.nbytes > f.file_size() - f.data_offset()) std::abort();
      if (t.numel > 0 && t.numel <= 4096) {
        try {
          (void)f.dequantize(t);
        } catch (const std::exception&) {
        }
      }
    }
  } catch (const fleet::GgufError&) {
  } catch (const std::runtime_error&) {
  }
  return 0;
}
