// fleet-ingress --config FILE [--host H] [--port P]: the OpenAI-compatible HTTP server of a
// deployment (common/ingress/, docs/openai-api.md). Prints "fleet-ingress: listening on
// http://H:P" (a log line) once it serves; SIGINT / SIGTERM stop it.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "config/deployment_config.h"
#include "ingress/ingress_server.h"
#include "ingress/ingress_settings.h"
#include "log/log.h"

int main(int argc, char** argv) {
  CLI::App app{"fleet-ingress: OpenAI-compatible HTTP server in front of a fleet deployment"};
  std::string config_path, host;
  int port = -1;
  app.add_option("--config", config_path, "deployment YAML (its ingress: section configures this server)")->required();
  app.add_option("--host", host, "address to listen on (default: ingress.host, 0.0.0.0)");
  app.add_option("--port", port, "port to listen on (default: ingress.port, 8000; 0: any free port)")
      ->check(CLI::Range(0, 65535));
  CLI11_PARSE(app, argc, argv);

  // Signals are taken by one thread (sigwait), never by the HTTP or Kafka threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a write to a client that went away is an error, not an exit

  fleet::log::setup({}, "fleet-ingress");
  auto log = [](const std::string& line) { fleet::log::logf(fleet::log::Level::Info, "%s", line.c_str()); };
  try {
    fleet::DeploymentConfig config = fleet::load_config(config_path);
    fleet::log::setup({config.log.level, config.log.format}, "fleet-ingress");
    fleet::ingress::IngressSettings settings = fleet::ingress::load_ingress_settings(config_path);
    if (!host.empty()) settings.host = host;
    if (port >= 0) settings.port = port;
    fleet::ingress::IngressServer server(config, settings, log);
    const int bound = server.bind(settings.host, settings.port);
    std::thread waiter([&] {
      int sig = 0;
      sigwait(&signals, &sig);
      log("signal " + std::to_string(sig) + ": stopping");
      server.stop();
    });
    fleet::log::logf(fleet::log::Level::Info, "model %s, %d stage(s), %s; %d HTTP threads, at most %d in flight%s",
                 config.model.name.c_str(), config.stage_count(), config.endpoints_text().c_str(),
                 settings.http_threads(), settings.max_in_flight,
                 settings.api_keys.empty() ? "" : ", API keys required");
    fleet::log::logf(fleet::log::Level::Info, "listening on http://%s:%d", settings.host.c_str(), bound);
    const bool ok = server.serve();
    if (waiter.joinable()) {
      pthread_kill(waiter.native_handle(), SIGTERM);  // ends its sigwait when serve() ended on its own
      waiter.join();
    }
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    fleet::log::logf(fleet::log::Level::Error, "%s", e.what());
    return 1;
  }
}
