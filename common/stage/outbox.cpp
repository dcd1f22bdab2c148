#include "stage/outbox.h"

#include "bus/topic_scan.h"
#include "contracts/result_events.h"

namespace fleet {

bool note_published_result(const std::string& value, const std::set<std::string>& ids,
                           std::map<std::string, PublishedResults>& out) {
  std::optional<ResultEvent> ev = parse_result_event(value);
  if (!ev || !ids.count(ev->id)) return false;
  PublishedResults& p = out[ev->id];
  if (ev->type == ResultEvent::Type::Token) p.token_indices.insert(ev->index);
  else {
    p.terminal = true;
    const bool error = ev->type == ResultEvent::Type::Error;
    const std::string& code = ev->error.code;
    const bool rejection = error && (code == error_code::kDuplicateId || code == error_code::kInvalidRequest ||
                                     code == error_code::kInvalidJson || code == error_code::kPromptTooLong);
    if (!rejection) {
      p.ended = true;
      p.ended_by_error = error;
      p.ended_reason = error ? code + ": " + ev->error.message : ev->finish_reason;
    }
  }
  return true;
}

KafkaOutbox::KafkaOutbox(std::string brokers, uint64_t max_message_bytes, bus::Config properties)
    : brokers_(std::move(brokers)),
      properties_(std::move(properties)),
      producer_(brokers_, bus::with(properties_, {{"message.max.bytes", std::to_string(max_message_bytes)}})) {}

void KafkaOutbox::produce(const std::string& topic, const std::string& key, const std::string& value) {
  producer_.produce(topic, key, value);
}

void KafkaOutbox::flush() { producer_.flush(30000); }

std::map<std::string, PublishedResults> scan_published_results(const std::string& brokers,
                                                               const bus::Config& properties,
                                                               const std::string& results_topic,
                                                               const std::set<std::string>& ids, int64_t since_ms) {
  std::map<std::string, PublishedResults> out;
  bus::scan_topic_since(brokers, results_topic, since_ms,
                        [&](const bus::Message& m) {
                          if (ids.count(m.key)) note_published_result(m.value, ids, out);
                        },
                        10000, properties);
  return out;
}

std::map<std::string, PublishedResults> KafkaOutbox::published_results(const std::string& results_topic,
                                                                       const std::set<std::string>& ids,
                                                                       int64_t since_ms) {
  return scan_published_results(brokers_, properties_, results_topic, ids, since_ms);
}

std::map<std::string, PublishedResults> MemoryOutbox::published_results(const std::string& results_topic,
                                                                        const std::set<std::string>& ids, int64_t) {
  if (scans_fail) throw bus::BusError("scan of '" + results_topic + "': the broker is away (MemoryOutbox::scans_fail)", -1);
  std::map<std::string, PublishedResults> out;
  for (const Record& r : *delivered_)
    if (r.topic == results_topic) note_published_result(r.value, ids, out);
  return out;
}

}  // namespace fleet
