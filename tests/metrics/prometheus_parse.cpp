#include "metrics/prometheus_parse.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace fleet::test {

const ParsedFamily* ParsedMetrics::family(const std::string& name) const {
  for (const ParsedFamily& f : families)
    if (f.name == name) return &f;
  return nullptr;
}

std::vector<ParsedSample> ParsedMetrics::samples(const std::string& name,
                                                 const std::map<std::string, std::string>& labels) const {
  std::vector<ParsedSample> out;
  for (const ParsedFamily& f : families)
    for (const ParsedSample& s : f.samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) match = false;
      }
      if (match) out.push_back(s);
    }
  return out;
}

double ParsedMetrics::sum(const std::string& name, const std::map<std::string, std::string>& labels) const {
  double total = 0;
  for (const ParsedSample& s : samples(name, labels)) total += s.value;
  return total;
}

std::optional<ParsedMetrics> parse_prometheus(const std::string& text, std::string* error) {
  char in_path[] = "/tmp/fleet-metrics-XXXXXX";
  const int fd = mkstemp(in_path);
  if (fd < 0) {
    *error = "mkstemp failed";
    return std::nullopt;
  }
  ::close(fd);
  std::ofstream(in_path, std::ios::binary) << text;
  const std::string out_path = std::string(in_path) + ".json", err_path = std::string(in_path) + ".err";
  const std::string cmd = "/usr/bin/python3 '" FLEET_SOURCE_ROOT "/tests/metrics/parse_metrics.py' '" +
                          std::string(in_path) + "' >'" + out_path + "' 2>'" + err_path + "'";
  const int status = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  const std::string out = slurp(out_path), err = slurp(err_path);
  std::remove(in_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  if (status != 0) {
    *error = "parser exit status " + std::to_string(WEXITSTATUS(status)) + ": " + err;
    return std::nullopt;
  }
  ParsedMetrics m;
  const nlohmann::json parsed = nlohmann::json::parse(out);
  for (const auto& f : parsed.at("families")) {
    ParsedFamily pf;
    pf.name = f.at("name").get<std::string>();
    pf.type = f.at("type").get<std::string>();
    pf.help = f.at("help").get<std::string>();
    for (const auto& s : f.at("samples")) {
      ParsedSample ps;
      ps.name = s.at("name").get<std::string>();
      ps.labels = s.at("labels").get<std::map<std::string, std::string>>();
      ps.value = std::strtod(s.at("value").get<std::string>().c_str(), nullptr);
      pf.samples.push_back(std::move(ps));
    }
    m.families.push_back(std::move(pf));
  }
  return m;
}

}  // namespace fleet::test
