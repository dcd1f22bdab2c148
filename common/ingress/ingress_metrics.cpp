#include "ingress/ingress_metrics.h"

namespace fleet::ingress {

const char* reject_reason_label(RejectReason r) {
  switch (r) {
    case RejectReason::Auth: return "auth";
    case RejectReason::RateLimit: return "rate_limit";
    case RejectReason::Unavailable: return "unavailable";
    case RejectReason::BadRequest: return "bad_request";
  }
  return "other";
}

std::string endpoint_label(const std::string& path) {
  for (const char* known : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/fleet", "/health", "/metrics"})
    if (path == known) return path;
  const std::string models = "/v1/models/";
  if (path.size() > models.size() && path.compare(0, models.size(), models) == 0) return "/v1/models/{model}";
  return "other";
}

IngressMetrics::IngressMetrics(const std::string& model)
    : registry_(metrics::Labels{{"service", "ingress"}, {"model", model}}),
      requests_(registry_.counter("fleet_http_requests_total", "HTTP responses of the ingress, by route and status code",
                                  {"endpoint", "status"})),
      rejected_(registry_.counter("fleet_http_rejected_total",
                                  "Requests refused before they reached the pipeline: auth (401), rate_limit (429), "
                                  "unavailable (503), bad_request (400, 404 model, 413)",
                                  {"reason"})),
      streams_active_(registry_.gauge("fleet_http_streams_active", "Server-sent-event streams open now").get()),
      ttft_(registry_
                .histogram("fleet_http_time_to_first_token_seconds",
                           "From a completion request's arrival to its first token event at the ingress",
                           metrics::latency_buckets())
                .get()),
      duration_(registry_
                    .histogram("fleet_http_request_duration_seconds",
                               "A completion request sent to the pipeline, from its arrival to its end (a stream: its last byte)",
                               metrics::latency_buckets())
                    .get()),
      completion_tokens_(
          registry_.counter("fleet_http_completion_tokens_total", "usage.completion_tokens of the completions answered")
              .get()),
      prompt_tokens_(
          registry_.counter("fleet_http_prompt_tokens_total", "usage.prompt_tokens of the completions answered").get()),
      disconnects_(registry_
                       .counter("fleet_http_client_disconnects_total",
                                "Streaming clients that went away before their response ended (the request is cancelled)")
                       .get()) {
  for (RejectReason r : {RejectReason::Auth, RejectReason::RateLimit, RejectReason::Unavailable, RejectReason::BadRequest})
    rejected_.labels({reject_reason_label(r)});  // every reason exposed from the start (as 0)
}

void IngressMetrics::response(const std::string& path, int status) {
  requests_.labels({endpoint_label(path), std::to_string(status)}).inc();
}

void IngressMetrics::rejected(RejectReason reason) { rejected_.labels({reject_reason_label(reason)}).inc(); }

void IngressMetrics::completion_ended(Clock::time_point arrived, const Clock::time_point* first_token,
                                      int prompt_tokens, int completion_tokens) {
  const auto now = Clock::now();
  duration_.observe(std::chrono::duration<double>(now - arrived).count());
  if (first_token) ttft_.observe(std::chrono::duration<double>(*first_token - arrived).count());
  prompt_tokens_.inc(prompt_tokens);
  completion_tokens_.inc(completion_tokens);
}

}  // namespace fleet::ingress
