#pragma once
// Keeping secrets out of logs, error messages and records (header-only: the bus, which does
// not link fleet_config, uses it too).
//
//   is_secret_property("sasl.password")            -> true
//   redacted_property("sasl.password", "s3cret")   -> "***"
//   redact_userinfo("redis://u:s3cret@h:1/0")       -> "redis://u:***@h:1/0"
//   scrub("... s3cret ...", {"s3cret"})             -> "... *** ..."
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace fleet {

// A Kafka (librdkafka) property whose value is, or may contain, a secret: its name contains
// password, secret, key, token, jaas or credential (ssl.key.location and the like are redacted
// too: harmless), or it is sasl.oauthbearer.config.
inline bool is_secret_property(std::string_view name) {
  std::string n(name);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* word : {"password", "secret", "key", "token", "jaas", "credential"})
    if (n.find(word) != std::string::npos) return true;
  return n == "sasl.oauthbearer.config";
}

// The value as it may be shown: "***" for a secret property, the value otherwise.
inline std::string redacted_property(std::string_view name, std::string_view value) {
  return is_secret_property(name) ? std::string("***") : std::string(value);
}

// Every occurrence of each non-empty secret in text replaced by "***".
inline std::string scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& s : secrets) {
    if (s.empty()) continue;
    for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at + 3)) text.replace(at, s.size(), "***");
  }
  return text;
}

// A URL-like text with the password of its user-info masked, best effort and for any text
// (also a malformed URL): "scheme://user:pass@rest" -> "scheme://user:***@rest",
// "scheme://pass@rest" -> "scheme://***@rest". The user-info ends at the last '@' (a raw
// password may contain '@' and '/'), so more may be masked than the password, never less.
inline std::string redact_userinfo(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const size_t at = url.rfind('@');
  if (at == std::string::npos || at < start) return url;
  const std::string userinfo = url.substr(start, at - start);
  const size_t colon = userinfo.find(':');
  const std::string shown = colon == std::string::npos ? "***" : userinfo.substr(0, colon) + ":***";
  return url.substr(0, start) + shown + url.substr(at);
}

}  // namespace fleet
