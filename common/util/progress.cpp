#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace fleet {

namespace {

constexpr int64_t kRedrawNs = 100'000'000;  // at most ~10 redraws a second
constexpr size_t kMaxLabel = 40;

std::atomic<const Progress*> g_screen{nullptr};  // the bar on screen, if any

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void write_stderr(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stderr);
  std::fflush(stderr);
}

std::string printf_string(const char* fmt, double a, double b = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

// "12.3" in the unit `div` stands for (MiB or GiB), one or two decimals.
std::string amount(uint64_t v, double div, int decimals) {
  return printf_string(decimals == 1 ? "%.1f" : "%.2f", static_cast<double>(v) / div);
}

std::string bytes_rate(double per_s) {
  constexpr double MiB = 1024.0 * 1024.0, GiB = MiB * 1024.0;
  if (per_s >= GiB) return printf_string("%.2f GiB/s", per_s / GiB);
  return printf_string("%.1f MiB/s", per_s / MiB);
}

std::string duration(double s) {
  const long t = std::lround(std::max(0.0, s));
  if (t < 60) return std::to_string(t) + "s";
  if (t < 3600) return printf_string("%.0fm%02.0fs", static_cast<double>(t / 60), static_cast<double>(t % 60));
  return printf_string("%.0fh%02.0fm", static_cast<double>(t / 3600), static_cast<double>(t % 3600 / 60));
}

}  // namespace

bool progress_enabled() {
  const char* e = std::getenv("FLEET_PROGRESS");
  if (e && std::strcmp(e, "0") == 0) return false;
  if (e && std::strcmp(e, "1") == 0) return true;
  return isatty(STDERR_FILENO) == 1;
}

Progress::Progress(std::string label, uint64_t total, Unit unit)
    : label_(std::move(label)),
      unit_(unit),
      enabled_(progress_enabled()),
      total_(total),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!owner_ || finished_.load()) return;
  draw(false);  // where it stopped (an exception), then end the line: no claim of 100%
  write_stderr("\n");
  g_screen.store(nullptr);
}

std::string Progress::format(const std::string& label, uint64_t current, uint64_t total, Unit unit, double elapsed_s,
                             bool finished) {
  std::string line = label;
  if (line.size() > kMaxLabel) {  // "synth .../models/llama-1b.gguf": the first word, then the tail
    const size_t sp = line.find(' ');
    const std::string head = sp < 12 ? line.substr(0, sp + 1) : "";
    line = head + "..." + line.substr(line.size() - (kMaxLabel - head.size() - 3));
  }
  const double frac = total > 0 ? std::min(1.0, static_cast<double>(current) / static_cast<double>(total))
                                : (finished ? 1.0 : 0.0);
  line += printf_string("  %3.0f%%", std::floor(frac * 100.0));
  if (unit == Unit::Bytes) {
    constexpr double MiB = 1024.0 * 1024.0, GiB = MiB * 1024.0;
    const bool gib = total >= static_cast<uint64_t>(GiB);
    const double div = gib ? GiB : MiB;
    const int dec = gib ? 2 : 1;
    line += "  " + amount(current, div, dec) + "/" + amount(total, div, dec) + (gib ? " GiB" : " MiB");
  } else {
    line += "  " + std::to_string(current) + "/" + std::to_string(total);
  }
  if (elapsed_s >= 0.2 && current > 0) {
    const double rate = static_cast<double>(current) / elapsed_s;
    line += "  " + (unit == Unit::Bytes ? bytes_rate(rate) : printf_string("%.1f/s", rate));
    if (!finished && current < total) line += "  ETA " + duration(static_cast<double>(total - current) / rate);
  }
  if (finished) line += "  in " + (elapsed_s < 10 ? printf_string("%.1fs", elapsed_s) : duration(elapsed_s));
  return line;
}

void Progress::advance(uint64_t n) {
  const int64_t next = next_draw_ns_.load(std::memory_order_relaxed);
  if (!enabled_ || finished_.load(std::memory_order_relaxed) || (next != 0 && now_ns() < next)) {
    current_.fetch_add(n, std::memory_order_relaxed);  // counted when quiet too
    return;
  }
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) {  // another thread is drawing
    current_.fetch_add(n, std::memory_order_relaxed);
    return;
  }
  if (next_draw_ns_.load() == 0) draw(false);  // the first draw shows where the job starts (0%)
  current_.fetch_add(n, std::memory_order_relaxed);
  if (now_ns() >= next_draw_ns_.load()) draw(false);
}

void Progress::done() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_.exchange(true)) return;
  draw(true);
  if (owner_) g_screen.store(nullptr);
  owner_ = false;
}

void Progress::draw(bool final) {
  next_draw_ns_.store(now_ns() + kRedrawNs);
  if (silent_) return;
  if (!owner_) {
    const Progress* none = nullptr;
    if (!g_screen.compare_exchange_strong(none, this)) {
      silent_ = true;
      return;
    }
    owner_ = true;
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string line = format(label_, current_.load(), total_.load(), unit_, elapsed, final);
  std::string out = "\r" + line;
  if (line.size() < last_len_) out.append(last_len_ - line.size(), ' ');
  last_len_ = line.size();
  if (final) out += "\n";
  write_stderr(out);
}

}  // namespace fleet
