#pragma once
// Bounded shutdown for a service's main (fleet-stage, fleet-ingress).
//
//   fleet::ShutdownSignals signals([&] { stop = true; }, log);  // early in main (one per process)
//   signals.set_deadline(config.timeouts.shutdown_s);
//   ... run until stop; each step of the graceful exit says what it does:
//   fleet::ShutdownSignals::phase("committing offsets");
//
// SIGINT and SIGTERM are caught by a handler that only wakes a thread of this class; threads
// started after the constructor have them blocked, so their system calls are not interrupted.
// The first signal calls on_stop (a graceful exit begins) and arms the deadline: if the process
// still runs `deadline` seconds later (the broker or Redis does not answer, say), the log gets one
// line naming the phase it was in, and the process exits with status 2 at once (_exit: nothing
// more that could block). A second SIGINT or SIGTERM exits the same way without waiting.
#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace fleet {

class ShutdownSignals {
 public:
  using Log = std::function<void(const std::string&)>;
  ShutdownSignals(std::function<void()> on_stop, Log log, double deadline_s = 10);
  ~ShutdownSignals();
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

  void set_deadline(double seconds);
  // What the process is doing now (a static string), named if the deadline passes.
  static void phase(const char* what);
  static const char* current_phase();

 private:
  void wait_for_signals();
  std::function<void()> on_stop_;
  Log log_;
  std::atomic<double> deadline_s_;
  std::atomic<bool> closing_{false};
  std::thread thread_;
};

}  // namespace fleet
