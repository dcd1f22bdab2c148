#include "metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace fleet::metrics {

// ---- values ----

void Counter::inc(double by) {
  if (!(by >= 0)) return;  // negative or NaN
  value_.fetch_add(by, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i])) throw std::invalid_argument("histogram bucket bounds must be finite");
    if (i > 0 && !(bounds_[i] > bounds_[i - 1]))
      throw std::invalid_argument("histogram bucket bounds must be strictly increasing");
  }
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  // The first bound >= v (le semantics); NaN and values above every bound go to +Inf.
  size_t i = std::isnan(v) ? bounds_.size()
                           : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  if (start <= 0 || factor <= 1 || count < 1) throw std::invalid_argument("exponential_buckets: bad parameters");
  std::vector<double> b;
  for (int i = 0; i < count; ++i, start *= factor) b.push_back(start);
  return b;
}

std::vector<double> linear_buckets(double start, double width, int count) {
  if (width <= 0 || count < 1) throw std::invalid_argument("linear_buckets: bad parameters");
  std::vector<double> b;
  for (int i = 0; i < count; ++i) b.push_back(start + width * i);
  return b;
}

std::vector<double> latency_buckets() { return exponential_buckets(0.0005, 2, 18); }

// ---- text format ----

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || n.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

namespace {

const char* type_name(MetricType t) {
  switch (t) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Histogram: return "histogram";
  }
  return "untyped";
}

void header(std::string& out, const std::string& name, const std::string& help, MetricType type) {
  out += "# HELP " + name + " " + escape_help(help) + "\n";
  out += "# TYPE " + name + " " + type_name(type) + "\n";
}

// name{const..., family labels..., extra} value
void sample(std::string& out, const std::string& name, const Labels& const_labels,
            const std::vector<std::string>& label_names, const std::vector<std::string>& values,
            const std::pair<std::string, std::string>* extra, double value) {
  out += name;
  bool first = true;
  auto label = [&](const std::string& k, const std::string& v) {
    out += first ? "{" : ",";
    first = false;
    out += k + "=\"" + escape_label_value(v) + "\"";
  };
  for (const auto& [k, v] : const_labels) label(k, v);
  for (size_t i = 0; i < label_names.size(); ++i) label(label_names[i], values[i]);
  if (extra) label(extra->first, extra->second);
  if (!first) out += "}";
  out += " " + format_value(value) + "\n";
}

// A metric read at exposition time.
class CallbackFamily : public FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, MetricType type, std::function<double()> fn)
      : FamilyBase(std::move(name), std::move(help), type, {}), fn_(std::move(fn)) {}
  void render(std::string& out, const Labels& const_labels) const override {
    header(out, name_, help_, type_);
    sample(out, name_, const_labels, {}, {}, nullptr, fn_());
  }

 private:
  std::function<double()> fn_;
};

}  // namespace

void FamilyBase::check_arity(size_t n) const {
  if (n != label_names_.size())
    throw std::invalid_argument(name_ + ": " + std::to_string(n) + " label values for " +
                                std::to_string(label_names_.size()) + " label names");
}

template <>
void Family<Counter>::render(std::string& out, const Labels& const_labels) const {
  header(out, name_, help_, type_);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, c] : children_) sample(out, name_, const_labels, label_names_, values, nullptr, c->value());
}

template <>
void Family<Gauge>::render(std::string& out, const Labels& const_labels) const {
  header(out, name_, help_, type_);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, g] : children_) sample(out, name_, const_labels, label_names_, values, nullptr, g->value());
}

template <>
void Family<Histogram>::render(std::string& out, const Labels& const_labels) const {
  header(out, name_, help_, type_);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, h] : children_) {
    const Histogram::Snapshot s = h->snapshot();
    for (size_t i = 0; i <= s.bounds.size(); ++i) {
      const std::pair<std::string, std::string> le{"le", i < s.bounds.size() ? format_value(s.bounds[i]) : "+Inf"};
      sample(out, name_ + "_bucket", const_labels, label_names_, values, &le, static_cast<double>(s.cumulative[i]));
    }
    sample(out, name_ + "_sum", const_labels, label_names_, values, nullptr, s.sum);
    sample(out, name_ + "_count", const_labels, label_names_, values, nullptr, static_cast<double>(s.count));
  }
}

// ---- registry ----

MetricsRegistry::MetricsRegistry(Labels const_labels) : const_labels_(std::move(const_labels)) {
  for (const auto& [k, v] : const_labels_)
    if (!valid_label_name(k)) throw std::invalid_argument("invalid label name '" + k + "'");
}

template <typename F>
F& MetricsRegistry::add(std::unique_ptr<F> family) {
  F& ref = *family;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_)
    if (f->name() == ref.name()) throw std::invalid_argument("metric '" + ref.name() + "' registered twice");
  families_.push_back(std::move(family));
  return ref;
}

namespace {
void check_names(const std::string& name, const std::vector<std::string>& label_names, const Labels& const_labels,
                 bool histogram) {
  if (!valid_metric_name(name)) throw std::invalid_argument("invalid metric name '" + name + "'");
  std::vector<std::string> all = label_names;
  for (const auto& [k, v] : const_labels) all.push_back(k);
  for (const std::string& l : label_names)
    if (!valid_label_name(l) || (histogram && l == "le"))
      throw std::invalid_argument(name + ": invalid label name '" + l + "'");
  std::sort(all.begin(), all.end());
  if (std::adjacent_find(all.begin(), all.end()) != all.end())
    throw std::invalid_argument(name + ": a label name appears twice");
}
}  // namespace

Family<Counter>& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names) {
  check_names(name, label_names, const_labels_, false);
  return add(std::make_unique<Family<Counter>>(name, help, MetricType::Counter, std::move(label_names),
                                               [] { return std::make_unique<Counter>(); }));
}

Family<Gauge>& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  check_names(name, label_names, const_labels_, false);
  return add(std::make_unique<Family<Gauge>>(name, help, MetricType::Gauge, std::move(label_names),
                                             [] { return std::make_unique<Gauge>(); }));
}

Family<Histogram>& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                              std::vector<double> bounds, std::vector<std::string> label_names) {
  check_names(name, label_names, const_labels_, true);
  Histogram probe(bounds);  // validates the bounds here rather than on first use
  return add(std::make_unique<Family<Histogram>>(name, help, MetricType::Histogram, std::move(label_names),
                                                 [bounds] { return std::make_unique<Histogram>(bounds); }));
}

void MetricsRegistry::gauge_fn(const std::string& name, const std::string& help, std::function<double()> fn) {
  check_names(name, {}, const_labels_, false);
  add(std::make_unique<CallbackFamily>(name, help, MetricType::Gauge, std::move(fn)));
}

void MetricsRegistry::counter_fn(const std::string& name, const std::string& help, std::function<double()> fn) {
  check_names(name, {}, const_labels_, false);
  add(std::make_unique<CallbackFamily>(name, help, MetricType::Counter, std::move(fn)));
}

std::string MetricsRegistry::expose() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) f->render(out, const_labels_);
  return out;
}

}  // namespace fleet::metrics
