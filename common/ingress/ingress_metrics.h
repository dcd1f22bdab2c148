#pragma once
// fleet-ingress's Prometheus metrics (GET /metrics on its own HTTP port; docs/metrics.md). Every
// series carries {service="ingress", model=...}; names start with fleet_http_ so that sums over
// the stage workers' fleet_requests_total, fleet_prompt_tokens_total, ... never count a request
// twice. Thread-safe: updates are relaxed atomics on children looked up once.
#include <chrono>
#include <string>

#include "metrics/metrics.h"

namespace fleet::ingress {

// Why the ingress refused a request before it reached the pipeline (fleet_http_rejected_total).
enum class RejectReason { Auth, RateLimit, Unavailable, BadRequest };
const char* reject_reason_label(RejectReason r);  // auth, rate_limit, unavailable, bad_request

// The `endpoint` label of a path: the ingress's routes as they are ("/v1/models/{model}" for a
// model's page), "other" for anything else (unknown paths must not make new series).
std::string endpoint_label(const std::string& path);

class IngressMetrics {
 public:
  using Clock = std::chrono::steady_clock;
  explicit IngressMetrics(const std::string& model);
  IngressMetrics(const IngressMetrics&) = delete;
  IngressMetrics& operator=(const IngressMetrics&) = delete;

  metrics::MetricsRegistry& registry() { return registry_; }

  // One HTTP response written (any path; httplib's logger): fleet_http_requests_total.
  void response(const std::string& path, int status);
  void rejected(RejectReason reason);
  // A completion request that ended (answered, streamed to its end, failed or abandoned):
  // arrived: when its handler started; first_token: when its first token event came (if any);
  // usage: the done event's, when one came.
  void completion_ended(Clock::time_point arrived, const Clock::time_point* first_token, int prompt_tokens,
                        int completion_tokens);
  void client_disconnected() { disconnects_.inc(); }
  metrics::Gauge& streams_active() { return streams_active_; }

 private:
  metrics::MetricsRegistry registry_;
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Counter>& rejected_;
  metrics::Gauge& streams_active_;
  metrics::Histogram& ttft_;
  metrics::Histogram& duration_;
  metrics::Counter& completion_tokens_;
  metrics::Counter& prompt_tokens_;
  metrics::Counter& disconnects_;
};

}  // namespace fleet::ingress
