// parse_prompt_record (common/contracts/prompt_request.h): never throws on bad input, and a
// valid request's canonical JSON parses back to the same canonical JSON.
#include <cstdlib>
#include <optional>
#include <string_view>

#include "contracts/prompt_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // First byte: whether there is a record key, and how long (bytes taken from the end).
  std::optional<std::string_view> key;
  std::string_view value(reinterpret_cast<const char*>(data), size);
  if (!value.empty()) {
    const size_t key_len = static_cast<uint8_t>(value.front()) & 0x3f;
    const bool has_key = value.front() & 0x40;
    value.remove_prefix(1);
    if (has_key && key_len <= value.size()) {
      key = value.substr(value.size() - key_len);
      value.remove_suffix(key_len);
    }
  }
  fleet::PromptLimits small;
  small.max_tokens = 64;
  small.max_record_bytes = 4096;
  small.max_prompt_bytes = 512;
  small.max_messages = 4;
  for (const fleet::PromptLimits& limits : {fleet::PromptLimits{}, small}) {
    const fleet::PromptParseResult r = fleet::parse_prompt_record(value, key, limits);
    if (r.ok() == r.error.has_value()) std::abort();  // exactly one of request / error
    if (!r.ok()) continue;
    if (r.request->id != r.id) std::abort();
    const std::string canonical = r.request->to_json().dump();
    const fleet::PromptParseResult again = fleet::parse_prompt_record(canonical);
    if (!again.ok() || again.request->to_json().dump() != canonical) std::abort();
  }
  return 0;
}
