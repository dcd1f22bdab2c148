#include "ingress/completion_service.h"

#include <algorithm>
#include <ctime>

namespace fleet::ingress {

std::string new_ingress_request_id() { return "oai-" + generate_request_id(); }

Call::Call(CompletionService& service, const ApiRequest& request, std::string id, std::string response_id,
           int choice_index, bool ends_stream, std::shared_ptr<ResultChannel> channel,
           std::chrono::steady_clock::time_point deadline)
    : service_(service),
      id_(std::move(id)),
      channel_(std::move(channel)),
      response_(request,
                response_id.empty() ? (request.endpoint == Endpoint::ChatCompletions ? "chatcmpl-" : "cmpl-") + id_
                                    : std::move(response_id),
                static_cast<int64_t>(std::time(nullptr)), choice_index, ends_stream),
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

std::unique_ptr<Call> CompletionService::start(const ApiRequest& request, const std::string& response_id,
                                               int choice_index, bool ends_stream) {
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
  return std::make_unique<Call>(*this, r, r.prompt.id, response_id, choice_index, ends_stream, std::move(channel),
                                deadline);
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

Choices::Choices(CompletionService& service, const ApiRequest& request) {
  const int n = std::max(1, request.n);
  for (int i = 0; i < n; ++i) {
    ApiRequest r = request;
    if (r.prompt.seed) r.prompt.seed = *r.prompt.seed + static_cast<uint64_t>(i);
    calls_.push_back(service.start(r, i == 0 ? "" : calls_.front()->response().id(), i, n == 1));
  }
  began_.assign(calls_.size(), false);
}

bool Choices::pump(std::chrono::milliseconds wait) {
  bool any = false;
  const auto slice = std::max(std::chrono::milliseconds(1), wait / static_cast<int>(calls_.size()));
  for (size_t i = 0; i < calls_.size(); ++i) {
    if (calls_[i]->response().finished()) continue;
    if (calls_[i]->pump(any ? std::chrono::milliseconds(0) : slice)) any = began_[i] = true;
  }
  return any;
}

bool Choices::finished() const {
  if (error()) return true;
  return std::all_of(calls_.begin(), calls_.end(), [](const auto& c) { return c->response().finished(); });
}

bool Choices::every_choice_began() const {
  for (size_t i = 0; i < calls_.size(); ++i)
    if (!began_[i] && !calls_[i]->response().finished()) return false;
  return true;
}

const ContractError* Choices::error() const {
  for (const auto& c : calls_)
    if (c->response().error()) return &*c->response().error();
  return nullptr;
}

void Choices::cancel() {
  for (auto& c : calls_) c->cancel();
}

nlohmann::json Choices::completion_body() const {
  nlohmann::json body = calls_.front()->response().completion_body();
  for (size_t i = 1; i < calls_.size(); ++i)
    body["choices"].push_back(calls_[i]->response().completion_body()["choices"][0]);
  body["usage"] = usage_json(prompt_tokens(), completion_tokens());
  return body;
}

std::string Choices::take_stream_text() {
  std::string out;
  for (auto& c : calls_) out += c->response().take_stream_text();
  if (calls_.size() == 1 || ended_) return out;  // one choice ends its own stream
  if (const ContractError* e = error()) {
    cancel();
    ended_ = true;
    return out + calls_.front()->response().stream_error(*e);
  }
  if (finished()) {
    ended_ = true;
    out += calls_.front()->response().stream_end(usage_json(prompt_tokens(), completion_tokens()));
  }
  return out;
}

std::optional<std::chrono::steady_clock::time_point> Choices::first_token_at() const {
  std::optional<std::chrono::steady_clock::time_point> first;
  for (const auto& c : calls_)
    if (c->first_token_at() && (!first || *c->first_token_at() < *first)) first = c->first_token_at();
  return first;
}

int Choices::prompt_tokens() const {  // the prompt once, as OpenAI counts it
  const auto& done = calls_.front()->response().done();
  return done ? done->usage.prompt_tokens : 0;
}

int Choices::completion_tokens() const {
  int sum = 0;
  for (const auto& c : calls_)
    if (c->response().done()) sum += c->response().done()->usage.completion_tokens;
  return sum;
}

}  // namespace fleet::ingress
