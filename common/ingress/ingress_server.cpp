#include "ingress/ingress_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>

#include "bus/admin.h"
#include "bus/consumer.h"
#include "bus/producer.h"
#include "ingress/api_error.h"
#include "ingress/completion_service.h"
#include "ingress/fleet_view.h"
#include "ingress/ingress_metrics.h"
#include "ingress/openai_request.h"
#include "ingress/result_router.h"
#include "metrics/metrics_server.h"

namespace fleet::ingress {

namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kWaitSlice{1000};
constexpr int kListenBacklog = 1024;  // a stream writes a keep-alive comment after this long idle

// Places among the ingress's in-flight requests (one per choice: n pipeline requests take n),
// given back when destroyed.
class InFlightSlot {
 public:
  InFlightSlot(std::atomic<int>& counter, int limit, int places = 1) : counter_(counter), places_(places) {
    taken_ = counter_.fetch_add(places_) + places_ <= limit;
    if (!taken_) counter_.fetch_sub(places_);
  }
  ~InFlightSlot() {
    if (taken_) counter_.fetch_sub(places_);
  }
  InFlightSlot(const InFlightSlot&) = delete;
  InFlightSlot& operator=(const InFlightSlot&) = delete;
  bool taken() const { return taken_; }

 private:
  std::atomic<int>& counter_;
  int places_;
  bool taken_ = false;
};

// Equal-time comparison of a presented key with a configured one.
bool same_key(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

// A completion request that went to the pipeline ended: its latencies and usage in the metrics.
void report_end(IngressMetrics& metrics, Clock::time_point arrived, const Choices& choices) {
  const auto first = choices.first_token_at();
  metrics.completion_ended(arrived, first ? &*first : nullptr, choices.prompt_tokens(), choices.completion_tokens());
}

// A completion request sent to the pipeline, held by its handler and then by its stream (the
// content provider's state between calls). Reported to the metrics once, when it ends.
struct CallState {
  CallState(IngressMetrics& m, Clock::time_point at, std::unique_ptr<InFlightSlot> s, std::unique_ptr<Choices> c)
      : metrics(m), arrived(at), slot(std::move(s)), call(std::move(c)) {}
  ~CallState() { end(); }
  CallState(const CallState&) = delete;
  CallState& operator=(const CallState&) = delete;
  void start_stream() {
    streaming = true;
    metrics.streams_active().inc();
  }
  // The response is over (written, failed or abandoned): report it, release the request.
  void end() {
    if (call) report_end(metrics, arrived, *call);
    call.reset();  // cancels the request unless it finished; closes its channel
    slot.reset();
    if (streaming) metrics.streams_active().dec();
    streaming = false;
  }
  IngressMetrics& metrics;
  Clock::time_point arrived;
  std::unique_ptr<InFlightSlot> slot;
  std::unique_ptr<Choices> call;  // the request's choices (one Call each)
  std::string pending;       // SSE text not written yet
  bool streaming = false;
  bool ended = false;        // the ingress ended the stream (done, timeout)
  bool client_gone = false;  // a write failed
};

}  // namespace

IngressServer::IngressServer(DeploymentConfig config, IngressSettings settings,
                             std::function<void(const std::string&)> log)
    : config_(std::move(config)), settings_(std::move(settings)), log_(std::move(log)) {
  limits_.max_record_bytes = std::max<size_t>(limits_.max_record_bytes, settings_.max_body_bytes);
  metrics_ = std::make_unique<IngressMetrics>(config_.model.name);
  metrics_->registry().gauge_fn("fleet_http_requests_in_flight",
                                "Completion requests held now (ingress.max_in_flight is the limit)",
                                [this] { return static_cast<double>(in_flight_.load()); });
}

IngressServer::~IngressServer() {
  stop();
  // Streams still open hold Calls that refer to the service: the HTTP server goes first.
  http_.reset();
  service_.reset();
  router_.reset();
}

int IngressServer::bind(const std::string& host, int port) {
  bus::ensure_topics(config_.kafka.brokers,
                     {{config_.prompts_topic(), config_.kafka.partitions, config_.kafka.replication_factor},
                      {config_.results_topic(), config_.kafka.partitions, config_.kafka.replication_factor},
                      {config_.control_topic(), config_.kafka.partitions, config_.kafka.replication_factor}},
                     30000, config_.kafka.properties);
  producer_ = std::make_unique<bus::Producer>(
      config_.kafka.brokers,
      bus::with(config_.kafka.properties, {{"message.max.bytes", std::to_string(config_.kafka.max_message_bytes)}}));
  router_ = std::make_unique<ResultRouter>(
      bus::Consumer::from_end(config_.kafka.brokers, config_.results_topic(), config_.kafka.properties), log_);
  service_ = std::make_unique<CompletionService>(config_, *producer_, *router_, log_);
  fleet_ = std::make_unique<FleetView>(config_.redis.url, config_.model.name, config_.stage_count(),
                                       std::chrono::milliseconds(static_cast<int64_t>(config_.timeouts.heartbeat_ttl_s * 1000)));

  http_ = std::make_unique<httplib::Server>();
  const size_t threads = static_cast<size_t>(settings_.http_threads());
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Bodies up to this size are read whole and answered with an OpenAI-shaped 413 when over
  // max_body_bytes: a server that answers before reading the body makes most clients fail
  // with a broken pipe instead of seeing the error. Beyond it httplib answers 413 itself.
  http_->set_payload_max_length(std::max<uint64_t>(settings_.max_body_bytes * 4, uint64_t{64} << 20));
  http_->set_tcp_nodelay(true);
  http_->set_keep_alive_max_count(1000);
  // Called once a response is written (after a stream's last byte), error pages included.
  http_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_->response(req.path, res.status);
  });
  // cpp-httplib 0.11.4 listens with a backlog of 5 (compiled into Debian's library): a burst of
  // clients would see dropped connections. The listening socket passes through the socket-options
  // callback before bind(); listen() again on it raises the backlog (Linux allows this).
  int listen_fd = -1;
  http_->set_socket_options([&listen_fd](int fd) {
    httplib::default_socket_options(fd);
    listen_fd = fd;
  });
  add_routes();
  const int bound = port == 0 ? http_->bind_to_any_port(host) : (http_->bind_to_port(host, port) ? port : -1);
  if (bound < 0) throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port));
  if (listen_fd >= 0 && ::listen(listen_fd, kListenBacklog) != 0)
    log_("cannot raise the listen backlog to " + std::to_string(kListenBacklog) + "; keeping httplib's 5");
  http_->set_socket_options(httplib::default_socket_options);  // only the listening socket is ours
  return bound;
}

bool IngressServer::serve() { return http_->listen_after_bind(); }

void IngressServer::stop() {
  if (stopping_.exchange(true)) return;
  if (router_) router_->stop();  // wakes every waiting handler
  if (http_) http_->stop();
}

void IngressServer::reply_error(httplib::Response& res, const ApiError& error) const {
  res.status = error.status;
  res.set_content(error.body(), "application/json");
}

bool IngressServer::authorized(const httplib::Request& req, httplib::Response& res) const {
  if (settings_.api_keys.empty()) return true;
  const std::string h = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (h.size() > prefix.size() && h.compare(0, prefix.size(), prefix) == 0) {
    const std::string key = h.substr(prefix.size());
    bool ok = false;
    for (const std::string& k : settings_.api_keys) ok |= same_key(key, k);
    if (ok) return true;
  }
  metrics_->rejected(RejectReason::Auth);
  reply_error(res, invalid_api_key());
  return false;
}

void IngressServer::add_routes() {
  httplib::Server& s = *http_;
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
        reply_error(res, for_status(res.status));
        return httplib::Server::HandlerResponse::Handled;
      }));
  s.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log_("internal error: " + what);
    reply_error(res, internal_error("internal error: " + what));
  });
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    FleetSnapshot snap = fleet_->snapshot();
    json live = json::array();
    for (int n : snap.live_per_stage) live.push_back(n);
    json body = {{"status", snap.ready() ? "ready" : "not_ready"}, {"model", config_.model.name},
                 {"live_workers_per_stage", live}};
    if (!snap.ready()) body["why"] = snap.why_not_ready();
    res.status = snap.ready() ? 200 : 503;
    res.set_content(body.dump(), "application/json");
  });
  metrics::serve_metrics(s, metrics_->registry());  // open, as /health: scrapers send no key
  s.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    json model = {{"id", config_.model.name}, {"object", "model"}, {"created", 0}, {"owned_by", "fleet"}};
    res.set_content(json({{"object", "list"}, {"data", json::array({model})}}).dump(), "application/json");
  });
  s.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    const std::string m = req.matches.size() > 1 ? req.matches[1].str() : "";
    if (m != config_.model.name) return reply_error(res, model_not_found(m));
    res.set_content(json({{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", "fleet"}}).dump(),
                    "application/json");
  });
  s.Get("/v1/fleet", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    json body = fleet_->snapshot().to_json(config_.model.name);
    body["ingress"] = {{"in_flight", in_flight_.load()},
                       {"max_in_flight", settings_.max_in_flight},
                       {"requests_started", service_->started()},
                       {"requests_cancelled", service_->cancelled()},
                       {"events_routed", router_->events_routed()}};
    res.set_content(body.dump(), "application/json");
  });
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(Endpoint::Completions, req, res);
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(Endpoint::ChatCompletions, req, res);
  });
}

void IngressServer::handle_completion(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  const Clock::time_point arrived = Clock::now();
  auto reject = [&](RejectReason why, const ApiError& error) {
    metrics_->rejected(why);
    reply_error(res, error);
  };
  if (!authorized(req, res)) return;
  if (req.body.size() > settings_.max_body_bytes) return reject(RejectReason::BadRequest, for_status(413));
  ApiParseOutcome parsed = parse_api_request(endpoint, req.body, config_.model.name, limits_);
  if (!parsed.ok()) return reject(RejectReason::BadRequest, *parsed.error);
  auto slot = std::make_unique<InFlightSlot>(in_flight_, settings_.max_in_flight, parsed.request->n);
  if (!slot->taken()) return reject(RejectReason::RateLimit, too_many_requests(settings_.max_in_flight));
  const FleetSnapshot fleet = fleet_->snapshot();
  if (!fleet.ready())
    return reject(RejectReason::Unavailable, no_live_worker("The model cannot serve now: " + fleet.why_not_ready()));

  // The prompts record must fit in one Kafka record (kafka.max_message_bytes): refused here with
  // the limit named, not a 500 from the producer (128 bytes: the id the service gives it, in the
  // value and as the key, and the record's own overhead).
  const size_t record_bytes = parsed.request->prompt.to_json().dump().size() + 128;
  if (record_bytes > config_.kafka.max_message_bytes) {
    const bool chat = parsed.request->endpoint == Endpoint::ChatCompletions;
    return reply_error(res, bad_request("The request is too large: as a prompts record it takes " + std::to_string(record_bytes) +
                                            " bytes, above this deployment's Kafka record limit of " +
                                            std::to_string(config_.kafka.max_message_bytes) +
                                            " bytes (kafka.max_message_bytes). Shorten the " +
                                            (chat ? "messages." : "prompt."),
                                        chat ? "messages" : "prompt", "request_too_large"));
  }
  std::unique_ptr<Choices> call;
  try {
    call = std::make_unique<Choices>(*service_, *parsed.request);
  } catch (const std::exception& e) {
    log_(std::string("cannot submit a request: ") + e.what());
    return reply_error(res, internal_error(std::string("cannot submit the request: ") + e.what()));
  }
  // The request from here on, however it ends: reported to the metrics when `st` goes (at the
  // end of this handler, or of the stream that holds it).
  auto st = std::make_shared<CallState>(*metrics_, arrived, std::move(slot), std::move(call));
  Choices& c = *st->call;
  // Until the first event (of every choice) nothing is sent, so an error before any output (a
  // prompt longer than the context, ...) gets its HTTP status, streamed or not.
  const bool stream = parsed.request->stream;
  while (stream ? !c.every_choice_began() && !c.error() : !c.finished()) {
    c.pump(kWaitSlice);
    if (c.shutting_down()) return reply_error(res, no_live_worker("The ingress is shutting down."));
    if (c.past_deadline()) {
      c.cancel();
      return reply_error(res, gateway_timeout("The pipeline did not answer request " + c.id() + " in time."));
    }
  }
  if (c.error()) return reply_error(res, from_pipeline_error(*c.error()));
  if (!stream) {
    res.set_content(c.completion_body().dump(-1, ' ', false, json::error_handler_t::replace),
                    "application/json");
    return;
  }

  st->start_stream();
  st->pending = c.take_stream_text();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st](size_t, httplib::DataSink& sink) {
        Choices& c = *st->call;
        for (;;) {
          if (!st->pending.empty()) {
            // A failed write: the client is gone. Returning false ends the response; the Call,
            // destroyed with it, cancels the request.
            if (!sink.write(st->pending.data(), st->pending.size())) {
              st->client_gone = true;
              return false;
            }
            st->pending.clear();
          }
          if (c.finished()) {
            st->ended = true;
            sink.done();
            return true;
          }
          if (c.shutting_down()) return false;
          if (c.past_deadline()) {
            c.cancel();
            const std::string e = "data: " + gateway_timeout("The pipeline did not finish in time.").body() +
                                  "\n\ndata: [DONE]\n\n";
            st->ended = true;
            sink.write(e.data(), e.size());
            sink.done();
            return true;
          }
          if (c.pump(kWaitSlice)) {
            st->pending = c.take_stream_text();
          } else {
            st->pending = ": keep-alive\n\n";  // an SSE comment; a write to a closed client fails
          }
        }
      },
      [st](bool success) {
        // Not written to its end, and not for the ingress's own reasons (shutdown): the client left.
        if (st->client_gone || (!success && !st->ended && st->call && !st->call->shutting_down())) st->metrics.client_disconnected();
        st->end();
      });
}

}  // namespace fleet::ingress
