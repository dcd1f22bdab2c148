#include "ingress/ingress_settings.h"

#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace fleet::ingress {

namespace {

[[noreturn]] void fail(const std::string& source, const std::string& key, const std::string& why) {
  throw ConfigError(source + ": ingress." + key + ": " + why);
}

int64_t integer(const YAML::Node& n, const std::string& source, const std::string& key, int64_t lo, int64_t hi) {
  if (!n.IsScalar()) fail(source, key, "expected an integer");
  try {
    size_t used = 0;
    const long long v = std::stoll(n.Scalar(), &used);
    if (used != n.Scalar().size() || v < lo || v > hi) throw std::invalid_argument("range");
    return v;
  } catch (const std::exception&) {
    fail(source, key, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" +
                          n.Scalar() + "'");
  }
}

void add_keys(std::vector<std::string>& keys, const std::string& text) {
  std::stringstream ss(text);
  std::string k;
  while (std::getline(ss, k, ',')) {
    while (!k.empty() && (k.back() == ' ' || k.back() == '\n')) k.pop_back();
    while (!k.empty() && k.front() == ' ') k.erase(k.begin());
    if (!k.empty()) keys.push_back(k);
  }
}

}  // namespace

IngressSettings parse_ingress_settings(const std::string& yaml_text, const std::string& source, const EnvLookup& env) {
  IngressSettings s;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ": YAML syntax error: " + e.msg);
  }
  if (!root.IsMap() || !root["ingress"] || root["ingress"].IsNull()) return s;
  const YAML::Node in = root["ingress"];
  if (!in.IsMap()) throw ConfigError(source + ": ingress: expected a mapping");
  std::optional<std::string> keys_env;
  for (const auto& kv : in) {
    const std::string k = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (k == "host") {
      if (!v.IsScalar() || v.Scalar().empty()) fail(source, k, "expected a host name or address");
      s.host = v.Scalar();
    } else if (k == "port") {
      s.port = static_cast<int>(integer(v, source, k, 0, 65535));
    } else if (k == "max_in_flight") {
      s.max_in_flight = static_cast<int>(integer(v, source, k, 1, 100000));
    } else if (k == "threads") {
      s.threads = static_cast<int>(integer(v, source, k, 0, 100000));
    } else if (k == "max_body_bytes") {
      std::optional<uint64_t> b = v.IsScalar() ? parse_byte_size(v.Scalar()) : std::nullopt;
      if (!b || *b == 0) fail(source, k, "expected a byte size such as 4MiB");
      s.max_body_bytes = *b;
    } else if (k == "api_keys") {
      if (!v.IsSequence()) fail(source, k, "expected a list of keys");
      for (const auto& key : v) {
        if (!key.IsScalar() || key.Scalar().empty()) fail(source, k, "expected non-empty strings");
        s.api_keys.push_back(key.Scalar());
      }
    } else if (k == "api_keys_env") {
      if (!v.IsScalar() || v.Scalar().empty()) fail(source, k, "expected an environment variable name");
      keys_env = v.Scalar();
    } else {
      fail(source, k,
           "unknown key (known here: host, port, max_in_flight, threads, max_body_bytes, api_keys, api_keys_env)");
    }
  }
  if (keys_env)
    if (std::optional<std::string> text = env(*keys_env)) add_keys(s.api_keys, *text);
  return s;
}

IngressSettings load_ingress_settings(const std::string& path, const EnvLookup& env) {
  std::ifstream f(path);
  if (!f) throw ConfigError(path + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_ingress_settings(ss.str(), path, env);
}

}  // namespace fleet::ingress
