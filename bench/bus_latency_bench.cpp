// Round-trip latency of one small message through the real Kafka broker: produce,
// then poll a group consumer until it arrives; one message in flight at a time.
//
//   scripts/stack.sh up /tmp/st && . /tmp/st/stack.env
//   build/bench/fleet_bench_bus_latency --brokers $FLEET_KAFKA_BROKERS [--n 2000]
//       [--size 100] [--fetch-wait-ms 100] [--linger-ms 0] [--acks all]
//       [-X name=value ...]   (any librdkafka property, producer and consumer)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bus/admin.h"
#include "bus/consumer.h"
#include "bus/producer.h"

namespace {

using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --brokers HOST:PORT [--n N] [--warmup N] [--size BYTES] [--fetch-wait-ms MS]\n"
               "          [--linger-ms MS] [--acks all|1] [-X name=value]...\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string brokers = std::getenv("FLEET_KAFKA_BROKERS") ? std::getenv("FLEET_KAFKA_BROKERS") : "";
  int n = 2000, warmup = 100;
  std::size_t size = 100;
  std::string fetch_wait = "100", linger = "0", acks = "all";
  fleet::bus::Config extra;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--brokers") brokers = next();
    else if (a == "--n") n = std::stoi(next());
    else if (a == "--warmup") warmup = std::stoi(next());
    else if (a == "--size") size = std::stoul(next());
    else if (a == "--fetch-wait-ms") fetch_wait = next();
    else if (a == "--linger-ms") linger = next();
    else if (a == "--acks") acks = next();
    else if (a == "-X") {
      std::string kv = next();
      auto eq = kv.find('=');
      if (eq == std::string::npos) return usage(argv[0]);
      extra[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else return usage(argv[0]);
  }
  if (brokers.empty() || n <= 0) return usage(argv[0]);

  try {
    std::mt19937_64 rng{std::random_device{}()};
    const std::string suffix = std::to_string(rng() % 1000000000);
    const std::string topic = "bench-latency-" + suffix;
    fleet::bus::ensure_topics(brokers, {{topic, 1}});

    fleet::bus::Config pconf = extra, cconf = extra;
    pconf["linger.ms"] = linger;
    pconf["acks"] = acks;
    if (acks != "all") pconf["enable.idempotence"] = "false";
    cconf["fetch.wait.max.ms"] = fetch_wait;
    fleet::bus::Producer producer(brokers, pconf);
    fleet::bus::Consumer consumer(brokers, "bench-latency-" + suffix, {topic}, cconf);

    // Wait until the consumer owns the partition (bounded).
    const auto join_deadline = Clock::now() + std::chrono::seconds(60);
    while (consumer.assignment().empty()) {
      if (consumer.poll(50)) break;
      if (Clock::now() > join_deadline) throw std::runtime_error("consumer never got its partition");
    }

    std::string payload(size, 'x');
    std::vector<double> us;
    us.reserve(n);
    double cpu0 = 0;
    auto wall0 = Clock::now();
    for (int i = 0; i < warmup + n; ++i) {
      if (i == warmup) {
        cpu0 = cpu_seconds();
        wall0 = Clock::now();
      }
      const std::string seq = std::to_string(i);
      std::memcpy(payload.data(), seq.data(), std::min(seq.size(), payload.size()));
      const auto t0 = Clock::now();
      producer.produce(topic, "k", payload);
      for (;;) {
        auto m = consumer.poll(5000);
        if (!m) throw std::runtime_error("message " + seq + " did not arrive within 5 s");
        if (m->value.compare(0, seq.size(), seq) == 0) break;
      }
      const auto t1 = Clock::now();
      if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      producer.poll(0);
    }
    const double wall = std::chrono::duration<double>(Clock::now() - wall0).count();
    const double cpu = cpu_seconds() - cpu0;
    producer.flush(10000);
    consumer.close();

    std::sort(us.begin(), us.end());
    auto pct = [&](double p) { return us[std::min(us.size() - 1, static_cast<std::size_t>(p * us.size()))] / 1000.0; };
    double mean = 0;
    for (double v : us) mean += v;
    mean /= us.size();
    std::printf(
        "bus round trip (produce -> consume), %d msgs of %zu B, linger.ms=%s acks=%s fetch.wait.max.ms=%s\n"
        "  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  mean %.3f ms  (process CPU %.0f%% of one core)\n",
        n, size, linger.c_str(), acks.c_str(), fetch_wait.c_str(), pct(0.50), pct(0.90), pct(0.99), us.back() / 1000.0,
        mean / 1000.0, 100.0 * cpu / wall);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bus_latency_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
