#pragma once
// A generated corpus of bad input for a running fleet (tests/fleet/bad_input_test.cpp): records
// for the prompts topic, for stage 1's activation topic (of a 2-stage deployment) and for the
// control topic, each with the outcome the fleet owes it. Deterministic for a given seed and
// tag: families of variants, built from a seeded std::mt19937_64 (the tag only makes ids and
// keys unique per run).
//
//   BadRecordSpec spec{.tag = "9f3c...", .seed = 7, .dim = 64, .context = 512};
//   for (const BadRecord& r : make_bad_records(spec)) produce(topic_of(r), r.key, r.value);
//
// Every record has its own key (unique per run): its dead-letter record, if any, is found by
// source.key, and its error event, if any, by event_id.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fleet::test {

enum class BadTopic { Prompts, Stage1, Control };
const char* bad_topic_name(BadTopic t);  // "prompts", "stage.1", "control"

struct BadRecord {
  std::string family;  // e.g. "max_tokens", "stage:truncated", "control:unknown-id"
  std::string what;    // the variant, in a few words
  BadTopic topic = BadTopic::Prompts;
  std::string key;     // record key, unique per run
  std::string value;   // record value (JSON text, protobuf bytes or garbage)

  // What the fleet must do with it:
  std::string event_id;      // an error event for this id on the results topic ("" = no event)
  std::string code;          // the error code of the event and of the dead-letter record
  std::string says;          // their messages contain this (says what was wrong)
  bool dead_letter = false;  // a dead-letter record whose source.key is `key`
  std::string log_line;      // a line the stage-0 worker logs ("" = none expected)
};

struct BadRecordSpec {
  std::string tag;   // [0-9a-f]+, makes ids and keys unique per run
  uint64_t seed = 1;
  int dim = 64;        // the model's hidden size (hidden rows of stage-topic records)
  int context = 512;   // the model's context (prompts longer than this are refused)
  int vocab = 512;
  std::string fingerprint;  // stage 0's model fingerprint, carried by well-formed steps
  size_t max_message_bytes = 1000000;  // the broker's record limit
};

// At least 200 records; families in a fixed order (the test shuffles them).
std::vector<BadRecord> make_bad_records(const BadRecordSpec& spec);

// A few hundred bytes of a record value, printable (other bytes as \xNN), for reports.
std::string printable(const std::string& bytes, size_t max = 160);

}  // namespace fleet::test
