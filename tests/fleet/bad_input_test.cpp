// Bad input, everywhere, at scale: a generated corpus of 200+ bad records (tests/fleet/
// bad_records.h: malformed and binary prompts, wrong types and values of every field, invalid
// UTF-8, prompts longer than the context, records near the broker's 1 MB limit, garbage and
// lying activation messages into stage 1, malformed and pointless control records) produced in
// a seeded shuffle with 20 good greedy requests to one 2-stage stories260K deployment.
//
// Every bad record must be answered as the fleet promises (an error event with the right code
// keyed by the request id, and/or a dead-letter record, each message saying what was wrong; a
// cancel of an unknown id: a line in the stage-0 worker's log), no worker may exit, and the good
// requests must give fleet generate's text with each token index once. Afterwards the same 20
// prompts, under new ids, must still complete (the fleet is healthy). Prints one table:
//   family                      records  answered
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bus/consumer.h"
#include "bus/producer.h"
#include "contracts/result_events.h"
#include "fleet/bad_records.h"
#include "fleet/deployment.h"
#include "model/weights.h"
#include "support/stack_env.h"
#include "support/stories_reference.h"
#include "test_support.h"

namespace fleet::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kMaxTokens = 32;
constexpr uint64_t kSeed = 20250601;
// Stop waiting for answers when the good requests are done and nothing new arrived for this
// long (an unanswered record then shows as a failure), or at the hard limit.
constexpr auto kQuiet = 8s;
constexpr auto kHardLimit = 90s;

const std::vector<std::string>& kPrompts = story_prompts();

struct DeadLetter {
  std::string topic, code, message, value;  // value: decoded from value_base64 when needed
  bool base64 = false;
  bool truncated = false;  // value_truncated: the value is a prefix of the record
  std::string raw;
};

// Follows the dead-letter topic from its end; dead letters by their source record's key.
class DeadLetterReader {
 public:
  explicit DeadLetterReader(const DeploymentConfig& config)
      : consumer_(bus::Consumer::from_end(kafka_brokers(), config.dead_letter_topic())) {}

  size_t poll(int timeout_ms) {
    std::vector<bus::Message> batch = consumer_->poll_batch(256, timeout_ms);
    for (const bus::Message& m : batch) {
      nlohmann::json j = nlohmann::json::parse(m.value, nullptr, false);
      if (j.is_discarded() || !j.contains("source") || !j.contains("error")) {
        ADD_FAILURE() << "unparsable dead-letter record: " << printable(m.value, 400);
        continue;
      }
      DeadLetter d;
      d.topic = j["source"].value("topic", "");
      d.code = j["error"].value("code", "");
      d.message = j["error"].value("message", "");
      d.base64 = j.contains("value_base64");
      d.value = d.base64 ? j.value("value_base64", "") : j.value("value", "");
      d.truncated = j.value("value_truncated", false);
      d.raw = m.value.size() > 600 ? m.value.substr(0, 600) + "..." : m.value;
      const std::string key = j["source"].contains("key") && j["source"]["key"].is_string()
                                  ? j["source"]["key"].get<std::string>()
                                  : j["source"].value("key_base64", "");
      by_key_[key].push_back(std::move(d));
    }
    return batch.size();
  }
  const std::vector<DeadLetter>* find(const std::string& key) const {
    auto it = by_key_.find(key);
    return it == by_key_.end() ? nullptr : &it->second;
  }

 private:
  std::unique_ptr<bus::Consumer> consumer_;
  std::map<std::string, std::vector<DeadLetter>> by_key_;
};

DeploymentOptions two_stages() {
  DeploymentOptions o;
  o.name = "badinput";
  o.model_path = stories_bin();
  o.tokenizer = stories_tok();
  o.stages = {{0, 3, 1}, {3, 5, 1}};
  return o;
}

std::string topic_of(const DeploymentConfig& c, BadTopic t) {
  switch (t) {
    case BadTopic::Prompts: return c.prompts_topic();
    case BadTopic::Stage1: return c.stage_topic(1);
    case BadTopic::Control: return c.control_topic();
  }
  return "";
}

// The stage-0 worker's model fingerprint, from its start-up line ("..., fingerprint <hex>, ...").
std::string fingerprint_from_log(const std::string& log) {
  const size_t at = log.find("fingerprint ");
  if (at == std::string::npos) return "";
  const size_t from = at + 12;
  return log.substr(from, log.find_first_of(", \n", from) - from);
}

// A message with r's key and id cut out: "says" must not match the id the message quotes.
std::string without_ids(std::string message, const BadRecord& r) {
  for (const std::string& id : {r.key, r.event_id})
    for (size_t at; !id.empty() && (at = message.find(id)) != std::string::npos;) message.erase(at, id.size());
  return message;
}

// Why r is not answered as expected so far ("" when it is). `final` also checks that nothing
// unexpected arrived (no event or dead letter where none is due).
std::string problem(const BadRecord& r, const ResultCollector& results, const DeadLetterReader& dead,
                    const std::string& stage0_log, const std::string& expected_topic, bool final) {
  std::string p;
  if (!r.event_id.empty()) {
    const RequestTrace* t = results.trace(r.event_id);
    const ObservedEvent* err = nullptr;
    if (t)
      for (const ObservedEvent& e : t->events)
        if (e.event.type != ResultEvent::Type::Token) {
          err = &e;
          break;
        }
    if (!err) {
      p += "no error event for id '" + printable(r.event_id, 60) + "'; ";
    } else if (err->event.type != ResultEvent::Type::Error) {
      p += "a done event instead of an error (text \"" + printable(err->event.text, 80) + "\"); ";
    } else {
      if (err->event.error.code != r.code) p += "event code " + err->event.error.code + " (expected " + r.code + "); ";
      if (without_ids(err->event.error.message, r).find(r.says) == std::string::npos)
        p += "event message \"" + printable(err->event.error.message, 240) + "\" lacks \"" + r.says + "\"; ";
      if (final && (t->terminal_events != 1 || t->events.size() != 1))
        p += std::to_string(t->events.size()) + " events (" + std::to_string(t->terminal_events) + " terminal) for it; ";
    }
  } else if (final && results.trace(r.key)) {
    p += "unexpected result events for key '" + r.key + "'; ";
  }
  const std::vector<DeadLetter>* dl = dead.find(r.key);
  if (r.dead_letter) {
    if (!dl) {
      p += "no dead-letter record; ";
    } else {
      const DeadLetter& d = dl->front();
      if (d.topic != expected_topic) p += "dead letter's source.topic " + d.topic + "; ";
      if (d.code != r.code) p += "dead-letter code " + d.code + " (expected " + r.code + "); ";
      if (without_ids(d.message, r).find(r.says) == std::string::npos)
        p += "dead-letter message \"" + printable(d.message, 240) + "\" lacks \"" + r.says + "\"; ";
      // The record's value, whole; or, past kDeadLetterValueBytes (marked value_truncated), a
      // prefix of it.
      const std::string want = d.base64 ? base64_encode(r.value) : r.value;
      const size_t n = d.value.size() > 4 ? d.value.size() - 4 : 0;  // a base64 tail may differ
      const bool prefix = d.truncated && r.value.size() > kDeadLetterValueBytes && want.compare(0, n, d.value, 0, n) == 0;
      if (d.value != want && !prefix) p += "dead letter does not carry the record's value; ";
      if (final && dl->size() != 1) p += std::to_string(dl->size()) + " dead-letter records; ";
    }
  } else if (final && dl) {
    p += "unexpected dead-letter record: " + dl->front().raw + "; ";
  }
  if (!r.log_line.empty() && stage0_log.find(r.log_line) == std::string::npos)
    p += "stage-0 log lacks \"" + r.log_line + "\"; ";
  return p;
}

// Lines of the workers' logs that mention `needle` (at most 6, each shortened).
std::string log_lines_with(Deployment& d, const std::string& needle) {
  std::string out;
  int n = 0;
  for (size_t i = 0; i < d.workers().size(); ++i) {
    std::istringstream in(read_file(d.workers()[i].log));
    for (std::string line; std::getline(in, line) && n < 6;)
      if (line.find(needle) != std::string::npos) {
        out += "    worker " + std::to_string(i) + ": " + printable(line, 400) + "\n";
        ++n;
      }
  }
  return out.empty() ? "    (no worker log line mentions it)\n" : out;
}

void expect_workers_alive(Deployment& d, const std::string& when) {
  for (size_t i = 0; i < d.workers().size(); ++i) {
    Deployment::Worker& w = d.workers()[i];
    int status = 0;
    const bool alive = w.running && waitpid(w.pid, &status, WNOHANG) == 0;
    EXPECT_TRUE(alive) << "worker " << i << " (stage " << w.stage << ") exited " << when << "\n" << d.log_tails(60);
  }
}

void expect_reference_text(const ResultCollector& results, const std::vector<std::string>& ids, const std::string& what) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const RequestTrace* t = results.trace(ids[i]);
    ASSERT_NE(t, nullptr) << what << ": nothing for " << ids[i];
    const Completion c = t->completion();
    const GenerateResult& ref = stories_reference(kPrompts[i], kMaxTokens);
    EXPECT_EQ(c.error_code, "") << what << ": " << ids[i] << ": " << c.text;
    EXPECT_EQ(c.text, ref.text) << what << ": prompt \"" << kPrompts[i] << "\"";
    EXPECT_EQ(c.tokens, ref.tokens) << what << ": prompt \"" << kPrompts[i] << "\"";
    EXPECT_EQ(c.token_text, ref.text) << what;
    const std::vector<std::string> problems = ResultCollector::delivery_problems(*t);
    EXPECT_TRUE(problems.empty()) << what << ": " << ids[i] << ": " << (problems.empty() ? "" : problems.front());
  }
}

TEST(FleetBadInput, EveryBadRecordIsAnsweredNoWorkerExitsAndGoodRequestsComplete) {
  Deployment d(two_stages());
  if (HasFatalFailure()) return;
  const DeploymentConfig& cfg = d.config();
  const ModelConfig model = open_model(stories_bin()).config;

  BadRecordSpec spec;
  spec.tag = unique_name("t").substr(2);
  spec.seed = kSeed;
  spec.dim = model.dim;
  spec.context = model.max_seq_len;
  spec.vocab = model.vocab_size;
  spec.fingerprint = fingerprint_from_log(read_file(d.workers()[0].log));
  ASSERT_FALSE(spec.fingerprint.empty()) << "no fingerprint in stage 0's log:\n" << d.log_tails(20);
  spec.max_message_bytes = cfg.kafka.max_message_bytes;
  const std::vector<BadRecord> bad = make_bad_records(spec);
  ASSERT_GE(bad.size(), 200u);

  // Good and bad records in one seeded shuffle: index < 0 is good request -index-1.
  std::vector<std::string> good_ids;
  for (size_t i = 0; i < kPrompts.size(); ++i) good_ids.push_back("good-" + std::to_string(i) + "-" + spec.tag);
  std::vector<long> order;
  for (size_t i = 0; i < bad.size(); ++i) order.push_back(static_cast<long>(i));
  for (size_t i = 0; i < good_ids.size(); ++i) order.push_back(-static_cast<long>(i) - 1);
  std::mt19937_64 rng(kSeed);
  for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng() % (i + 1)]);

  ResultCollector results(cfg);
  DeadLetterReader dead(cfg);
  {
    bus::Producer producer(kafka_brokers());
    for (long k : order) {
      if (k < 0) {
        const size_t g = static_cast<size_t>(-k - 1);
        producer.produce(cfg.prompts_topic(), good_ids[g], greedy_record(good_ids[g], kPrompts[g], kMaxTokens));
      } else {
        const BadRecord& r = bad[static_cast<size_t>(k)];
        producer.produce(topic_of(cfg, r.topic), r.key, r.value);
      }
    }
    producer.flush(60000);
  }
  const auto sent = Clock::now();

  // Wait for the good requests and every expected answer.
  std::string stage0_log;
  auto last_news = Clock::now();
  auto all_answered = [&] {
    stage0_log = read_file(d.workers()[0].log);
    for (const BadRecord& r : bad)
      if (!problem(r, results, dead, stage0_log, topic_of(cfg, r.topic), false).empty()) return false;
    return true;
  };
  bool answered = false;
  while (Clock::now() - sent < kHardLimit) {
    if (results.poll(100) + dead.poll(100) > 0) last_news = Clock::now();
    const bool good_done = results.unfinished(good_ids).empty();
    if (good_done && (answered = all_answered())) break;
    if (good_done && Clock::now() - last_news > kQuiet) break;
  }
  const double waited = std::chrono::duration<double>(Clock::now() - sent).count();
  for (auto quiet = Clock::now(); Clock::now() - quiet < 2s;)  // late or duplicate answers
    if (results.poll(100) + dead.poll(100) > 0) quiet = Clock::now();
  stage0_log = read_file(d.workers()[0].log);
  std::printf("bad input: %zu bad records + %zu good requests; %s after %.1f s\n", bad.size(), good_ids.size(),
              answered ? "all answered" : "stopped waiting", waited);

  expect_workers_alive(d, "while the bad records were processed");
  EXPECT_TRUE(results.unfinished(good_ids).empty()) << results.unfinished(good_ids).size() << " good requests unfinished";
  expect_reference_text(results, good_ids, "interleaved with bad records");

  // Every bad record, by family.
  std::map<std::string, std::pair<int, int>> table;  // family -> (records, answered as expected)
  std::vector<std::string> families;
  int failures = 0;
  for (const BadRecord& r : bad) {
    if (!table.count(r.family)) families.push_back(r.family);
    auto& [n, ok] = table[r.family];
    ++n;
    const std::string p = problem(r, results, dead, stage0_log, topic_of(cfg, r.topic), true);
    if (p.empty()) {
      ++ok;
      continue;
    }
    if (++failures > 40) continue;  // the table still counts them
    std::string observed;
    if (const RequestTrace* t = results.trace(r.event_id.empty() ? r.key : r.event_id))
      for (const ObservedEvent& e : t->events)
        if (e.event.type == ResultEvent::Type::Error)
          observed += "    error event: " + e.event.error.code + ": " + printable(e.event.error.message, 300) + "\n";
    if (const std::vector<DeadLetter>* dl = dead.find(r.key))
      for (const DeadLetter& x : *dl) observed += "    dead letter: " + x.code + ": " + printable(x.message, 300) + "\n";
    ADD_FAILURE() << "bad record not answered as expected: [" << r.family << "] " << r.what << "\n"
                  << "  topic " << bad_topic_name(r.topic) << ", key '" << printable(r.key, 80) << "', value "
                  << printable(r.value, 200) << "\n"
                  << "  expected: "
                  << (r.event_id.empty() ? "" : "error event " + r.code + " for '" + printable(r.event_id, 60) + "'; ")
                  << (r.dead_letter ? "dead letter; " : "") << (r.log_line.empty() ? "" : "log line; ")
                  << "saying \"" << r.says << "\"\n"
                  << "  problem: " << p << "\n"
                  << (observed.empty() ? "    (no event, no dead letter)\n" : observed)
                  << "  worker log lines naming it:\n"
                  << log_lines_with(d, r.event_id.empty() || r.event_id.size() > 200 ? r.key : r.event_id);
  }
  std::printf("%-28s %8s %9s\n", "family", "records", "answered");
  int total_ok = 0;
  for (const std::string& f : families) {
    std::printf("%-28s %8d %9d%s\n", f.c_str(), table[f].first, table[f].second,
                table[f].first == table[f].second ? "" : "  <--");
    total_ok += table[f].second;
  }
  std::printf("%-28s %8zu %9d\n", "total", bad.size(), total_ok);
  EXPECT_EQ(failures, 0) << failures << " of " << bad.size() << " bad records not answered as expected";

  // The fleet is healthy: the same prompts under new ids complete with the same text.
  std::vector<std::pair<std::string, std::string>> again;
  std::vector<std::string> again_ids;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    again_ids.push_back("again-" + std::to_string(i) + "-" + spec.tag);
    again.emplace_back(again_ids.back(), greedy_record(again_ids.back(), kPrompts[i], kMaxTokens));
  }
  ResultCollector after(cfg);
  d.submit(again);
  EXPECT_TRUE(after.wait_all_finished(again_ids, 60s)) << d.log_tails(40);
  after.drain(1s);
  expect_reference_text(after, again_ids, "after the bad records");
  expect_workers_alive(d, "after the bad records");
}

}  // namespace
}  // namespace fleet::test
