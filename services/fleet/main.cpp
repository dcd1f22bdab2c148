// fleet: command-line entry point. Subcommands are thin wrappers over common/.
#include <exception>

#include "commands.h"
#include "log/log.h"

int main(int argc, char** argv) {
  CLI::App app{"fleet: pipeline-parallel LLM serving over Kafka"};
  app.require_subcommand(1);
  fleet::cmd::add_generate(app);
  fleet::cmd::add_convert(app);
  fleet::cmd::add_synth(app);
  fleet::cmd::add_tokenize(app);
  fleet::cmd::add_submit(app);
  fleet::cmd::add_tail(app);
  fleet::cmd::add_detect(app);
  fleet::cmd::add_status(app);
  fleet::cmd::add_plan(app);
  fleet::cmd::add_manifest(app);
  try {  // diagnostics on stderr as plain lines (FLEET_LOG_FORMAT=json: JSON lines), results on stdout
    fleet::log::setup({}, "fleet", fleet::log::Style::Cli);
  } catch (const std::invalid_argument& e) {
    fleet::log::setup({}, "fleet", fleet::log::Style::Cli, nullptr, false);
    fleet::log::logf(fleet::log::Level::Error, "fleet: error: %s", e.what());
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fleet::log::logf(fleet::log::Level::Error, "fleet: error: %s", e.what());
    return 1;
  }
  return 0;
}
