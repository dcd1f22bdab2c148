// The exposition format as a real scraper reads it: every text here goes through
// prometheus_client's parser (parse_metrics.py), and the values it reads are checked.
#include <httplib.h>

#include <cmath>
#include <thread>

#include <gtest/gtest.h>

#include "metrics/metrics.h"
#include "metrics/metrics_server.h"
#include "metrics/prometheus_parse.h"

namespace fleet::metrics {
namespace {

using test::ParsedFamily;
using test::ParsedMetrics;

ParsedMetrics parse(const std::string& text) {
  std::string error;
  std::optional<ParsedMetrics> m = test::parse_prometheus(text, &error);
  EXPECT_TRUE(m.has_value()) << error << "\n--- text:\n" << text;
  return m ? *m : ParsedMetrics{};
}

TEST(Exposition, LabelValuesAndHelpSurviveEscaping) {
  MetricsRegistry reg;
  const std::string nasty = "a \"quoted\" back\\slash\nnew line, {braces}=, \xc3\xa9t\xc3\xa9";
  reg.counter("fleet_x_total", "Help with a back\\slash\nand a second line.", {"code"}).labels({nasty}).inc(3);
  reg.counter("fleet_x_total_other_total", "Plain.", {"code"}).labels({"plain"}).inc();
  const ParsedMetrics m = parse(reg.expose());
  const auto s = m.samples("fleet_x_total");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].labels.at("code"), nasty);
  EXPECT_EQ(s[0].value, 3);
  ASSERT_NE(m.family("fleet_x"), nullptr);
  EXPECT_EQ(m.family("fleet_x")->help, "Help with a back\\slash\nand a second line.");
  EXPECT_EQ(m.family("fleet_x")->type, "counter");
  EXPECT_EQ(m.sum("fleet_x_total_other_total", {{"code", "plain"}}), 1);
}

TEST(Exposition, EscapingFunctions) {
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(escape_help("a\"b\\c\nd"), "a\"b\\\\c\\nd");  // quotes stay in HELP
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(format_value(0.1), "0.1");
  EXPECT_EQ(format_value(3), "3");
  EXPECT_EQ(std::stod(format_value(1.0 / 3)), 1.0 / 3);  // round-trips exactly
}

TEST(Exposition, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry reg;
  Histogram& h = reg.histogram("fleet_lat_seconds", "Latency.", {0.01, 1, 10}).get();
  for (double v : {0.001, 0.01, 0.5, 2.0, 100.0, 1e9}) h.observe(v);
  const ParsedMetrics m = parse(reg.expose());
  ASSERT_NE(m.family("fleet_lat_seconds"), nullptr);
  EXPECT_EQ(m.family("fleet_lat_seconds")->type, "histogram");
  const auto buckets = m.samples("fleet_lat_seconds_bucket");
  ASSERT_EQ(buckets.size(), 4u);
  std::map<double, double> by_le;
  for (const auto& b : buckets) by_le[std::strtod(b.labels.at("le").c_str(), nullptr)] = b.value;
  EXPECT_EQ(by_le.at(0.01), 2);  // 0.001 and 0.01 (le: value <= bound)
  EXPECT_EQ(by_le.at(1), 3);
  EXPECT_EQ(by_le.at(10), 4);
  EXPECT_EQ(by_le.at(std::numeric_limits<double>::infinity()), 6);
  EXPECT_EQ(m.sum("fleet_lat_seconds_count"), 6);
  EXPECT_DOUBLE_EQ(m.sum("fleet_lat_seconds_sum"), 0.001 + 0.01 + 0.5 + 2.0 + 100.0 + 1e9);
  const std::string text = reg.expose();
  EXPECT_NE(text.find("fleet_lat_seconds_bucket{le=\"+Inf\"} 6\n"), std::string::npos) << text;
}

TEST(Exposition, LabelSetsAndConstLabels) {
  MetricsRegistry reg(Labels{{"stage", "1"}, {"model", "m"}});
  auto& req = reg.counter("fleet_requests_total", "Requests.", {"outcome"});
  req.labels({"stop"}).inc(2);
  req.labels({"error"}).inc();
  req.labels({"length"});  // exposed at 0
  auto& h = reg.histogram("fleet_b_tokens", "Rows.", {1, 8}, {"kind"});
  h.labels({"prefill"}).observe(5);
  h.labels({"decode"}).observe(1);
  reg.gauge("fleet_g", "A gauge.").get().set(-2.5);
  const ParsedMetrics m = parse(reg.expose());
  EXPECT_EQ(m.sum("fleet_requests_total", {{"outcome", "stop"}}), 2);
  EXPECT_EQ(m.sum("fleet_requests_total", {{"outcome", "error"}}), 1);
  EXPECT_EQ(m.samples("fleet_requests_total", {{"outcome", "length"}}).size(), 1u);
  EXPECT_EQ(m.samples("fleet_requests_total").size(), 3u);
  for (const ParsedFamily* f : {m.family("fleet_requests"), m.family("fleet_b_tokens"), m.family("fleet_g")}) {
    ASSERT_NE(f, nullptr);
    for (const auto& s : f->samples) {
      EXPECT_EQ(s.labels.at("stage"), "1") << s.name;
      EXPECT_EQ(s.labels.at("model"), "m") << s.name;
    }
  }
  EXPECT_EQ(m.sum("fleet_b_tokens_bucket", {{"kind", "prefill"}, {"le", "1"}}), 0);
  EXPECT_EQ(m.sum("fleet_b_tokens_bucket", {{"kind", "decode"}, {"le", "1"}}), 1);
  EXPECT_EQ(m.sum("fleet_b_tokens_count"), 2);
  EXPECT_EQ(m.sum("fleet_g"), -2.5);
  EXPECT_EQ(m.family("fleet_g")->type, "gauge");
}

TEST(Exposition, SpecialValuesAndCallbacks) {
  MetricsRegistry reg;
  reg.gauge("fleet_inf", "Inf.").get().set(std::numeric_limits<double>::infinity());
  reg.gauge("fleet_nan", "NaN.").get().set(std::nan(""));
  double live = 7;
  reg.gauge_fn("fleet_live_bytes", "Read at scrape time.", [&] { return live; });
  reg.counter_fn("fleet_cb_total", "A counter read at scrape time.", [&] { return live * 2; });
  live = 9;
  const ParsedMetrics m = parse(reg.expose());
  EXPECT_TRUE(std::isinf(m.sum("fleet_inf")));
  EXPECT_TRUE(std::isnan(m.sum("fleet_nan")));
  EXPECT_EQ(m.sum("fleet_live_bytes"), 9);
  EXPECT_EQ(m.sum("fleet_cb_total"), 18);
  EXPECT_EQ(m.family("fleet_cb")->type, "counter");
}

TEST(Exposition, EmptyRegistryAndLabelledFamilyWithoutChildrenParse) {
  MetricsRegistry reg;
  EXPECT_EQ(reg.expose(), "");
  reg.counter("fleet_errors_total", "Errors by code.", {"code"});
  const ParsedMetrics m = parse(reg.expose());
  EXPECT_TRUE(m.samples("fleet_errors_total").empty());
}

TEST(Registry, RefusesBadNamesDuplicatesAndWrongArity) {
  MetricsRegistry reg;
  EXPECT_THROW(reg.counter("9lives_total", "x"), std::invalid_argument);
  EXPECT_THROW(reg.counter("has-dash_total", "x"), std::invalid_argument);
  EXPECT_THROW(reg.counter("ok_total", "x", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(reg.counter("ok_total", "x", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(reg.histogram("ok_seconds", "x", {1, 2}, {"le"}), std::invalid_argument);
  EXPECT_THROW(reg.histogram("ok_seconds", "x", {2, 1}), std::invalid_argument);
  EXPECT_THROW(reg.histogram("ok_seconds", "x", {1, std::numeric_limits<double>::infinity()}), std::invalid_argument);
  EXPECT_THROW(MetricsRegistry(Labels{{"bad-name", "v"}}), std::invalid_argument);
  EXPECT_THROW(MetricsRegistry(Labels{{"stage", "0"}}).counter("x_total", "x", {"stage"}), std::invalid_argument);
  auto& c = reg.counter("fleet_c_total", "x", {"a", "b"});
  EXPECT_THROW(reg.gauge("fleet_c_total", "again"), std::invalid_argument);
  EXPECT_THROW(c.labels({"only-one"}), std::invalid_argument);
  EXPECT_NO_THROW(c.labels({"1", "2"}));
  EXPECT_TRUE(valid_metric_name("fleet:ratio_total"));
  EXPECT_FALSE(valid_label_name("a:b"));
}

TEST(Values, CountersNeverGoDownAndChildrenAreStable) {
  MetricsRegistry reg;
  auto& fam = reg.counter("fleet_c_total", "x", {"k"});
  Counter& c = fam.labels({"v"});
  c.inc(2);
  c.inc(-5);
  c.inc(std::nan(""));
  EXPECT_EQ(c.value(), 2);
  for (int i = 0; i < 100; ++i) fam.labels({std::to_string(i)});  // more children: the reference stays valid
  EXPECT_EQ(&fam.labels({"v"}), &c);
}

TEST(Values, ConcurrentUpdatesAreExact) {
  MetricsRegistry reg;
  Counter& c = reg.counter("fleet_c_total", "x").get();
  Gauge& g = reg.gauge("fleet_g", "x").get();
  Histogram& h = reg.histogram("fleet_h_seconds", "x", {0.5}).get();
  constexpr int kThreads = 4, kEach = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        c.inc();
        g.inc();
        g.dec(0.5);
        h.observe(t % 2 ? 0.25 : 1.0);
      }
    });
  std::string during;
  for (int i = 0; i < 20; ++i) during = reg.expose();  // scraping while updating
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), kThreads * kEach);
  EXPECT_EQ(g.value(), kThreads * kEach * 0.5);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.count, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(s.cumulative[0], static_cast<uint64_t>(kThreads / 2 * kEach));
  EXPECT_EQ(s.sum, kThreads / 2 * kEach * 0.25 + kThreads / 2 * kEach * 1.0);
  parse(during);
}

TEST(Buckets, Helpers) {
  EXPECT_EQ(exponential_buckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(linear_buckets(0, 5, 3), (std::vector<double>{0, 5, 10}));
  const auto lat = latency_buckets();
  EXPECT_EQ(lat.front(), 0.0005);
  EXPECT_GT(lat.back(), 60);
}

TEST(MetricsServer, ServesTheRegistryOnAFreePort) {
  MetricsRegistry reg(Labels{{"service", "test"}});
  Counter& c = reg.counter("fleet_served_total", "x").get();
  MetricsServer server(reg, "127.0.0.1", 0);
  ASSERT_GT(server.port(), 0);
  httplib::Client client("127.0.0.1", server.port());
  c.inc(41);
  c.inc();
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), kExpositionContentType);
  const ParsedMetrics m = parse(res->body);
  EXPECT_EQ(m.sum("fleet_served_total", {{"service", "test"}}), 42);
  auto missing = client.Get("/other");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  // The port is taken now: a second server on it fails, naming the address.
  try {
    MetricsServer again(reg, "127.0.0.1", server.port());
    ADD_FAILURE() << "a second server bound the same port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(server.port())), std::string::npos) << e.what();
  }
}

TEST(MetricsServer, StopsRightAfterStarting) {
  MetricsRegistry reg;
  for (int i = 0; i < 20; ++i) MetricsServer s(reg, "127.0.0.1", 0);  // destructor never hangs
}

TEST(MetricsServer, ServeMetricsOnAnExistingServer) {
  MetricsRegistry reg;
  reg.gauge("fleet_up", "x").get().set(1);
  httplib::Server server;
  serve_metrics(server, reg, "/custom-metrics");
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread t([&] { server.listen_after_bind(); });
  httplib::Client client("127.0.0.1", port);
  // The socket is bound and listening before the thread starts: the first request is answered.
  auto res = client.Get("/custom-metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(parse(res->body).sum("fleet_up"), 1);
  server.stop();
  t.join();
}

}  // namespace
}  // namespace fleet::metrics
