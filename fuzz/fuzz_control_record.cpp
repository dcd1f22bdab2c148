// parse_control_record (common/contracts/control_request.h): never throws on bad input; a
// valid request names a valid request id.
#include <cstdlib>
#include <optional>
#include <string_view>

#include "contracts/control_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<std::string_view> key;
  std::string_view value(reinterpret_cast<const char*>(data), size);
  if (!value.empty()) {  // first byte: record key present (0x40) and its length (low 6 bits)
    const size_t key_len = static_cast<uint8_t>(value.front()) & 0x3f;
    const bool has_key = value.front() & 0x40;
    value.remove_prefix(1);
    if (has_key && key_len <= value.size()) {
      key = value.substr(value.size() - key_len);
      value.remove_suffix(key_len);
    }
  }
  const fleet::ControlParseResult r = fleet::parse_control_record(value, key);
  if (r.ok() == r.error.has_value()) std::abort();
  if (r.ok() && !fleet::is_valid_request_id(r.request->id)) std::abort();
  return 0;
}
