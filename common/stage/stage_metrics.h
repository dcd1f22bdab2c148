#pragma once
// A stage worker's Prometheus metrics (docs/metrics.md lists them): what the parts of the
// worker count as requests flow, plus values read from StageStats when scraped. Owned by the
// StageContext; the worker serves `registry` at GET /metrics (metrics/metrics_server.h).
// Updating one is a relaxed atomic operation (see metrics/metrics.h).
#include <functional>
#include <string>

#include "metrics/metrics.h"

namespace fleet {

struct StageStats;

struct StageMetrics {
  // const_labels go on every series (the worker uses model and stage).
  explicit StageMetrics(metrics::Labels const_labels = {});
  StageMetrics(const StageMetrics&) = delete;
  StageMetrics& operator=(const StageMetrics&) = delete;

  metrics::MetricsRegistry registry;

  // A request ended here: outcome is its finish reason ("stop", "length", "cancelled", "tool_calls") or "error".
  void request_ended(const std::string& outcome) { requests.labels({outcome}).inc(); }
  // An error event published for a request (code as in the event): errors by code, and one
  // request ended with outcome "error".
  void request_failed(const std::string& code);
  // Values read from the processor's stats when scraped, and the process's own.
  void watch(std::function<StageStats()> stats, double kv_budget_bytes);

  metrics::Family<metrics::Counter>& requests;            // fleet_requests_total{outcome}
  metrics::Counter& admitted;                              // fleet_requests_admitted_total (stage 0)
  metrics::Counter& prompt_tokens;                         // fleet_prompt_tokens_total (stage 0)
  metrics::Counter& generated_tokens;                      // fleet_generated_tokens_total (last stage)
  metrics::Histogram& time_to_first_token;                 // fleet_time_to_first_token_seconds
  metrics::Histogram& time_per_output_token;               // fleet_time_per_output_token_seconds
  metrics::Histogram& grammar_mask;                        // fleet_grammar_mask_seconds (last stage)
  metrics::Histogram& hop_latency;                         // fleet_hop_latency_seconds
  metrics::Histogram& batch_tokens;                        // fleet_batch_tokens
  metrics::Histogram& batch_steps;                         // fleet_batch_steps
  metrics::Histogram& forward_seconds;                     // fleet_forward_seconds
  metrics::Family<metrics::Counter>& errors;               // fleet_errors_total{code}
  metrics::Family<metrics::Counter>& dead_letters;         // fleet_dead_letter_records_total{code}
  metrics::Family<metrics::Gauge>& consumer_lag;           // fleet_consumer_lag_records{topic}
  metrics::Gauge& admission_paused;                        // fleet_admission_paused (stage 0)
  metrics::Counter& fenced_partitions;                     // fleet_fenced_partitions_total (last stage)
  metrics::Counter& requests_redriven;                     // fleet_requests_redriven_total (stage 0)
  metrics::Family<metrics::Histogram>& recovery_seconds;   // fleet_recovery_seconds{phase}
  metrics::Family<metrics::Gauge>& info;                   // fleet_worker_info{worker_id,layers,kernel}
};

}  // namespace fleet
