#include "log/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace fleet::log {

namespace {

// The fields of the event being written: set by write() around the (synchronous) log call, on
// the calling thread, and read by the formatter on that same thread.
thread_local std::string_view t_worker, t_request;
std::string g_name;  // set by setup() before threads start
std::atomic<bool> g_set_up{false};
std::once_flag g_default_once;

// Code that logs without a main having called setup() (tests): the default settings (the
// environment's, if valid), on stderr.
void ensure_set_up() {
  if (g_set_up.load(std::memory_order_acquire)) return;
  std::call_once(g_default_once, [] {
    if (g_set_up.load()) return;
    try {
      setup(Settings{}, "");
    } catch (const std::invalid_argument&) {
      setup(Settings{}, "", Style::Service, nullptr, false);
    }
  });
}

spdlog::level::level_enum to_spdlog(Level l) {
  switch (l) {
    case Level::Trace: return spdlog::level::trace;
    case Level::Debug: return spdlog::level::debug;
    case Level::Info: return spdlog::level::info;
    case Level::Warn: return spdlog::level::warn;
    case Level::Error: return spdlog::level::err;
    case Level::Critical: return spdlog::level::critical;
    case Level::Off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::string_view worker_field() { return t_worker.empty() ? std::string_view(g_name) : t_worker; }

void append(spdlog::memory_buf_t& dest, std::string_view s) { dest.append(s.data(), s.data() + s.size()); }

void append_json_string(spdlog::memory_buf_t& dest, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  dest.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': append(dest, "\\\""); break;
      case '\\': append(dest, "\\\\"); break;
      case '\n': append(dest, "\\n"); break;
      case '\r': append(dest, "\\r"); break;
      case '\t': append(dest, "\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
          append(dest, std::string_view(esc, sizeof esc));
        } else {
          dest.push_back(ch);  // UTF-8 passes through
        }
    }
  }
  dest.push_back('"');
}

// %w: the worker, as is (text).
class WorkerFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    append(dest, worker_field());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<WorkerFlag>(); }
};

// %W: the worker as a JSON string; %Q: the request as a JSON string or null; %J: the message as a JSON string.
class JsonFlag : public spdlog::custom_flag_formatter {
 public:
  explicit JsonFlag(char what) : what_(what) {}
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    if (what_ == 'W') return append_json_string(dest, worker_field());
    if (what_ == 'Q') return t_request.empty() ? append(dest, "null") : append_json_string(dest, t_request);
    append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonFlag>(what_); }

 private:
  char what_;
};

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

}  // namespace

std::optional<Level> parse_level(std::string_view n) {
  if (n == "trace") return Level::Trace;
  if (n == "debug") return Level::Debug;
  if (n == "info") return Level::Info;
  if (n == "warn" || n == "warning") return Level::Warn;
  if (n == "error") return Level::Error;
  if (n == "critical") return Level::Critical;
  if (n == "off") return Level::Off;
  return std::nullopt;
}

std::optional<Format> parse_format(std::string_view n) {
  if (n == "text") return Format::Text;
  if (n == "json") return Format::Json;
  return std::nullopt;
}

void setup(const Settings& settings, const std::string& name, Style style, std::ostream* out, bool use_env) {
  std::string level_name = settings.level, format_name = settings.format, level_from = "log.level",
              format_from = "log.format";
  if (auto v = env("FLEET_LOG_LEVEL"); v && use_env) level_name = *v, level_from = "FLEET_LOG_LEVEL";
  if (auto v = env("FLEET_LOG_FORMAT"); v && use_env) format_name = *v, format_from = "FLEET_LOG_FORMAT";
  const std::optional<Level> level = parse_level(level_name);
  if (!level)
    throw std::invalid_argument(level_from + ": '" + level_name +
                                "' is not a log level (trace, debug, info, warn, error, critical, off)");
  const std::optional<Format> format = parse_format(format_name);
  if (!format) throw std::invalid_argument(format_from + ": '" + format_name + "' is not a log format (text, json)");

  g_name = name;
  spdlog::sink_ptr sink;
  if (out) sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out, true);
  else sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<WorkerFlag>('w').add_flag<JsonFlag>('W', 'W').add_flag<JsonFlag>('Q', 'Q');
  formatter->add_flag<JsonFlag>('J', 'J');
  if (*format == Format::Json)
    formatter->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","worker":%W,"request":%Q,"msg":%J})");
  else if (style == Style::Cli)
    formatter->set_pattern("%v");
  else
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l [%w] %v");
  sink->set_formatter(std::move(formatter));
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_level(to_spdlog(*level));
  logger->flush_on(spdlog::level::trace);  // a crash must not eat the last lines
  spdlog::set_default_logger(std::move(logger));
  g_set_up.store(true, std::memory_order_release);
}

void write(Level level, std::string_view worker, std::string_view request, std::string_view message) {
  ensure_set_up();
  const auto lvl = to_spdlog(level);
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(lvl)) return;
  t_worker = worker;
  t_request = request;
  logger->log(lvl, "{}", message);
  t_worker = {};
  t_request = {};
}

void logf(Level level, const char* fmt, ...) {
  if (!enabled(level)) return;
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  write(level, "", "", buf);
}

bool enabled(Level level) {
  ensure_set_up();
  return spdlog::default_logger_raw()->should_log(to_spdlog(level)); }

void flush() { spdlog::default_logger_raw()->flush(); }

}  // namespace fleet::log
