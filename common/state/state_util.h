#pragma once
// Internal helpers of fleet_state: parsing stored fields with errors that name them.
#include <charconv>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "state/redis_client.h"

namespace fleet::state_detail {

inline nlohmann::json parse_json(const std::string& what, const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw RedisError(what + " is not valid JSON: " + e.what());
  }
}

// An empty string gives `fallback`; anything but a decimal integer throws.
inline int64_t parse_i64(const std::string& what, const std::string& text, int64_t fallback) {
  if (text.empty()) return fallback;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    throw RedisError(what + " is not an integer: '" + text.substr(0, 40) + "'");
  }
  return v;
}

}  // namespace fleet::state_detail
