#pragma once
// fleet-ingress: an OpenAI-compatible HTTP server (cpp-httplib) in front of a deployment.
//
//   GET  /health                ready (200) only when every stage has a live worker, else 503
//   GET  /v1/models             the deployment's model
//   GET  /v1/fleet              live workers, their layers and load (membership in Redis)
//   GET  /metrics               Prometheus text format (ingress_metrics.h; no API key, as /health)
//   POST /v1/completions        prompt -> text (stream: server-sent events)
//   POST /v1/chat/completions   messages -> text (stage 0 renders them with the chat template)
//
// Errors are OpenAI's JSON ({"error": {"message", "type", "param", "code"}}): 400 bad request,
// 401 bad key, 404 unknown model or path, 413 body too large, 429 at ingress.max_in_flight,
// 503 when a stage has no live worker, 504 when the pipeline does not answer in time, 500.
// Each request holds one HTTP thread while it runs (a stream included); the pool has
// ingress.threads of them. A streaming client that disconnects gets its request cancelled.
// Protocol details and choices: docs/openai-api.md.
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "config/deployment_config.h"
#include "contracts/prompt_request.h"
#include "ingress/ingress_settings.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace fleet::bus {
class Producer;
}

namespace fleet::ingress {

class ResultRouter;
class CompletionService;
class FleetView;
class IngressMetrics;
struct ApiError;
enum class Endpoint;

class IngressServer {
 public:
  IngressServer(DeploymentConfig config, IngressSettings settings, std::function<void(const std::string&)> log);
  ~IngressServer();
  IngressServer(const IngressServer&) = delete;
  IngressServer& operator=(const IngressServer&) = delete;

  // Creates the deployment's client topics if missing, follows the results topic from its end,
  // binds host:port (port 0: a free one). Returns the bound port; throws on failure.
  int bind(const std::string& host, int port);
  // Serves until stop(); returns false when listening failed.
  bool serve();
  void stop();  // from any thread (a signal handler's thread)

 private:
  void add_routes();
  bool authorized(const httplib::Request& req, httplib::Response& res) const;
  void handle_completion(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void reply_error(httplib::Response& res, const ApiError& error) const;

  DeploymentConfig config_;
  IngressSettings settings_;
  std::function<void(const std::string&)> log_;
  PromptLimits limits_;
  std::unique_ptr<httplib::Server> http_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<ResultRouter> router_;
  std::unique_ptr<CompletionService> service_;
  std::unique_ptr<FleetView> fleet_;
  std::atomic<int> in_flight_{0};
  std::unique_ptr<IngressMetrics> metrics_;  // its in-flight gauge reads in_flight_
  std::atomic<bool> stopping_{false};
};

}  // namespace fleet::ingress
