#pragma once
// GET /metrics over HTTP (cpp-httplib) for a MetricsRegistry.
//
//   MetricsServer server(registry, "0.0.0.0", 0);   // a stage worker: port 0 = a free one
//   register_somewhere(server.port());
//
// or, on a server that already exists (the ingress):
//
//   serve_metrics(http_server, registry);            // adds GET /metrics
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "metrics/metrics.h"

namespace httplib {
class Server;
}

namespace fleet::metrics {

// Adds GET `path` to `server`, answering registry.expose() (the registry must outlive it).
void serve_metrics(httplib::Server& server, const MetricsRegistry& registry, const std::string& path = "/metrics");

// A small HTTP server of its own (2 threads) serving GET /metrics, from construction to destruction.
class MetricsServer {
 public:
  // Binds host:port (0: a free port chosen by the system) and starts serving; throws
  // std::runtime_error naming the address when it cannot bind.
  MetricsServer(const MetricsRegistry& registry, const std::string& host, int port);
  ~MetricsServer();  // stops serving and joins the thread
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }  // the bound port

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;  // the serving thread returned
};

}  // namespace fleet::metrics
