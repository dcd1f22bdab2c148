#pragma once
// The ingress's side of the public topics: a request goes out on <prefix>.prompts (key = its
// id) after its result channel is open, its events come back through the ResultRouter, and a
// client that goes away cancels it on <prefix>.control ({"id", "cancel": true}, as `fleet`
// and the tests do; contracts/control_request.h). Thread-safe.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bus/producer.h"
#include "config/deployment_config.h"
#include "ingress/openai_request.h"
#include "ingress/openai_response.h"
#include "ingress/result_router.h"

namespace fleet::ingress {

// One request in flight: its id, its events, what has been answered so far. Closing its result
// channel (and cancelling it when it did not finish) happens when the Call is destroyed.
class Call {
 public:
  Call(class CompletionService& service, const ApiRequest& request, std::string id, std::string response_id,
       int choice_index, bool ends_stream, std::shared_ptr<ResultChannel> channel,
       std::chrono::steady_clock::time_point deadline);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  const std::string& id() const { return id_; }
  ResponseAssembler& response() { return response_; }
  // Takes the events that arrive within `wait` into response(); false when none came.
  bool pump(std::chrono::milliseconds wait);
  bool shutting_down() const { return channel_->closed(); }  // the router stopped
  bool past_deadline() const { return std::chrono::steady_clock::now() > deadline_; }
  // Ends the request now (client gone, deadline): a cancel record, unless it finished.
  void cancel();
  // When pump() first took a token event (empty before).
  const std::optional<std::chrono::steady_clock::time_point>& first_token_at() const { return first_token_at_; }

 private:
  CompletionService& service_;
  std::string id_;
  std::shared_ptr<ResultChannel> channel_;
  ResponseAssembler response_;
  std::chrono::steady_clock::time_point deadline_;
  std::optional<std::chrono::steady_clock::time_point> first_token_at_;
  bool cancelled_ = false;
};

class CompletionService {
 public:
  // The deployment's topics; `log` gets one line per notable event.
  CompletionService(const DeploymentConfig& config, bus::Producer& producer, ResultRouter& router,
                    std::function<void(const std::string&)> log);

  // Opens the request's channel, then produces its prompt record. Throws bus::BusError when the
  // record cannot be queued. response_id ("": from the request's own id), choice_index and
  // ends_stream: see ResponseAssembler.
  std::unique_ptr<Call> start(const ApiRequest& request, const std::string& response_id = "", int choice_index = 0,
                              bool ends_stream = true);
  void cancel(const std::string& id);
  void closed(const std::string& id) { router_.close(id); }
  void log(const std::string& line) const { log_(line); }

  uint64_t started() const { return started_.load(); }
  uint64_t cancelled() const { return cancelled_.load(); }

 private:
  const DeploymentConfig& config_;
  bus::Producer& producer_;
  ResultRouter& router_;
  std::function<void(const std::string&)> log_;
  std::atomic<uint64_t> started_{0}, cancelled_{0};
};

// The n choices of one API request, answered as one response: n requests on the prompts topic
// (request i with seed + i when a seed was given; the service picks each one's seed otherwise),
// one response id (the first request's), choice i from request i. With n = 1 it is one Call.
class Choices {
 public:
  Choices(CompletionService& service, const ApiRequest& request);  // starts them; throws as start()
  // Takes the events that arrive within `wait` (shared among the calls); false when none came.
  bool pump(std::chrono::milliseconds wait);
  bool finished() const;           // every choice ended (or one failed)
  bool every_choice_began() const;  // every call has taken an event (a stream can start)
  const ContractError* error() const;  // the first error of any choice
  bool shutting_down() const { return calls_.front()->shutting_down(); }
  bool past_deadline() const { return calls_.front()->past_deadline(); }
  void cancel();
  const std::string& id() const { return calls_.front()->id(); }
  // The response body (every choice, usage summed) once finished() without error().
  nlohmann::json completion_body() const;
  // The SSE text of every choice since the last call; after the last one ended, the usage
  // chunk (summed) and "data: [DONE]"; after an error, its error chunk and "data: [DONE]".
  std::string take_stream_text();
  // For the metrics: the first token of any choice, and the usage summed.
  std::optional<std::chrono::steady_clock::time_point> first_token_at() const;
  int prompt_tokens() const;
  int completion_tokens() const;

 private:
  std::vector<std::unique_ptr<Call>> calls_;
  std::vector<bool> began_;
  bool ended_ = false;  // the stream's end was written
};

// "oai-" + 32 hex characters: a prompts-topic id that names the ingress as its source.
std::string new_ingress_request_id();

}  // namespace fleet::ingress
