#pragma once
// Each `fleet` subcommand registers itself on the CLI11 app; see main.cpp.
#include <CLI/CLI.hpp>

namespace fleet::cmd {
void add_generate(CLI::App& app);
void add_convert(CLI::App& app);
void add_synth(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_submit(CLI::App& app);
void add_tail(CLI::App& app);
void add_detect(CLI::App& app);
void add_status(CLI::App& app);
void add_plan(CLI::App& app);
void add_manifest(CLI::App& app);
}  // namespace fleet::cmd
