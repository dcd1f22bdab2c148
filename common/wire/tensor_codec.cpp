// Float tensors and token ids to and from activation messages; scalar f32 <-> bf16 / f16.
#include <bit>
#include <cctype>
#include <cstring>
#include <limits>

#include "wire/activation_codec.h"

namespace fleet {

// The wire is little-endian; element bytes are copied as they are in memory.
static_assert(std::endian::native == std::endian::little, "fleet's wire format assumes a little-endian host");

size_t wire_dtype_size(WireDType t) {
  switch (t) {
    case wire::Tensor::F32:
      return 4;
    case wire::Tensor::BF16:
    case wire::Tensor::F16:
      return 2;
    default:
      return 0;
  }
}

const char* wire_dtype_name(WireDType t) {
  switch (t) {
    case wire::Tensor::F32:
      return "F32";
    case wire::Tensor::BF16:
      return "BF16";
    case wire::Tensor::F16:
      return "F16";
    case wire::Tensor::DTYPE_UNSPECIFIED:
      return "DTYPE_UNSPECIFIED";
    default:
      return "unknown dtype";
  }
}

WireDType parse_wire_dtype(const std::string& s) {
  std::string l;
  for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "f32") return wire::Tensor::F32;
  if (l == "bf16") return wire::Tensor::BF16;
  if (l == "f16") return wire::Tensor::F16;
  throw WireError("unknown wire dtype '" + s + "' (expected f32, bf16 or f16)");
}





void set_tensor_from_f32(ActivationMsg& msg, const float* values, int64_t rows, int64_t cols, WireDType dtype) {
  const size_t elem = wire_dtype_size(dtype);
  if (elem == 0) throw WireError(std::string("set_tensor_from_f32: unsupported dtype ") + wire_dtype_name(dtype));
  if (rows < 1 || cols < 1 || rows > std::numeric_limits<int32_t>::max() ||
      static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) > kMaxTensorBytes / elem)
    throw WireError("set_tensor_from_f32: bad shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  wire::Tensor* t = msg.mutable_tensor();
  t->set_dtype(dtype);
  t->clear_shape();
  t->add_shape(rows);
  t->add_shape(cols);
  std::string* data = t->mutable_data();
  data->resize(n * elem);
  char* out = data->data();
  if (dtype == wire::Tensor::F32) {
    std::memcpy(out, values, n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = dtype == wire::Tensor::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
  }
  msg.set_n_tokens(static_cast<int32_t>(rows));
  msg.set_total_bytes(data->size());
}

std::vector<float> tensor_to_f32(const ActivationMsg& msg) {
  if (!msg.has_tensor()) throw WireError("activation of request '" + msg.request_id() + "' carries no tensor");
  const wire::Tensor& t = msg.tensor();
  const size_t elem = wire_dtype_size(t.dtype());
  if (elem == 0) throw WireError(std::string("tensor dtype ") + wire_dtype_name(t.dtype()) + " is not decodable");
  uint64_t n = 1;
  for (int64_t d : t.shape()) {
    if (d < 1 || static_cast<uint64_t>(d) > kMaxTensorBytes / (n * elem))
      throw WireError("tensor of request '" + msg.request_id() + "' has an invalid shape");
    n *= static_cast<uint64_t>(d);
  }
  if (t.shape_size() == 0 || t.data().size() != n * elem)
    throw WireError("tensor of request '" + msg.request_id() + "' has " + std::to_string(t.data().size()) +
                    " bytes of data but its dtype and shape give " + std::to_string(n * elem));
  std::vector<float> out(n);
  const char* in = t.data().data();
  if (t.dtype() == wire::Tensor::F32) {
    std::memcpy(out.data(), in, n * 4);
  } else {
    const bool bf16 = t.dtype() == wire::Tensor::BF16;
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, in + 2 * i, 2);
      out[i] = bf16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return out;
}

void set_token_ids(ActivationMsg& msg, const std::vector<int32_t>& ids) {
  auto* t = msg.mutable_token_ids();
  t->mutable_ids()->Assign(ids.begin(), ids.end());
  msg.set_n_tokens(static_cast<int32_t>(ids.size()));
  msg.set_total_bytes(0);
}

std::vector<int32_t> token_ids_of(const ActivationMsg& msg) {
  if (!msg.has_token_ids()) throw WireError("activation of request '" + msg.request_id() + "' carries no token_ids");
  return {msg.token_ids().ids().begin(), msg.token_ids().ids().end()};
}

}  // namespace fleet
