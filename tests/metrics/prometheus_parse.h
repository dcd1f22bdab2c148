#pragma once
// Prometheus text exposition read back by the reference parser (prometheus_client, Python; see
// parse_metrics.py), for tests: what a real scraper would see.
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fleet::test {

struct ParsedSample {
  std::string name;  // e.g. fleet_requests_total, x_bucket
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct ParsedFamily {
  std::string name;  // as the parser names it (a counter's without _total)
  std::string type, help;
  std::vector<ParsedSample> samples;
};

struct ParsedMetrics {
  std::vector<ParsedFamily> families;
  const ParsedFamily* family(const std::string& name) const;
  // The samples named `name` whose labels include all of `labels`.
  std::vector<ParsedSample> samples(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
  // The sum of those samples' values (0 when none).
  double sum(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
};

// Parses `text` with prometheus_client's parser; sets *error (and returns nullopt) when it does not parse.
std::optional<ParsedMetrics> parse_prometheus(const std::string& text, std::string* error);

}  // namespace fleet::test
