#include "stage/stage_metrics.h"

#include <chrono>

#include "stage/stage_processor.h"
#include "util/process_memory.h"

namespace fleet {

using metrics::exponential_buckets;
using metrics::latency_buckets;

namespace {
double start_time_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

StageMetrics::StageMetrics(metrics::Labels const_labels)
    : registry(std::move(const_labels)),
      requests(registry.counter("fleet_requests_total",
                                "Requests that ended on this worker, by outcome: the finish reason (stop, length, "
                                "cancelled) or error",
                                {"outcome"})),
      admitted(registry.counter("fleet_requests_admitted_total", "Prompts accepted by this stage-0 worker").get()),
      prompt_tokens(registry.counter("fleet_prompt_tokens_total", "Prompt tokens of the requests admitted here").get()),
      generated_tokens(
          registry.counter("fleet_generated_tokens_total", "Tokens sampled and published by this last-stage worker")
              .get()),
      time_to_first_token(registry
                              .histogram("fleet_time_to_first_token_seconds",
                                         "From the prompt's admission at stage 0 to its first token at the last stage",
                                         latency_buckets())
                              .get()),
      time_per_output_token(registry
                                .histogram("fleet_time_per_output_token_seconds",
                                           "Between consecutive tokens of a request at the last stage",
                                           latency_buckets())
                                .get()),
      grammar_mask(registry
                       .histogram("fleet_grammar_mask_seconds",
                                  "Masking one row of logits with its request's response_format grammar, at the last stage",
                                  exponential_buckets(1e-5, 4, 10))
                       .get()),
      hop_latency(registry
                      .histogram("fleet_hop_latency_seconds",
                                 "From the sender's produce (the activation's sent_us) to this worker holding the "
                                 "whole step",
                                 latency_buckets())
                      .get()),
      batch_tokens(registry
                       .histogram("fleet_batch_tokens", "Rows (tokens) per batched forward pass",
                                  exponential_buckets(1, 2, 12))
                       .get()),
      batch_steps(registry
                      .histogram("fleet_batch_steps", "Steps (requests) per batched forward pass",
                                 exponential_buckets(1, 2, 10))
                      .get()),
      forward_seconds(registry
                          .histogram("fleet_forward_seconds", "Duration of one batched forward over the stage's layers",
                                     latency_buckets())
                          .get()),
      errors(registry.counter("fleet_errors_total", "Error events this worker published, by error code", {"code"})),
      dead_letters(registry.counter("fleet_dead_letter_records_total",
                                    "Records this worker sent to the dead-letter topic, by error code", {"code"})),
      consumer_lag(registry.gauge("fleet_consumer_lag_records",
                                  "Records in this worker's assigned partitions not read yet, by topic", {"topic"})),
      admission_paused(
          registry.gauge("fleet_admission_paused", "1 while stage 0 stops reading prompts (kv.max_requests or budget)")
              .get()),
      fenced_partitions(registry
                            .counter("fleet_fenced_partitions_total",
                                     "Input partitions this last-stage worker found taken over only when the brokers "
                                     "refused its writes (it was a zombie: paused, or its assignment lost)")
                            .get()),
      requests_redriven(registry
                            .counter("fleet_requests_redriven_total",
                                     "Requests this stage-0 worker asked to step again after timeouts.stall_s "
                                     "without progress (their step was lost)")
                            .get()),
      recovery_seconds(registry.histogram(
          "fleet_recovery_seconds",
          "From the moment a stage found a request's KV cache short (or stage 0 found it stalled) to: kv_rebuilt, "
          "this stage's cache rebuilt by the replay; next_token (last stage), the request's next token published",
          metrics::latency_buckets(), {"phase"})),
      info(registry.gauge("fleet_worker_info", "Always 1: the worker's identity", {"worker_id", "layers", "kernel"})) {
  for (const char* outcome : {"stop", "length", "cancelled", "tool_calls", "error"}) requests.labels({outcome});  // 0 from the start
}

void StageMetrics::request_failed(const std::string& code) {
  errors.labels({code}).inc();
  request_ended("error");
}

void StageMetrics::watch(std::function<StageStats()> stats, double kv_budget_bytes) {
  auto read = [stats](auto field) { return [stats, field] { return static_cast<double>(stats().*field); }; };
  registry.gauge_fn("fleet_kv_cache_bytes", "Bytes held by this worker's KV caches", read(&StageStats::kv_bytes));
  registry.gauge_fn("fleet_kv_cache_budget_bytes", "kv.budget_bytes: past it the least recently used caches go",
                    [kv_budget_bytes] { return kv_budget_bytes; });
  registry.gauge_fn("fleet_kv_cache_requests", "Requests with a KV cache here (stage 0: or admitted)",
                    read(&StageStats::requests));
  registry.counter_fn("fleet_kv_cache_evictions_total", "KV caches dropped to stay within the budget",
                      read(&StageStats::evictions));
  registry.counter_fn("fleet_replays_total", "Replays this stage needed (it lacked the KV cache for a step)",
                      read(&StageStats::replay_requests));
  registry.counter_fn("fleet_replayed_tokens_total", "Rows of replay steps computed here",
                      read(&StageStats::replayed_rows));
  registry.counter_fn("fleet_batches_total", "Batched forward passes", read(&StageStats::batches));
  registry.counter_fn("fleet_takeovers_total", "Last stage: requests rebuilt from Redis with tokens already out",
                      read(&StageStats::takeovers));
  registry.counter_fn("fleet_republished_events_total",
                      "Last stage: result events found missing after a takeover and published again",
                      read(&StageStats::republished));
  registry.gauge_fn("process_resident_memory_bytes", "Resident memory size in bytes",
                    [] { return static_cast<double>(resident_bytes()); });
  registry.gauge_fn("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds",
                    [t = start_time_s()] { return t; });
}

}  // namespace fleet
