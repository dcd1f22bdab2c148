// Cost of Kafka transactions on one consume-transform-produce hop, against the real broker.
//
// One message in flight at a time. A driver produces a record to topic A; a worker thread
// (group consumer on A + producer to B) consumes it and produces one 100-byte record to B;
// a reader on B (assigned, no group) receives it. Latency = driver's produce to A -> reader
// holds the record from B. Three worker variants, same loop otherwise:
//
//   plain: today's stage-worker path: produce (acks=all, idempotent, linger.ms=0), flush()
//          (wait for delivery), commitAsync(consumed offset + 1). Reader: read_uncommitted.
//   txn:   transactional producer (transactional.id, init_transactions once); per message
//          begin_transaction, produce, send_offsets_to_transaction(consumed offset + 1,
//          consumer group metadata), commit_transaction. Reader: read_committed (it sees
//          the record only once the commit marker is written).
//   fence: the last stage's path since fencing (common/stage/fenced_outbox.h): plain's loop
//          through a transactional producer whose transaction stays open and is committed
//          once a second. Reader: read_uncommitted.
//
//   scripts/stack.sh up /tmp/st && . /tmp/st/stack.env
//   build/bench/fleet_bench_txn_cost --brokers $FLEET_KAFKA_BROKERS [--n 1000] [--warmup 100]
//       [--mode all|plain|txn|fence] [--size 100] [--fetch-wait-ms 100] [-X name=value ...]
//
// The broker must allow transactions on one node (transaction.state.log.replication.factor=1,
// transaction.state.log.min.isr=1): scripts/stack.sh sets both.
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bus/admin.h"
#include "bus/consumer.h"
#include "bus/producer.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string brokers;
  int n = 1000, warmup = 100;
  std::size_t size = 100;
  std::string mode = "all";
  std::string fetch_wait = "100";
  fleet::bus::Config extra;  // -X: applied to every client
};

struct Stats {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

Stats stats_ms(std::vector<double> us) {
  Stats s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[std::min(us.size() - 1, static_cast<std::size_t>(p * us.size()))] / 1000.0; };
  s.p50 = pct(0.50);
  s.p90 = pct(0.90);
  s.p99 = pct(0.99);
  s.max = us.back() / 1000.0;
  for (double v : us) s.mean += v;
  s.mean /= us.size() * 1000.0;
  return s;
}

void set(RdKafka::Conf* conf, const std::string& k, const std::string& v) {
  std::string err;
  if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) throw std::runtime_error("config " + k + "=" + v + ": " + err);
}

void check(RdKafka::Error* e, const char* what) {
  if (!e) return;
  std::string text = std::string(what) + ": " + e->str() + (e->txn_requires_abort() ? " (txn requires abort)" : "") +
                     (e->is_fatal() ? " (fatal)" : "");
  delete e;
  throw std::runtime_error(text);
}

class DeliveryErrors : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override {
    if (m.err() != RdKafka::ERR_NO_ERROR) {
      std::lock_guard<std::mutex> lk(mu);
      if (first.empty()) first = m.errstr();
      ++failed;
    }
  }
  std::mutex mu;
  std::string first;
  int failed = 0;
};

enum class Mode { Plain, Txn, Fence };
const char* name_of(Mode m) { return m == Mode::Plain ? "plain" : m == Mode::Txn ? "txn" : "fence"; }

// The consume-transform-produce worker: group consumer on `in`, producer to `out`.
class Worker {
 public:
  Worker(const Options& o, Mode mode, const std::string& in, const std::string& out, const std::string& suffix)
      : txn_(mode == Mode::Txn), fence_(mode == Mode::Fence), in_(in), out_(out) {
    std::unique_ptr<RdKafka::Conf> cc(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    // As fleet::bus::consumer_defaults() (range assignor: no rebalance callback needed here).
    set(cc.get(), "bootstrap.servers", o.brokers);
    set(cc.get(), "group.id", std::string("bench-") + name_of(mode) + "-w-" + suffix);
    set(cc.get(), "enable.auto.commit", "false");
    set(cc.get(), "enable.auto.offset.store", "false");
    set(cc.get(), "auto.offset.reset", "earliest");
    set(cc.get(), "fetch.wait.max.ms", o.fetch_wait);
    set(cc.get(), "fetch.error.backoff.ms", "50");
    set(cc.get(), "socket.nagle.disable", "true");
    set(cc.get(), "enable.partition.eof", "false");
    set(cc.get(), "session.timeout.ms", "3000");
    set(cc.get(), "heartbeat.interval.ms", "500");
    for (const auto& [k, v] : o.extra) set(cc.get(), k, v);
    std::string err;
    consumer_.reset(RdKafka::KafkaConsumer::create(cc.get(), err));
    if (!consumer_) throw std::runtime_error("worker consumer: " + err);
    auto rc = consumer_->subscribe({in_});
    if (rc != RdKafka::ERR_NO_ERROR) throw std::runtime_error("subscribe: " + RdKafka::err2str(rc));

    std::unique_ptr<RdKafka::Conf> pc(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    // As fleet::bus::producer_defaults().
    set(pc.get(), "bootstrap.servers", o.brokers);
    set(pc.get(), "acks", "all");
    set(pc.get(), "enable.idempotence", "true");
    set(pc.get(), "linger.ms", "0");
    set(pc.get(), "socket.nagle.disable", "true");
    set(pc.get(), "compression.type", "none");
    set(pc.get(), "message.timeout.ms", "30000");
    if (txn_ || fence_) set(pc.get(), "transactional.id", std::string("bench-") + name_of(mode) + "-" + suffix);
    for (const auto& [k, v] : o.extra) set(pc.get(), k, v);
    std::string errstr;
    if (pc->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&dr_), errstr) != RdKafka::Conf::CONF_OK)
      throw std::runtime_error("dr_cb: " + errstr);
    producer_.reset(RdKafka::Producer::create(pc.get(), err));
    if (!producer_) throw std::runtime_error("worker producer: " + err);
    if (txn_ || fence_) check(producer_->init_transactions(30000), "init_transactions");
    if (fence_) {
      check(producer_->begin_transaction(), "begin_transaction");
      begun_ = Clock::now();
    }

    // Own the partition before the driver starts (bounded).
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    for (;;) {
      std::vector<RdKafka::TopicPartition*> parts;
      consumer_->assignment(parts);
      const bool owned = !parts.empty();
      RdKafka::TopicPartition::destroy(parts);
      if (owned) break;
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(50));
      if (m->err() == RdKafka::ERR_NO_ERROR) throw std::runtime_error("worker got a message before the driver sent one");
      if (Clock::now() > deadline) throw std::runtime_error("worker consumer never got its partition");
    }
    if (txn_) group_meta_.reset(consumer_->groupMetadata());  // with the generation of the join
  }

  ~Worker() {
    if (consumer_) consumer_->close();
  }

  void start(std::size_t size) {
    thread_ = std::thread([this, size] {
      try {
        loop(size);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lk(err_mu_);
        error_ = e.what();
        failed_ = true;
      }
    });
  }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  bool failed() const { return failed_; }
  std::string error() {
    std::lock_guard<std::mutex> lk(err_mu_);
    return error_;
  }
  // Worker-side time per message: consume() returned -> flush+commitAsync / commit_transaction returned.
  const std::vector<double>& cycle_us() const { return cycle_us_; }
  // plain: flush / commitAsync; txn: send_offsets_to_transaction / commit_transaction.
  const std::vector<double>& phase_a_us() const { return phase_a_us_; }
  const std::vector<double>& phase_b_us() const { return phase_b_us_; }

 private:
  void loop(std::size_t size) {
    std::string payload(size, 'y');
    while (!stop_) {
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(100));
      if (m->err() == RdKafka::ERR__TIMED_OUT) continue;
      if (m->err() != RdKafka::ERR_NO_ERROR) throw std::runtime_error("worker consume: " + m->errstr());
      const auto t0 = Clock::now();
      // Transform: the driver's sequence number goes on in the output record.
      std::fill(payload.begin(), payload.end(), 'y');
      const std::size_t len = std::min(m->len(), payload.size());
      std::memcpy(payload.data(), m->payload(), len);
      if (len < payload.size()) payload[len] = '|';
      std::unique_ptr<RdKafka::TopicPartition> next(
          RdKafka::TopicPartition::create(m->topic_name(), m->partition(), m->offset() + 1));
      std::vector<RdKafka::TopicPartition*> offsets{next.get()};

      if (txn_) check(producer_->begin_transaction(), "begin_transaction");
      auto rc = producer_->produce(out_, 0, RdKafka::Producer::RK_MSG_COPY, payload.data(), payload.size(), "k", 1,
                                   0, nullptr);
      if (rc != RdKafka::ERR_NO_ERROR) throw std::runtime_error("produce: " + RdKafka::err2str(rc));
      const auto t1 = Clock::now();
      if (txn_) {
        check(producer_->send_offsets_to_transaction(offsets, group_meta_.get(), 10000), "send_offsets_to_transaction");
        phase_a_us_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t1).count());
        const auto t2 = Clock::now();
        check(producer_->commit_transaction(10000), "commit_transaction");
        phase_b_us_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t2).count());
      } else {
        if (fence_ && Clock::now() - begun_ >= std::chrono::seconds(1)) {  // as FencedOutbox::commit_due
          check(producer_->commit_transaction(10000), "commit_transaction");
          check(producer_->begin_transaction(), "begin_transaction");
          begun_ = Clock::now();
        }
        rc = producer_->flush(10000);
        if (rc != RdKafka::ERR_NO_ERROR) throw std::runtime_error("flush: " + RdKafka::err2str(rc));
        phase_a_us_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t1).count());
        const auto t2 = Clock::now();
        rc = consumer_->commitAsync(offsets);
        if (rc != RdKafka::ERR_NO_ERROR) throw std::runtime_error("commitAsync: " + RdKafka::err2str(rc));
        phase_b_us_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t2).count());
      }
      {
        std::lock_guard<std::mutex> lk(dr_.mu);
        if (dr_.failed) throw std::runtime_error("delivery failed: " + dr_.first);
      }
      cycle_us_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
  }

  bool txn_, fence_;
  Clock::time_point begun_;
  std::string in_, out_;
  DeliveryErrors dr_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::ConsumerGroupMetadata> group_meta_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::mutex err_mu_;
  std::string error_;
  std::vector<double> cycle_us_, phase_a_us_, phase_b_us_;
};

struct Result {
  Stats hop, cycle, phase_a, phase_b;
};

Result run_mode(const Options& o, Mode mode) {
  const bool txn = mode == Mode::Txn;
  std::mt19937_64 rng{std::random_device{}()};
  const std::string suffix = std::to_string(rng() % 1000000000);
  const std::string a = std::string("bench-txn-a-") + name_of(mode) + "-" + suffix;
  const std::string b = std::string("bench-txn-b-") + name_of(mode) + "-" + suffix;
  fleet::bus::ensure_topics(o.brokers, {{a, 1}, {b, 1}});

  fleet::bus::Config dconf = o.extra;
  fleet::bus::Producer driver(o.brokers, dconf);
  fleet::bus::Config rconf = o.extra;
  rconf["isolation.level"] = txn ? "read_committed" : "read_uncommitted";
  rconf["fetch.wait.max.ms"] = o.fetch_wait;
  auto reader = fleet::bus::Consumer::from_end(o.brokers, b, rconf);

  Worker worker(o, mode, a, b, suffix);
  worker.start(o.size);

  std::string msg(o.size, 'x');
  std::vector<double> us;
  us.reserve(o.n);
  for (int i = 0; i < o.warmup + o.n; ++i) {
    const std::string seq = "#" + std::to_string(i) + "|";
    std::fill(msg.begin(), msg.end(), 'x');
    std::memcpy(msg.data(), seq.data(), std::min(seq.size(), msg.size()));
    const auto t0 = Clock::now();
    driver.produce(a, "k", msg);
    const auto deadline = t0 + std::chrono::seconds(10);
    for (;;) {
      if (worker.failed()) throw std::runtime_error("worker: " + worker.error());
      auto m = reader->poll(100);
      if (m && m->value.compare(0, seq.size(), seq) == 0) break;
      if (Clock::now() > deadline) throw std::runtime_error("message " + seq + " did not come out of B within 10 s");
    }
    const auto t1 = Clock::now();
    if (i >= o.warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    driver.poll(0);
  }
  worker.stop();
  if (worker.failed()) throw std::runtime_error("worker: " + worker.error());
  driver.flush(10000);
  reader->close();

  Result r;
  r.hop = stats_ms(us);
  // Skip the warmup's cycles (the worker handled exactly warmup + n messages).
  auto measured = [&](const std::vector<double>& v) {
    return stats_ms(std::vector<double>(v.begin() + std::min<std::size_t>(v.size(), static_cast<std::size_t>(o.warmup)),
                                        v.end()));
  };
  r.cycle = measured(worker.cycle_us());
  r.phase_a = measured(worker.phase_a_us());
  r.phase_b = measured(worker.phase_b_us());
  return r;
}

void print(const char* name, int n, const Result& r, bool txn) {
  std::printf("%-6s n=%d  hop p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  mean %.3f ms"
              "  | worker cycle p50 %.3f ms  p99 %.3f ms\n",
              name, n, r.hop.p50, r.hop.p90, r.hop.p99, r.hop.max, r.hop.mean, r.cycle.p50, r.cycle.p99);
  std::printf("       worker: %s p50 %.3f ms  p99 %.3f ms;  %s p50 %.3f ms  p99 %.3f ms\n",
              txn ? "send_offsets_to_transaction" : "flush", r.phase_a.p50, r.phase_a.p99,
              txn ? "commit_transaction" : "commitAsync", r.phase_b.p50, r.phase_b.p99);
  std::fflush(stdout);
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --brokers HOST:PORT [--n N] [--warmup N] [--mode all|plain|txn|fence] [--size BYTES]\n"
               "          [--fetch-wait-ms MS] [-X name=value]...\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const char* b = std::getenv("FLEET_KAFKA_BROKERS")) o.brokers = b;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--brokers") o.brokers = next();
    else if (a == "--n") o.n = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--size") o.size = std::stoul(next());
    else if (a == "--mode") o.mode = next();
    else if (a == "--fetch-wait-ms") o.fetch_wait = next();
    else if (a == "-X") {
      std::string kv = next();
      auto eq = kv.find('=');
      if (eq == std::string::npos) return usage(argv[0]);
      o.extra[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else return usage(argv[0]);
  }
  if (o.brokers.empty() || o.n <= 0 || o.warmup < 0 || o.size < 16 ||
      (o.mode != "all" && o.mode != "plain" && o.mode != "txn" && o.mode != "fence"))
    return usage(argv[0]);

  try {
    std::printf("consume-transform-produce hop, one in flight, %zu B records, %d after %d warmup, "
                "fetch.wait.max.ms=%s\n"
                "  plain: produce (acks=all, idempotent, linger.ms=0), flush, commitAsync; reader read_uncommitted\n"
                "  txn:   begin, produce, send_offsets_to_transaction, commit_transaction; reader read_committed\n"
                "  fence: plain's loop in a transaction committed once a second; reader read_uncommitted\n",
                o.size, o.n, o.warmup, o.fetch_wait.c_str());
    std::fflush(stdout);
    Result plain, txn, fence;
    const bool all = o.mode == "all";
    if (all || o.mode == "plain") print("plain", o.n, plain = run_mode(o, Mode::Plain), false);
    if (all || o.mode == "fence") print("fence", o.n, fence = run_mode(o, Mode::Fence), false);
    if (all || o.mode == "txn") print("txn", o.n, txn = run_mode(o, Mode::Txn), true);
    if (all) {
      std::printf("fence - plain: hop p50 %+.3f ms  p99 %+.3f ms\n", fence.hop.p50 - plain.hop.p50,
                  fence.hop.p99 - plain.hop.p99);
      std::printf("ratio txn/plain: hop p50 %.2fx  p99 %.2fx  worker cycle p50 %.2fx\n", txn.hop.p50 / plain.hop.p50,
                  txn.hop.p99 / plain.hop.p99, txn.cycle.p50 / plain.cycle.p50);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "txn_cost_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
