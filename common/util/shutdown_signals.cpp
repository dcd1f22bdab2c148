#include "util/shutdown_signals.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace fleet {

namespace {

std::atomic<const char*> g_phase{"starting"};
// The handler only writes the signal number into this pipe (async-signal-safe); the class's
// thread reads it. A handler, not a blocked mask with sigwait: threads started before main
// (OpenBLAS's pool) would otherwise take the signal and die of it.
int g_pipe[2] = {-1, -1};
constexpr char kWake = 0;  // written by the destructor: main ended

void on_signal(int sig) {
  const int saved = errno;
  const char c = static_cast<char>(sig);
  [[maybe_unused]] ssize_t n = write(g_pipe[1], &c, 1);
  errno = saved;
}

// One byte from the pipe, waiting at most timeout_ms (-1: for ever); -1 on timeout.
int next_byte(int timeout_ms) {
  for (;;) {
    pollfd p{g_pipe[0], POLLIN, 0};
    const int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;  // (the remaining time restarts: a bound, not a clock)
    if (r <= 0) return -1;
    char c = 0;
    if (read(g_pipe[0], &c, 1) == 1) return c;
  }
}

}  // namespace

void ShutdownSignals::phase(const char* what) { g_phase = what; }
const char* ShutdownSignals::current_phase() { return g_phase; }

ShutdownSignals::ShutdownSignals(std::function<void()> on_stop, Log log, double deadline_s)
    : on_stop_(std::move(on_stop)), log_(std::move(log)), deadline_s_(deadline_s) {
  if (pipe(g_pipe) != 0) throw std::runtime_error("shutdown signals: pipe failed");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // inherited by the threads started from here
  thread_ = std::thread([this, stop_signals] {
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);  // the handler runs here (or in older threads)
    wait_for_signals();
  });
}

ShutdownSignals::~ShutdownSignals() {
  closing_ = true;
  const char c = kWake;
  [[maybe_unused]] ssize_t n = write(g_pipe[1], &c, 1);
  thread_.join();
}

void ShutdownSignals::set_deadline(double seconds) { deadline_s_ = seconds; }

void ShutdownSignals::wait_for_signals() {
  const int sig = next_byte(-1);
  if (closing_ || sig == kWake) return;
  log_("signal " + std::to_string(sig) + ": stopping (at most " + std::to_string(static_cast<int>(std::ceil(deadline_s_))) +
       " s: timeouts.shutdown_s; a second signal exits at once)");
  on_stop_();
  const int again = next_byte(static_cast<int>(deadline_s_ * 1000));
  if (again == kWake) return;  // main ended within the deadline
  if (again < 0)
    log_(std::string("shutdown did not finish within timeouts.shutdown_s; abandoned while ") + current_phase() +
         "; exiting with status 2");
  else
    log_("signal " + std::to_string(again) + " again: exiting at once (abandoned while " + current_phase() +
         "), status 2");
  std::fflush(nullptr);
  _exit(2);
}

}  // namespace fleet
