#include "metrics/metrics_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <stdexcept>

namespace fleet::metrics {

void serve_metrics(httplib::Server& server, const MetricsRegistry& registry, const std::string& path) {
  server.Get(path, [&registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry.expose(), kExpositionContentType);
  });
}

MetricsServer::MetricsServer(const MetricsRegistry& registry, const std::string& host, int port)
    : server_(std::make_unique<httplib::Server>()) {
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };  // scrapes are rare and quick
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second worker on the same
  // port would bind too and the kernel would split the scrapes between the two.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  serve_metrics(*server_, registry);
  port_ = port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (port_ <= 0)
    throw std::runtime_error("metrics: cannot listen on " + host + ":" + std::to_string(port) +
                             " (address in use? set metrics.port to 0 for a free port)");
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    cv_.notify_all();
  });
}

MetricsServer::~MetricsServer() {
  // stop() does nothing before the thread is inside listen_after_bind(): repeat it until the
  // thread has returned from there.
  std::unique_lock<std::mutex> lock(mu_);
  while (!finished_) {
    server_->stop();
    cv_.wait_for(lock, std::chrono::milliseconds(10), [this] { return finished_; });
  }
  lock.unlock();
  thread_.join();
}

}  // namespace fleet::metrics
