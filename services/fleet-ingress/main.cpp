// fleet-ingress --config FILE [--host H] [--port P]: the OpenAI-compatible HTTP server of a
// deployment (common/ingress/, docs/openai-api.md). Prints "fleet-ingress: listening on
// http://H:P" (a log line) once it serves; SIGINT / SIGTERM stop it.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "config/deployment_config.h"
#include "ingress/ingress_server.h"
#include "ingress/ingress_settings.h"
#include "log/log.h"
#include "util/shutdown_signals.h"

int main(int argc, char** argv) {
  CLI::App app{"fleet-ingress: OpenAI-compatible HTTP server in front of a fleet deployment"};
  std::string config_path, host;
  int port = -1;
  app.add_option("--config", config_path, "deployment YAML (its ingress: section configures this server)")->required();
  app.add_option("--host", host, "address to listen on (default: ingress.host, 0.0.0.0)");
  app.add_option("--port", port, "port to listen on (default: ingress.port, 8000; 0: any free port)")
      ->check(CLI::Range(0, 65535));
  CLI11_PARSE(app, argc, argv);

  fleet::log::setup({}, "fleet-ingress");
  auto log = [](const std::string& line) { fleet::log::logf(fleet::log::Level::Info, "%s", line.c_str()); };
  // Signals are taken by one thread, never by the HTTP or Kafka threads (created after it): the
  // first stops the server, within timeouts.shutdown_s; a second exits at once.
  std::atomic<fleet::ingress::IngressServer*> serving{nullptr};
  std::atomic<bool> stop_asked{false};
  fleet::ShutdownSignals signals(
      [&] {
        stop_asked = true;
        if (auto* server = serving.load()) server->stop();
      },
      log);
  std::signal(SIGPIPE, SIG_IGN);  // a write to a client that went away is an error, not an exit
  try {
    fleet::DeploymentConfig config = fleet::load_config(config_path);
    fleet::log::setup({config.log.level, config.log.format}, "fleet-ingress");
    signals.set_deadline(config.timeouts.shutdown_s);
    fleet::ingress::IngressSettings settings = fleet::ingress::load_ingress_settings(config_path);
    if (!host.empty()) settings.host = host;
    if (port >= 0) settings.port = port;
    fleet::ingress::IngressServer server(config, settings, log);
    const int bound = server.bind(settings.host, settings.port);
    serving = &server;
    if (stop_asked) return 0;  // a signal during start-up
    fleet::log::logf(fleet::log::Level::Info, "model %s, %d stage(s), %s; %d HTTP threads, at most %d in flight%s",
                 config.model.name.c_str(), config.stage_count(), config.endpoints_text().c_str(),
                 settings.http_threads(), settings.max_in_flight,
                 settings.api_keys.empty() ? "" : ", API keys required");
    fleet::log::logf(fleet::log::Level::Info, "listening on http://%s:%d", settings.host.c_str(), bound);
    fleet::ShutdownSignals::phase("serving HTTP");
    const bool ok = server.serve();
    fleet::ShutdownSignals::phase("closing the server");
    serving = nullptr;
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    fleet::log::logf(fleet::log::Level::Error, "%s", e.what());
    return 1;
  }
}
