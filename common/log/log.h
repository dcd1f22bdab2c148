#pragma once
// The fleet's logs, through spdlog: one line per event on stderr, with the worker (or service)
// and, where there is one, the request it concerns.
//
//   text (default):  2026-12-01T15:04:05.123Z info [s0-host-123-ab12] prompt r1 rejected: ...
//   json:            {"ts":"2026-12-01T15:04:05.123456Z","level":"info","worker":"s0-host-123-ab12",
//                     "request":"r1","msg":"prompt r1 rejected: ..."}   (one object per line)
//
// The level and format come from the deployment config (log.level, log.format) or the
// FLEET_LOG_LEVEL / FLEET_LOG_FORMAT environment variables, which win. Every main calls setup()
// once, before starting threads; afterwards spdlog::info(...) works too (worker = setup's name).
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace fleet::log {

enum class Level { Trace, Debug, Info, Warn, Error, Critical, Off };
enum class Format { Text, Json };
enum class Style {
  Service,  // timestamp, level and [name] before the message
  Cli,      // text: the message alone (a command-line tool's diagnostics); json as a service
};

struct Settings {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text or json
};

std::optional<Level> parse_level(std::string_view name);  // also "warning"
std::optional<Format> parse_format(std::string_view name);

// Installs the default logger (stderr, or `out` for tests): settings overridden by FLEET_LOG_LEVEL
// and FLEET_LOG_FORMAT when set and non-empty (use_env). `name` fills the worker field of lines
// that name none. Throws std::invalid_argument naming the variable or key of a bad level or
// format. Code that logs before any setup() (a test) gets the defaults on stderr.
void setup(const Settings& settings, const std::string& name, Style style = Style::Service,
           std::ostream* out = nullptr, bool use_env = true);

// One event. worker "" = setup's name; request "" = none (JSON: null).
void write(Level level, std::string_view worker, std::string_view request, std::string_view message);
// The same, printf-style, with setup's name and no request (command-line tools' diagnostics).
void logf(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
bool enabled(Level level);
// Writes what is buffered (tests; stderr is flushed per line anyway).
void flush();

}  // namespace fleet::log
