// fleet submit / fleet tail: the client side of a deployment, over its Kafka topics.
//
//   fleet submit --config FILE --prompt TEXT [--max-tokens N] [--temperature T] ...
//     Follows the results topic from its current end (an assign-based consumer, no group
//     race), THEN produces the prompts record keyed by id, and streams the text of that id's
//     token events to stdout as they arrive; a newline after the done event, a usage/timings
//     summary on stderr. Exit 0 when done, 1 on an error event (code and message on stderr),
//     2 when nothing final arrives within --timeout-s.
//   fleet tail --config FILE [--from-beginning] [--id ID] [--max-events N]
//     Prints every results event as one JSON line until SIGINT (or N events).
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bus/admin.h"
#include "bus/consumer.h"
#include "bus/producer.h"
#include "commands.h"
#include "log/log.h"
#include "config/deployment_config.h"
#include "contracts/prompt_request.h"
#include "contracts/result_events.h"

namespace fleet::cmd {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

void write_line(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// One line of JSON: the record as is when it already is one line, else re-serialized.
std::string one_line(const std::string& value) {
  if (value.find('\n') == std::string::npos) return value;
  try {
    return nlohmann::json::parse(value).dump();
  } catch (const nlohmann::json::exception&) {
    std::string s = value;
    for (auto& ch : s)
      if (ch == '\n' || ch == '\r') ch = ' ';
    return s;
  }
}

// The prompts and results topics exist before we follow/produce (the stage workers create the
// same topics with the same settings; creating them here lets a submit precede the workers).
void ensure_client_topics(const DeploymentConfig& cfg) {
  bus::ensure_topics(cfg.kafka.brokers,
                     {{cfg.prompts_topic(), cfg.kafka.partitions, cfg.kafka.replication_factor},
                      {cfg.results_topic(), cfg.kafka.partitions, cfg.kafka.replication_factor}},
                     30000, cfg.kafka.properties);
}

struct SubmitOpts {
  std::string config, prompt, id;
  int max_tokens = 256, top_k = 0;
  double temperature = 1.0, top_p = 1.0;
  int64_t seed = -1;
  std::vector<std::string> stop;
  bool json = false;
  double timeout_s = 120;
};

int run_submit(const SubmitOpts& o) {
  DeploymentConfig cfg = load_config(o.config);

  PromptRequest req;
  req.id = o.id.empty() ? generate_request_id() : o.id;
  if (!is_valid_request_id(req.id)) {
    log::logf(log::Level::Error, "fleet submit: invalid --id '%s': 1 to 128 characters of [A-Za-z0-9._:-]",
              req.id.c_str());
    return 1;
  }
  req.prompt = o.prompt;
  req.max_tokens = o.max_tokens;
  req.temperature = o.temperature;
  req.top_p = o.top_p;
  req.top_k = o.top_k;
  if (o.seed >= 0) req.seed = static_cast<uint64_t>(o.seed);
  req.stop = o.stop;
  const std::string record = req.to_json().dump();
  // Checked against the same contract the workers apply, so a bad option fails here.
  PromptParseResult check = parse_prompt_record(record, req.id);
  if (!check.ok()) {
    log::logf(log::Level::Error, "fleet submit: invalid request (%s): %s", check.error->code.c_str(),
              check.error->message.c_str());
    return 1;
  }

  ensure_client_topics(cfg);
  // Follow the results first: everything produced after this returns is seen.
  auto results = bus::Consumer::from_end(cfg.kafka.brokers, cfg.results_topic(), cfg.kafka.properties);
  bus::Producer producer(cfg.kafka.brokers, cfg.kafka.properties);
  const auto t0 = Clock::now();
  producer.produce(cfg.prompts_topic(), req.id, record);
  producer.flush(10000);
  log::logf(log::Level::Info, "fleet submit: request %s -> %s (results on %s)", req.id.c_str(),
            cfg.prompts_topic().c_str(), cfg.results_topic().c_str());

  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.timeout_s));
  int next_index = 0;
  std::string streamed;  // text of the token events so far
  std::optional<double> first_token_ms;
  while (Clock::now() < deadline) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    auto m = results->poll(std::min(std::max(left, 1), 200));
    if (!m) continue;
    if (!m->key.empty() && m->key != req.id) continue;
    std::string why;
    auto ev = parse_result_event(m->value, &why);
    if (!ev) {
      if (m->key == req.id)
        log::logf(log::Level::Warn, "fleet submit: warning: unreadable result event at %s[%d]@%lld: %s",
                  m->topic.c_str(), m->partition, static_cast<long long>(m->offset), why.c_str());
      continue;
    }
    if (ev->id != req.id) continue;
    if (o.json) {
      if (ev->type == ResultEvent::Type::Token && ev->index < next_index) continue;  // redelivered
      write_line(one_line(m->value));
    }
    switch (ev->type) {
      case ResultEvent::Type::Token:
        if (ev->index < next_index) break;  // a duplicate (at-least-once delivery)
        if (ev->index > next_index)
          log::logf(log::Level::Warn, "fleet submit: warning: token %d arrived before token %d", ev->index, next_index);
        next_index = ev->index + 1;
        if (!first_token_ms) first_token_ms = ms_since(t0);
        streamed += ev->text;
        if (!o.json) {
          std::fwrite(ev->text.data(), 1, ev->text.size(), stdout);
          std::fflush(stdout);
        }
        break;
      case ResultEvent::Type::Done: {
        const double total_ms = ms_since(t0);
        if (!o.json) {
          // Text held back until the end (an unfinished stop-string prefix, the last bytes
          // of a character) is only in the done event.
          if (ev->text.size() > streamed.size() && ev->text.compare(0, streamed.size(), streamed) == 0)
            std::fputs(ev->text.c_str() + streamed.size(), stdout);
          std::fputc('\n', stdout);
          std::fflush(stdout);
        }
        const double client_decode_s = first_token_ms ? (total_ms - *first_token_ms) / 1000.0 : 0.0;
        const int n = ev->usage.completion_tokens;
        log::logf(log::Level::Info,
                  "fleet submit: done (%s) | prompt %d tokens | completion %d tokens | client: first token %.1f ms, "
                  "total %.1f ms, %.1f tokens/s | service timings %s", ev->finish_reason.c_str(),
                  ev->usage.prompt_tokens, n, first_token_ms.value_or(0.0), total_ms,
                  client_decode_s > 0 && n > 1 ? (n - 1) / client_decode_s : 0.0,
                  ev->timings.is_null() ? "{}" : ev->timings.dump().c_str());
        return 0;
      }
      case ResultEvent::Type::Error:
        if (!o.json) {
          // Text held back until the end (an unfinished stop-string prefix, the last bytes
          // of a character) is only in the done event.
          if (ev->text.size() > streamed.size() && ev->text.compare(0, streamed.size(), streamed) == 0)
            std::fputs(ev->text.c_str() + streamed.size(), stdout);
          std::fputc('\n', stdout);
          std::fflush(stdout);
        }
        log::logf(log::Level::Error, "fleet submit: request %s failed: %s: %s", req.id.c_str(), ev->error.code.c_str(),
                  ev->error.message.c_str());
        return 1;
    }
  }
  if (next_index > 0 && !o.json) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  log::logf(log::Level::Error,
            "fleet submit: timed out after %.0f s waiting for request %s on %s (%d token event(s) seen, no done or "
            "error event): are the stage workers of %s running?", o.timeout_s, req.id.c_str(),
            cfg.results_topic().c_str(), next_index, o.config.c_str());
  return 2;
}

struct TailOpts {
  std::string config, id;
  bool from_beginning = false;
  int64_t max_events = 0;
  double timeout_s = 0;
};

int run_tail(const TailOpts& o) {
  DeploymentConfig cfg = load_config(o.config);
  ensure_client_topics(cfg);
  auto results = o.from_beginning
                     ? bus::Consumer::from_beginning(cfg.kafka.brokers, cfg.results_topic(), cfg.kafka.properties)
                     : bus::Consumer::from_end(cfg.kafka.brokers, cfg.results_topic(), cfg.kafka.properties);
  std::signal(SIGINT, on_sigint);
  std::signal(SIGTERM, on_sigint);
  // Every partition is assigned by now: what is produced from here on will be printed.
  log::logf(log::Level::Info, "fleet tail: following %s from the %s", cfg.results_topic().c_str(),
            o.from_beginning ? "beginning" : "end");
  const auto t0 = Clock::now();
  int64_t printed = 0;
  while (!g_interrupted.load()) {
    if (o.max_events > 0 && printed >= o.max_events) break;
    if (o.timeout_s > 0 && ms_since(t0) >= o.timeout_s * 1000.0) {
      log::logf(log::Level::Error, "fleet tail: timed out after %.0f s with %lld of %lld event(s)", o.timeout_s,
                static_cast<long long>(printed), static_cast<long long>(o.max_events));
      return 2;
    }
    auto m = results->poll(200);
    if (!m) continue;
    if (!o.id.empty() && !m->key.empty() && m->key != o.id) continue;
    std::string why;
    auto ev = parse_result_event(m->value, &why);
    if (!ev) {
      log::logf(log::Level::Warn, "fleet tail: warning: %s[%d]@%lld is not a valid result event: %s", m->topic.c_str(),
                m->partition, static_cast<long long>(m->offset), why.c_str());
    }
    if (!o.id.empty() && (!ev || ev->id != o.id)) continue;
    write_line(one_line(m->value));
    ++printed;
  }
  return 0;
}

void exit_if_failed(int rc) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (rc != 0) std::exit(rc);
}

}  // namespace

void add_submit(CLI::App& app) {
  auto o = std::make_shared<SubmitOpts>();
  auto* c = app.add_subcommand("submit", "Send a prompt to a running deployment and stream its completion");
  c->add_option("--config", o->config, "deployment YAML (FLEET_KAFKA_BROKERS overrides kafka.brokers)")->required();
  c->add_option("--prompt", o->prompt, "prompt text")->required();
  c->add_option("--max-tokens", o->max_tokens, "tokens to generate")->check(CLI::NonNegativeNumber);
  c->add_option("--temperature", o->temperature, "0 for greedy")->check(CLI::NonNegativeNumber);
  c->add_option("--top-p", o->top_p)->check(CLI::Range(0.0, 1.0));
  c->add_option("--top-k", o->top_k, "0: no limit")->check(CLI::NonNegativeNumber);
  c->add_option("--seed", o->seed, "sampling seed (default: the service picks one)");
  c->add_option("--stop", o->stop, "stop string (repeatable)");
  c->add_option("--id", o->id, "request id (default: a random one)");
  c->add_flag("--json", o->json, "print each raw result event as a JSON line instead of the text");
  c->add_option("--timeout-s", o->timeout_s, "give up (exit 2) when no done/error event arrives by then")
      ->check(CLI::PositiveNumber);
  c->callback([o] { exit_if_failed(run_submit(*o)); });
}

void add_tail(CLI::App& app) {
  auto o = std::make_shared<TailOpts>();
  auto* c = app.add_subcommand("tail", "Follow the results topic: one JSON line per event");
  c->add_option("--config", o->config, "deployment YAML (FLEET_KAFKA_BROKERS overrides kafka.brokers)")->required();
  c->add_flag("--from-beginning", o->from_beginning, "start at the oldest retained event instead of the end");
  c->add_option("--id", o->id, "only this request's events");
  c->add_option("--max-events", o->max_events, "stop after this many events (0: until interrupted)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--timeout-s", o->timeout_s, "give up (exit 2) after this long (0: never)")
      ->check(CLI::NonNegativeNumber);
  c->callback([o] { exit_if_failed(run_tail(*o)); });
}

}  // namespace fleet::cmd
