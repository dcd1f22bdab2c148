#include "plan/planner.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <limits>

#include "config/deployment_config.h"

namespace fleet {
namespace {

// "13.97 GiB", "1.50 MiB", "12.00 KiB": two decimals in the largest unit that is at least 1.
std::string gib(uint64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (bytes >= (1ull << 30) || bytes == 0)
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1ull << 30));
  else if (bytes >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1ull << 20));
  else
    std::snprintf(buf, sizeof buf, "%.2f KiB", b / 1024);
  return buf;
}

}  // namespace

std::vector<PlanWorker> parse_workers_yaml(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw PlanError(source + ": not YAML: " + e.what());
  }
  if (root.IsMap() && root["workers"]) root = root["workers"];
  if (!root.IsSequence() || root.size() == 0)
    throw PlanError(source + ": expected a list of workers ({name, memory, speed}), e.g.\n  - {name: a, memory: 16GiB}");
  std::vector<PlanWorker> out;
  for (size_t i = 0; i < root.size(); ++i) {
    const YAML::Node& n = root[i];
    const std::string at = source + ": worker " + std::to_string(i);
    if (!n.IsMap()) throw PlanError(at + ": expected {name, memory, speed}");
    for (const auto& kv : n) {
      const std::string k = kv.first.as<std::string>();
      if (k != "name" && k != "memory" && k != "speed") throw PlanError(at + ": unknown key '" + k + "' (name, memory, speed)");
    }
    PlanWorker w;
    w.name = n["name"] ? n["name"].as<std::string>() : "worker" + std::to_string(i);
    if (!n["memory"]) throw PlanError(at + " (" + w.name + "): memory is required (e.g. 16GiB)");
    const std::string mem = n["memory"].as<std::string>();
    auto bytes = parse_byte_size(mem);
    if (!bytes || *bytes == 0) throw PlanError(at + " (" + w.name + "): memory '" + mem + "' is not a size (e.g. 16GiB)");
    w.memory_bytes = *bytes;
    if (n["speed"]) {
      try {
        w.speed = n["speed"].as<double>();
      } catch (const YAML::Exception&) {
        throw PlanError(at + " (" + w.name + "): speed must be a positive number");
      }
      if (!(w.speed > 0)) throw PlanError(at + " (" + w.name + "): speed must be a positive number");
    }
    for (const PlanWorker& o : out)
      if (o.name == w.name) throw PlanError(at + ": duplicate worker name '" + w.name + "'");
    out.push_back(w);
  }
  return out;
}

Plan plan_layers(const ModelShape& model, const std::vector<PlanWorker>& workers, const PlanOptions& options) {
  const int K = static_cast<int>(workers.size());
  const int n = model.n_layers();
  if (K == 0) throw PlanError("no workers to plan for");
  if (K > n)
    throw PlanError(std::to_string(K) + " workers for a model of " + std::to_string(n) +
                    " layers: every stage needs at least one layer (use at most " + std::to_string(n) + " workers)");
  const uint64_t reserve = options.overhead_bytes + options.kv_budget_bytes;
  Plan plan;
  plan.model = model;
  plan.options = options;
  plan.by_speed = std::all_of(workers.begin(), workers.end(), [](const PlanWorker& w) { return w.speed > 0; });
  std::vector<double> usable(K), weight(K);
  double weight_sum = 0;
  for (int k = 0; k < K; ++k) {
    const PlanWorker& w = workers[k];
    if (w.memory_bytes <= reserve)
      throw PlanError("worker " + w.name + ": " + gib(w.memory_bytes) + " of memory leaves nothing for weights after the " +
                      gib(options.overhead_bytes) + " runtime overhead and the " + gib(options.kv_budget_bytes) +
                      " KV budget");
    plan.total_usable_bytes += w.memory_bytes - reserve;
    usable[k] = static_cast<double>(w.memory_bytes - reserve);
    weight[k] = plan.by_speed ? w.speed : options.balance == PlanBalance::Compute ? 1.0 : usable[k];
    weight_sum += weight[k];
  }
  const uint64_t total = model.total_bytes();
  if (total > plan.total_usable_bytes) {
    uint64_t memory = 0;
    for (const PlanWorker& w : workers) memory += w.memory_bytes;
    throw PlanError("model " + model.name + " does not fit: its weights need " + gib(total) + " (" + model.dtype +
                    "), the " + std::to_string(K) + " workers offer " + gib(plan.total_usable_bytes) + " usable (" +
                    gib(memory) + " of memory minus " + gib(reserve) + " each for the runtime overhead " +
                    gib(options.overhead_bytes) + " and the KV budget " + gib(options.kv_budget_bytes) +
                    "): short by " + gib(total - plan.total_usable_bytes) +
                    "; add a worker with at least that much usable memory, or use smaller weights (q8_0)");
  }
  // best[k][j]: the smallest (max load ratio, sum of squared ratios) of stages 0..k-1 covering
  // layers [0, j); from[k][j] the start of stage k-1 in it. Infinite when infeasible.
  const double inf = std::numeric_limits<double>::infinity();
  using Score = std::pair<double, double>;
  const bool by_compute = options.balance == PlanBalance::Compute;
  auto cost = [&](int i, int j) {
    return static_cast<double>(by_compute ? model.stage_macs(i, j) : model.stage_bytes(i, j));
  };
  std::vector<std::vector<Score>> best(K + 1, std::vector<Score>(n + 1, {inf, inf}));
  std::vector<std::vector<int>> from(K + 1, std::vector<int>(n + 1, -1));
  best[0][0] = {0, 0};
  for (int k = 1; k <= K; ++k)
    for (int j = k; j <= n - (K - k); ++j)
      for (int i = k - 1; i < j; ++i) {
        if (best[k - 1][i].first == inf) continue;
        const uint64_t bytes = model.stage_bytes(i, j);
        if (static_cast<double>(bytes) > usable[k - 1]) continue;
        const double r = cost(i, j) / (cost(0, n) * weight[k - 1] / weight_sum);
        Score s{std::max(best[k - 1][i].first, r), best[k - 1][i].second + r * r};
        if (s < best[k][j]) {
          best[k][j] = s;
          from[k][j] = i;
        }
      }
  if (best[K][n].first == inf) {
    uint64_t largest = 0;
    for (uint64_t b : model.layer_bytes) largest = std::max(largest, b);
    throw PlanError("model " + model.name + ": its " + gib(total) + " of weights fit in the workers' " +
                    gib(plan.total_usable_bytes) + " usable memory in total, but no split into contiguous whole " +
                    "layers does (largest layer " + gib(largest) + ", embedding " + gib(model.embedding_bytes) +
                    " on the first worker, head " + gib(model.head_bytes) +
                    " on the last); reorder the workers (largest first or last) or add memory");
  }
  std::vector<PlannedStage> stages(K);
  for (int k = K, j = n; k >= 1; --k) {
    const int i = from[k][j];
    PlannedStage& s = stages[k - 1];
    s.worker = workers[k - 1].name;
    s.first = i;
    s.end = j;
    s.memory_bytes = workers[k - 1].memory_bytes;
    s.usable_bytes = workers[k - 1].memory_bytes - reserve;
    s.weight_bytes = model.stage_bytes(i, j);
    s.ideal_share = weight[k - 1] / weight_sum;
    s.macs = model.stage_macs(i, j);
    s.share = cost(i, j) / cost(0, n);
    j = i;
  }
  plan.stages = std::move(stages);
  return plan;
}

std::string Plan::split_by() const {
  if (options.balance == PlanBalance::Compute)
    return by_speed ? "compute per token over speed (within usable memory)" : "compute per token, equal shares (within usable memory)";
  return by_speed ? "speed (within usable memory)" : "usable memory";
}

std::string Plan::table() const {
  std::string out;
  char buf[512];
  const ModelConfig& c = model.config;
  std::snprintf(buf, sizeof buf,
                "model %s (%s): %d layers, dim %d, ffn %d, heads %d/%d, vocab %d; weights %s in %s "
                "(embedding %s on the first stage, head %s on the last)\n",
                model.name.c_str(), model.source.c_str(), model.n_layers(), c.dim, c.hidden_dim, c.n_heads,
                c.n_kv_heads, c.vocab_size, gib(model.total_bytes()).c_str(), model.dtype.c_str(),
                gib(model.embedding_bytes).c_str(), gib(model.head_bytes).c_str());
  out += buf;
  std::snprintf(buf, sizeof buf,
                "per worker: runtime overhead %s + KV budget %s reserved; usable = memory - %s; split by %s\n",
                gib(options.overhead_bytes).c_str(), gib(options.kv_budget_bytes).c_str(),
                gib(options.overhead_bytes + options.kv_budget_bytes).c_str(),
                split_by().c_str());
  out += buf;
  std::snprintf(buf, sizeof buf, "%-5s  %-16s  %10s  %10s  %-9s  %6s  %12s  %6s  %6s  %5s\n", "stage", "worker", "memory",
                "usable", "layers", "count", "weights", "share", "ideal", "fill");
  out += buf;
  for (size_t k = 0; k < stages.size(); ++k) {
    const PlannedStage& s = stages[k];
    std::string layers = "[" + std::to_string(s.first) + ", " + std::to_string(s.end) + ")";
    std::snprintf(buf, sizeof buf, "%-5zu  %-16s  %10s  %10s  %-9s  %6d  %12s  %5.1f%%  %5.1f%%  %4.0f%%\n", k,
                  s.worker.c_str(), gib(s.memory_bytes).c_str(), gib(s.usable_bytes).c_str(), layers.c_str(),
                  s.end - s.first, gib(s.weight_bytes).c_str(), 100 * s.share, 100 * s.ideal_share,
                  100.0 * static_cast<double>(s.weight_bytes) / static_cast<double>(s.usable_bytes));
    out += buf;
  }
  return out;
}

nlohmann::json Plan::to_json() const {
  nlohmann::json st = nlohmann::json::array();
  for (const PlannedStage& s : stages)
    st.push_back({{"worker", s.worker},
                  {"layers", {s.first, s.end}},
                  {"memory_bytes", s.memory_bytes},
                  {"usable_bytes", s.usable_bytes},
                  {"weight_bytes", s.weight_bytes},
                  {"macs", s.macs},
                  {"share", s.share},
                  {"ideal_share", s.ideal_share}});
  return {{"model", {{"name", model.name}, {"path", model.path}, {"source", model.source}, {"dtype", model.dtype},
                     {"layers", model.n_layers()}, {"weight_bytes", model.total_bytes()},
                     {"embedding_bytes", model.embedding_bytes}, {"head_bytes", model.head_bytes}}},
          {"overhead_bytes", options.overhead_bytes},
          {"kv_budget_bytes", options.kv_budget_bytes},
          {"split_by", split_by()},
          {"total_usable_bytes", total_usable_bytes},
          {"stages", st}};
}

}  // namespace fleet
