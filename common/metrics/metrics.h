#pragma once
// Prometheus metrics without a client library (none is packaged in Debian 12): counters, gauges
// and histograms with labels, in a registry that renders the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). docs/metrics.md lists the
// fleet's metrics.
//
//   MetricsRegistry reg({{"service", "ingress"}});                  // labels on every series
//   Counter& done = reg.counter("fleet_requests_total", "Requests ended", {"outcome"}).labels({"stop"});
//   Histogram& ttft = reg.histogram("fleet_time_to_first_token_seconds", "...", latency_buckets()).get();
//   done.inc();  ttft.observe(0.012);                                  // lock-free (atomics)
//   std::string text = reg.expose();                                    // what GET /metrics returns
//
// Updating a metric is a relaxed atomic operation; looking up a labelled child takes the
// family's mutex, so keep the references of hot-path children (they live as long as the
// registry). Names are checked at registration (std::invalid_argument for a bad metric or label
// name, or a name registered twice); label values may be any text (escaped on output).
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fleet::metrics {

// (label name, value) pairs, in output order.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A value that only goes up (reset when the process restarts).
class Counter {
 public:
  void inc(double by = 1.0);  // by < 0 (or NaN) is ignored: a counter never goes down
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double by = 1.0) { value_.fetch_add(by, std::memory_order_relaxed); }
  void dec(double by = 1.0) { value_.fetch_add(-by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted into buckets by upper bound (le: value <= bound), plus their sum.
class Histogram {
 public:
  // bounds: finite, strictly increasing; the +Inf bucket is implicit.
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);

  struct Snapshot {
    std::vector<double> bounds;        // without +Inf
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;  // count is the sum of the buckets read, so +Inf == count always

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // not cumulative; bounds_.size() + 1
  std::atomic<double> sum_{0.0};
};

// Bucket bounds.
std::vector<double> exponential_buckets(double start, double factor, int count);
std::vector<double> linear_buckets(double start, double width, int count);
// 0.5 ms .. ~65 s, doubling (18 buckets): latencies from a local hop to a long generation.
std::vector<double> latency_buckets();

enum class MetricType { Counter, Gauge, Histogram };

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), type_(type), label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  // Appends this family's HELP, TYPE and sample lines; const_labels go first on every series.
  virtual void render(std::string& out, const Labels& const_labels) const = 0;

 protected:
  void check_arity(size_t n) const;  // throws std::invalid_argument when n != label_names().size()
  std::string name_, help_;
  MetricType type_;
  std::vector<std::string> label_names_;
};

// One metric with one child per combination of label values (a single child without labels).
template <typename T>
class Family : public FamilyBase {
 public:
  using Factory = std::function<std::unique_ptr<T>()>;
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names, Factory make)
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)), make_(std::move(make)) {
    if (label_names_.empty()) labels({});  // exposed (as 0) from the start
  }
  // The child for these label values (in label_names order), created on first use; the
  // reference stays valid as long as the registry.
  T& labels(const std::vector<std::string>& values) {
    check_arity(values.size());
    std::lock_guard<std::mutex> lock(mu_);
    auto it = children_.find(values);
    if (it == children_.end()) it = children_.emplace(values, make_()).first;
    return *it->second;
  }
  T& get() { return labels({}); }
  void render(std::string& out, const Labels& const_labels) const override;

 private:
  Factory make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

class MetricsRegistry {
 public:
  explicit MetricsRegistry(Labels const_labels = {});
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  Family<Counter>& counter(const std::string& name, const std::string& help, std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help, std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help, std::vector<double> bounds,
                               std::vector<std::string> label_names = {});
  // A value read when the registry is exposed (fn is called on the scraping thread: it must be
  // thread-safe and must outlive its use: stop the server before what fn reads goes away).
  void gauge_fn(const std::string& name, const std::string& help, std::function<double()> fn);
  void counter_fn(const std::string& name, const std::string& help, std::function<double()> fn);

  // The text exposition format 0.0.4 of every family, in registration order.
  std::string expose() const;

 private:
  template <typename F>
  F& add(std::unique_ptr<F> family);

  Labels const_labels_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_;
};

template <>
void Family<Counter>::render(std::string& out, const Labels& const_labels) const;
template <>
void Family<Gauge>::render(std::string& out, const Labels& const_labels) const;
template <>
void Family<Histogram>::render(std::string& out, const Labels& const_labels) const;

// The Content-Type of expose()'s output.
inline constexpr const char* kExpositionContentType = "text/plain; version=0.0.4; charset=utf-8";

// Exposition details, public for tests.
bool valid_metric_name(std::string_view name);  // [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_label_name(std::string_view name);   // [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"
std::string escape_label_value(std::string_view v);  // \ " and newline escaped
std::string escape_help(std::string_view v);         // \ and newline escaped
std::string format_value(double v);                  // shortest round-trip; +Inf, -Inf, NaN

}  // namespace fleet::metrics
