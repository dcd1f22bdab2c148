// fleet: command-line entry point. Subcommands are thin wrappers over common/.
#include <cstdio>
#include <exception>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"fleet: pipeline-parallel LLM serving over Kafka"};
  app.require_subcommand(1);
  fleet::cmd::add_generate(app);
  fleet::cmd::add_convert(app);
  fleet::cmd::add_synth(app);
  fleet::cmd::add_tokenize(app);
  fleet::cmd::add_submit(app);
  fleet::cmd::add_tail(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fleet: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
