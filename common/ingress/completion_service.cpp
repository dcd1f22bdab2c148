#include "ingress/completion_service.h"

#include <ctime>

namespace fleet::ingress {

std::string new_ingress_request_id() { return "oai-" + generate_request_id(); }

Call::Call(CompletionService& service, const ApiRequest& request, std::string id,
           std::shared_ptr<ResultChannel> channel, std::chrono::steady_clock::time_point deadline)
    : service_(service),
      id_(std::move(id)),
      channel_(std::move(channel)),
      response_(request, (request.endpoint == Endpoint::ChatCompletions ? "chatcmpl-" : "cmpl-") + id_,
                static_cast<int64_t>(std::time(nullptr))),
      deadline_(deadline) {}

Call::~Call() {
  if (!response_.finished()) cancel();
  service_.closed(id_);
}

bool Call::pump(std::chrono::milliseconds wait) {
  std::deque<ResultEvent> events = channel_->wait(wait);
  for (ResultEvent& ev : events) response_.take(ev);
  if (!first_token_at_ && response_.tokens_taken() > 0) first_token_at_ = std::chrono::steady_clock::now();
  return !events.empty();
}

void Call::cancel() {
  if (cancelled_ || response_.finished()) return;
  cancelled_ = true;
  service_.cancel(id_);
}

CompletionService::CompletionService(const DeploymentConfig& config, bus::Producer& producer, ResultRouter& router,
                                     std::function<void(const std::string&)> log)
    : config_(config), producer_(producer), router_(router), log_(std::move(log)) {}

std::unique_ptr<Call> CompletionService::start(const ApiRequest& request) {
  ApiRequest r = request;
  r.prompt.id = new_ingress_request_id();
  const double timeout_s = r.prompt.timeout_s.value_or(config_.timeouts.request_s);
  // The pipeline ends the request with a timeout error after timeout_s; the ingress waits a
  // little longer for that event before it gives up itself.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(timeout_s + 30.0));
  std::shared_ptr<ResultChannel> channel = router_.open(r.prompt.id);  // before the prompt: no event is missed
  try {
    producer_.produce(config_.prompts_topic(), r.prompt.id, r.prompt.to_json().dump());
  } catch (...) {
    router_.close(r.prompt.id);
    throw;
  }
  ++started_;
  return std::make_unique<Call>(*this, r, r.prompt.id, std::move(channel), deadline);
}

void CompletionService::cancel(const std::string& id) {
  try {
    producer_.produce(config_.control_topic(), id, nlohmann::json({{"id", id}, {"cancel", true}}).dump());
    ++cancelled_;
    log_("request " + id + ": cancelled (the client went away or its deadline passed)");
  } catch (const std::exception& e) {
    log_("request " + id + ": cannot send its cancel: " + e.what());
  }
}

}  // namespace fleet::ingress
