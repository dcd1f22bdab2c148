#include "bus/admin.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <thread>

#include <librdkafka/rdkafka.h>

#include "bus/internal.h"

namespace fleet::bus {

namespace {

using clock = std::chrono::steady_clock;

int ms_left(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return static_cast<int>(std::max<int64_t>(left, 0));
}

std::string err_text(rd_kafka_resp_err_t err) {
  return std::string(rd_kafka_err2str(err)) + " (" + rd_kafka_err2name(err) + ")";
}

// What metadata says about one topic.
struct TopicState {
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  int partitions = 0;
  bool all_led = false;  // every partition has a leader and no error
};

}  // namespace

struct Admin::Impl {
  rd_kafka_t* rk = nullptr;
  std::string brokers;

  ~Impl() {
    if (rk) rd_kafka_destroy(rk);
  }

  // All topics the cluster knows (a request for all topics never auto-creates one).
  std::map<std::string, TopicState> topics(int timeout_ms) const {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &md, std::max(timeout_ms, 1));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw BusError("bus: metadata request to " + brokers + " failed: " + err_text(err), err, true);
    }
    std::map<std::string, TopicState> out;
    for (int i = 0; i < md->topic_cnt; ++i) {
      const rd_kafka_metadata_topic_t& t = md->topics[i];
      TopicState s;
      s.err = t.err;
      s.partitions = t.partition_cnt;
      s.all_led = t.err == RD_KAFKA_RESP_ERR_NO_ERROR && t.partition_cnt > 0;
      for (int p = 0; p < t.partition_cnt; ++p) {
        if (t.partitions[p].leader < 0 || t.partitions[p].err != RD_KAFKA_RESP_ERR_NO_ERROR) s.all_led = false;
      }
      out[t.topic] = s;
    }
    rd_kafka_metadata_destroy(md);
    return out;
  }

  void create(const std::vector<const TopicSpec*>& specs, int timeout_ms) {
    std::vector<rd_kafka_NewTopic_t*> nts;
    rd_kafka_AdminOptions_t* opts = nullptr;
    rd_kafka_queue_t* q = nullptr;
    rd_kafka_event_t* ev = nullptr;
    auto cleanup = [&] {
      if (ev) rd_kafka_event_destroy(ev);
      if (q) rd_kafka_queue_destroy(q);
      if (opts) rd_kafka_AdminOptions_destroy(opts);
      for (auto* nt : nts) rd_kafka_NewTopic_destroy(nt);
    };
    try {
      char errstr[512];
      for (const TopicSpec* s : specs) {
        rd_kafka_NewTopic_t* nt =
            rd_kafka_NewTopic_new(s->name.c_str(), s->partitions, s->replication_factor, errstr, sizeof errstr);
        if (!nt) throw BusError("bus: topic '" + s->name + "': " + errstr, RD_KAFKA_RESP_ERR__INVALID_ARG);
        nts.push_back(nt);
        for (const auto& [k, v] : s->configs) {
          rd_kafka_resp_err_t e = rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
          if (e) throw BusError("bus: topic '" + s->name + "' config " + k + "=" + v + ": " + err_text(e), e);
        }
      }
      opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
      rd_kafka_AdminOptions_set_operation_timeout(opts, std::max(timeout_ms, 1), errstr, sizeof errstr);
      rd_kafka_AdminOptions_set_request_timeout(opts, std::max(timeout_ms, 1), errstr, sizeof errstr);
      q = rd_kafka_queue_new(rk);
      rd_kafka_CreateTopics(rk, nts.data(), nts.size(), opts, q);
      ev = rd_kafka_queue_poll(q, std::max(timeout_ms, 1) + 1000);
      if (!ev) throw BusError("bus: CreateTopics on " + brokers + " got no answer", RD_KAFKA_RESP_ERR__TIMED_OUT, true);
      if (rd_kafka_event_error(ev)) {
        rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
        throw BusError(std::string("bus: CreateTopics on ") + brokers + " failed: " + rd_kafka_event_error_string(ev) +
                           " (" + rd_kafka_err2name(e) + ")",
                       e, e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT);
      }
      const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
      size_t n = 0;
      const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &n);
      for (size_t i = 0; i < n; ++i) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
        const char* msg = rd_kafka_topic_result_error_string(results[i]);
        throw BusError(std::string("bus: creating topic '") + rd_kafka_topic_result_name(results[i]) + "' failed: " +
                           (msg ? msg : "") + " (" + rd_kafka_err2name(e) + ")",
                       e);
      }
    } catch (...) {
      cleanup();
      throw;
    }
    cleanup();
  }
};

Admin::Admin(const std::string& brokers, const Config& overrides) : impl_(std::make_unique<Impl>()) {
  impl_->brokers = brokers;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  Config all = overrides;
  all["bootstrap.servers"] = brokers;
  for (const auto& [k, v] : all) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw detail::invalid_property(k, v, errstr, all);
    }
  }
  impl_->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);  // takes conf on success
  if (!impl_->rk) {
    rd_kafka_conf_destroy(conf);
    throw BusError("bus: cannot create admin client for " + brokers + ": " + detail::scrub_secrets(errstr, all),
                   RD_KAFKA_RESP_ERR__INVALID_ARG);
  }
}

Admin::~Admin() = default;

void Admin::ensure_topics(const std::vector<TopicSpec>& topics, int timeout_ms) {
  const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  for (const auto& s : topics) {
    if (s.name.empty() || s.partitions < 1) {
      throw BusError("bus: invalid topic spec '" + s.name + "' with " + std::to_string(s.partitions) + " partition(s)",
                     RD_KAFKA_RESP_ERR__INVALID_ARG);
    }
  }
  bool created = false;
  for (;;) {
    std::optional<BusError> last;
    std::map<std::string, TopicState> known;
    try {
      known = impl_->topics(std::max(ms_left(deadline), 1));
    } catch (const BusError& e) {
      if (clock::now() >= deadline) throw;
      last = e;
    }
    std::vector<const TopicSpec*> missing;
    std::string not_ready;
    if (!last) {
      for (const auto& s : topics) {
        auto it = known.find(s.name);
        if (it == known.end() || it->second.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
          missing.push_back(&s);
          not_ready += " '" + s.name + "' (missing)";
          continue;
        }
        const TopicState& st = it->second;
        if (st.partitions > 0 && st.partitions != s.partitions) {
          throw BusError("bus: topic '" + s.name + "' exists with " + std::to_string(st.partitions) +
                             " partition(s), the deployment wants " + std::to_string(s.partitions),
                         RD_KAFKA_RESP_ERR_INVALID_PARTITIONS);
        }
        if (!st.all_led) not_ready += " '" + s.name + "' (" + (st.err ? err_text(st.err) : "partitions without a leader") + ")";
      }
      if (not_ready.empty()) return;
      if (!missing.empty() && !created) {
        impl_->create(missing, std::max(ms_left(deadline), 1));
        created = true;  // metadata may lag the creation; wait for it below
        continue;
      }
    }
    if (clock::now() >= deadline) {
      throw BusError("bus: topics not ready on " + impl_->brokers + " after " + std::to_string(timeout_ms) + " ms:" +
                         (last ? std::string(" ") + last->what() : not_ready),
                     RD_KAFKA_RESP_ERR__TIMED_OUT, true);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, ms_left(deadline))));  // metadata poll backoff
  }
}

int Admin::partition_count(const std::string& topic, int timeout_ms) {
  auto known = impl_->topics(timeout_ms);
  auto it = known.find(topic);
  if (it == known.end() || it->second.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
    throw BusError("bus: topic '" + topic + "' does not exist on " + impl_->brokers,
                   RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  }
  if (it->second.err) {
    throw BusError("bus: topic '" + topic + "': " + err_text(it->second.err), it->second.err, true);
  }
  return it->second.partitions;
}

bool Admin::exists(const std::string& topic, int timeout_ms) {
  auto known = impl_->topics(timeout_ms);
  auto it = known.find(topic);
  return it != known.end() && it->second.err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

void ensure_topics(const std::string& brokers, const std::vector<TopicSpec>& topics, int timeout_ms,
                   const Config& overrides) {
  Admin(brokers, overrides).ensure_topics(topics, timeout_ms);
}

}  // namespace fleet::bus
