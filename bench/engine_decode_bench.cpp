// Decode speed of the engine against this machine's memory bandwidth, measured in one run.
//
//   build/bench/fleet_bench_engine --model DIR [--weights auto|f32|bf16|q8_0] [--batch N] [--steps N]
//
// Batch-1 decode must read every weight once per token, so its ceiling is
// bandwidth / weight bytes tokens per second. The benchmark measures the bandwidth (a
// multi-threaded streaming read of a buffer larger than the caches), then the time per decode
// step, and prints the achieved weight-read rate as a fraction of the measured bandwidth.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine/stage_engine.h"

using namespace fleet;
using Clock = std::chrono::steady_clock;

namespace {

// GB/s of reading `bytes` with `threads` threads; best of `reps`.
double read_bandwidth(size_t bytes, int threads, int reps) {
  std::vector<uint64_t> buf(bytes / 8);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = i;  // touch every page
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        size_t b = buf.size() * static_cast<size_t>(t) / static_cast<size_t>(threads);
        size_t e = buf.size() * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = b; i + 4 <= e; i += 4) {
          s0 += buf[i];
          s1 += buf[i + 1];
          s2 += buf[i + 2];
          s3 += buf[i + 3];
        }
        sums[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
      });
    for (auto& t : ts) t.join();
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (sums[0] == 42) std::printf(" ");  // keep the sums alive
    best = std::max(best, static_cast<double>(bytes) / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, weights = "auto";
  int batch = 1, steps = 16, threads = static_cast<int>(std::thread::hardware_concurrency());
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--model") model = argv[i + 1];
    else if (a == "--weights") weights = argv[i + 1];
    else if (a == "--batch") batch = std::stoi(argv[i + 1]);
    else if (a == "--steps") steps = std::stoi(argv[i + 1]);
    else if (a == "--threads") threads = std::stoi(argv[i + 1]);
  }
  if (model.empty()) {
    std::fprintf(stderr, "usage: %s --model DIR [--weights auto|f32|bf16|q8_0] [--batch N] [--steps N] [--threads N]\n", argv[0]);
    return 2;
  }
  const double bw = read_bandwidth(size_t{1} << 30, threads, 3);
  LoadOptions lo;
  lo.weight_dtype = weights;
  auto w = std::make_shared<StageWeights>(load_stage_weights(open_model(model), lo));
  StageEngine engine(w, threads);
  const ModelConfig& c = engine.config();
  std::vector<std::unique_ptr<KVCache>> caches;
  for (int b = 0; b < batch; ++b) caches.push_back(engine.new_cache(steps + 8));
  std::vector<float> hidden(static_cast<size_t>(batch) * c.dim), logits(static_cast<size_t>(batch) * c.vocab_size);
  std::vector<int64_t> rows(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b) rows[static_cast<size_t>(b)] = b;
  std::vector<double> times;
  for (int s = 0; s < steps + 2; ++s) {  // two warm-up steps fault the weights in
    std::vector<int32_t> ids(static_cast<size_t>(batch), 1 + s);
    std::vector<SeqChunk> chunks;
    for (int b = 0; b < batch; ++b) chunks.push_back({caches[static_cast<size_t>(b)].get(), s, 1});
    auto t0 = Clock::now();
    engine.embed(ids, hidden.data());
    engine.forward_layers(chunks, hidden.data());
    engine.head(hidden.data(), rows, logits.data());
    if (s >= 2) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  // Bytes read per step: every layer matrix and the head (the embedding: one row per token).
  const double bytes = static_cast<double>(w->bytes() - w->embedding.bytes());
  const double achieved = bytes / median / 1e9;
  std::printf("model %s, weights %s (%.0f MiB read per step), %d threads, batch %d\n", model.c_str(),
              dtype_name(w->layers[0].wq.dtype), bytes / (1 << 20), threads, batch);
  std::printf("memory bandwidth (read, %d threads): %.1f GB/s\n", threads, bw);
  std::printf("decode step: median %.2f ms -> %.1f tokens/s per sequence, %.1f tokens/s total\n", median * 1e3,
              1.0 / median, batch / median);
  std::printf("weight read rate %.1f GB/s = %.2f of the measured bandwidth\n", achieved, achieved / bw);
  return 0;
}
