#pragma once
// Progress bars on stderr for long jobs: model conversion, synthesis, loading.
//
//   Progress p("synth llama-1b.gguf", total_bytes);
//   for (...) { ...; p.advance(n); }   // from any thread
//   p.done();                          // the final line, at 100%, then a newline
//
//   synth llama-1b.gguf   42%  480.0/1143.2 MiB  56.7 MiB/s  ETA 12s
//
// One line, redrawn in place with '\r' at most ~10 times a second (the first advance draws 0%,
// done() draws 100% and ends the line). Drawn only when stderr is a terminal and FLEET_PROGRESS
// is not "0"; FLEET_PROGRESS=1 draws even when stderr is not a terminal (tests, a log file).
// When quiet, nothing at all is written. One bar at a time per process: a bar whose first
// draw comes while another is on screen stays quiet (loads of several stages in one process).
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace fleet {

// Whether a Progress made now would draw: FLEET_PROGRESS "0" no, "1" yes, otherwise (unset or
// another value) whether stderr is a terminal.
bool progress_enabled();

class Progress {
 public:
  enum class Unit { Bytes, Items };

  // total: the bytes (or items) the job will advance by; 0 if it is added piecewise with
  // add_total() before the first advance().
  Progress(std::string label, uint64_t total, Unit unit = Unit::Bytes);
  // Ends a drawn line that done() did not (an exception): a newline, no claim of 100%.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add_total(uint64_t n) { total_.fetch_add(n, std::memory_order_relaxed); }
  // Thread-safe; never blocks on drawing (a thread that finds another drawing skips).
  void advance(uint64_t n);
  // The job finished: draws the last line (what was counted, so 100% when the total was
  // right) and a newline. Idempotent.
  void done();

  bool enabled() const { return enabled_; }
  uint64_t current() const { return current_.load(std::memory_order_relaxed); }
  uint64_t total() const { return total_.load(std::memory_order_relaxed); }

  // The line as drawn (without '\r' or padding), for `current` after `elapsed_s` seconds.
  static std::string format(const std::string& label, uint64_t current, uint64_t total, Unit unit,
                            double elapsed_s, bool finished);

 private:
  void draw(bool final);  // holds mu_

  const std::string label_;
  const Unit unit_;
  const bool enabled_;
  std::atomic<uint64_t> total_;
  std::atomic<uint64_t> current_{0};
  std::atomic<int64_t> next_draw_ns_{0};  // steady clock; 0 = nothing drawn yet
  std::atomic<bool> finished_{false};
  std::mutex mu_;
  const std::chrono::steady_clock::time_point start_;
  bool owner_ = false;   // holds the screen (first draw claimed it)
  bool silent_ = false;  // another bar held the screen at our first draw
  size_t last_len_ = 0;  // of the line last drawn, to blank what a shorter one leaves
};

// Bytes of a tensor of `shape` with `elem` bytes per element.
inline uint64_t shape_bytes(const std::vector<int64_t>& shape, uint64_t elem) {
  for (int64_t d : shape) elem *= static_cast<uint64_t>(d);
  return elem;
}

// Writer callbacks that advance a Progress by the bytes they produce (the spec types live in
// model/: safetensors TensorSpec, GGUF GgufTensorSpec; templates keep util/ free of them).
//
// Specs whose fill(out) fills a byte vector: each fill advances p by out.size(); bytes(spec)
// (the size the fill will produce) is added to p's total.
template <class Spec, class Bytes>
void track_fills(Progress& p, std::vector<Spec>& specs, Bytes bytes) {
  for (Spec& s : specs) {
    p.add_total(bytes(s));
    s.fill = [&p, f = std::move(s.fill)](auto& out) {
      f(out);
      p.advance(out.size());
    };
  }
}

// A spec whose write(put) streams its nbytes() bytes to put(data, n): each piece advances p;
// nbytes() is added to p's total.
template <class Spec>
Spec track_writes(Progress& p, Spec s) {
  p.add_total(s.nbytes());
  s.write = [&p, f = std::move(s.write)](const auto& put) {
    f([&p, &put](const void* data, size_t n) {
      put(data, n);
      p.advance(n);
    });
  };
  return s;
}

}  // namespace fleet
