// Progress bars (util/progress.h): what is drawn on stderr when forced (FLEET_PROGRESS=1) or on a
// terminal, that nothing is written when quiet, throttling, threads, one bar at a time, and the
// writer-callback helpers.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "util/progress.h"

namespace fleet {
namespace {

constexpr uint64_t MiB = 1024 * 1024;

// Runs fn with fd 2 redirected to a temporary file (not a terminal); returns what was written.
std::string capture_stderr(const std::function<void()>& fn) {
  std::fflush(stderr);
  FILE* tmp = std::tmpfile();
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(::fileno(tmp), STDERR_FILENO);
  fn();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string out;
  std::rewind(tmp);
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, tmp)) > 0;) out.append(buf, n);
  std::fclose(tmp);
  return out;
}

// The frames drawn: the text after each '\r'.
std::vector<std::string> frames(const std::string& out) {
  std::vector<std::string> f;
  size_t pos = 0;
  while ((pos = out.find('\r', pos)) != std::string::npos) {
    const size_t next = out.find('\r', pos + 1);
    f.push_back(out.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1));
    pos = pos + 1;
  }
  return f;
}

int percent_of(const std::string& frame) {
  std::smatch m;
  if (!std::regex_search(frame, m, std::regex(R"((\d+)%)"))) return -1;
  return std::stoi(m[1]);
}

class ProgressTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("FLEET_PROGRESS", "1", 1); }
  void TearDown() override { ::unsetenv("FLEET_PROGRESS"); }
};

TEST_F(ProgressTest, ForcedDrawsFromZeroToHundredPercentWithTotals) {
  const std::string out = capture_stderr([] {
    Progress p("synth test.gguf", 10 * MiB);
    for (int i = 0; i < 10; ++i) p.advance(MiB);
    p.done();
  });
  const auto f = frames(out);
  ASSERT_GE(f.size(), 2u) << out;
  EXPECT_EQ(out.front(), '\r');
  EXPECT_EQ(f.front().rfind("synth test.gguf    0%  0.0/10.0 MiB", 0), 0u) << f.front();
  EXPECT_NE(f.back().find("synth test.gguf  100%  10.0/10.0 MiB"), std::string::npos) << f.back();
  EXPECT_NE(f.back().find(" in "), std::string::npos) << f.back();
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  for (size_t i = 1; i < f.size(); ++i) EXPECT_LE(percent_of(f[i - 1]), percent_of(f[i])) << out;
}

TEST_F(ProgressTest, QuietWritesNothing) {
  auto job = [] {
    Progress p("quiet job", 100);
    p.advance(50);
    p.advance(50);
    EXPECT_EQ(p.current(), 100u);  // counted even when quiet
    p.done();
    Progress q("abandoned", 100);
    q.advance(1);  // destroyed without done()
  };
  ::setenv("FLEET_PROGRESS", "0", 1);
  EXPECT_FALSE(progress_enabled());
  EXPECT_EQ(capture_stderr(job), "");
  ::unsetenv("FLEET_PROGRESS");  // stderr is a file, not a terminal
  EXPECT_EQ(capture_stderr([] { EXPECT_FALSE(progress_enabled()); }), "");
  EXPECT_EQ(capture_stderr(job), "");
}

TEST_F(ProgressTest, TerminalDrawsUnlessDisabled) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(slave, 0);
  ::fcntl(master, F_SETFL, ::fcntl(master, F_GETFL) | O_NONBLOCK);
  auto on_terminal = [&](const char* env) {
    if (env) ::setenv("FLEET_PROGRESS", env, 1); else ::unsetenv("FLEET_PROGRESS");
    std::fflush(stderr);
    const int saved = ::dup(STDERR_FILENO);
    ::dup2(slave, STDERR_FILENO);
    {
      Progress p("tty job", 4, Progress::Unit::Items);
      for (int i = 0; i < 4; ++i) p.advance(1);
      p.done();
    }
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    return out;
  };
  const std::string drawn = on_terminal(nullptr);
  EXPECT_NE(drawn.find("tty job  100%  4/4"), std::string::npos) << drawn;
  EXPECT_EQ(on_terminal("0"), "");
  ::close(slave);
  ::close(master);
}

TEST_F(ProgressTest, RedrawsAreThrottled) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = capture_stderr([] {
    Progress p("busy", 40'000, Progress::Unit::Items);
    for (int i = 0; i < 40; ++i) {
      for (int k = 0; k < 1000; ++k) p.advance(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    p.done();
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto f = frames(out);
  EXPECT_GE(f.size(), 3u) << out;                                 // 0%, some in between, 100%
  EXPECT_LE(f.size(), static_cast<size_t>(s * 10) + 3) << out;  // not one per advance (40,000)
  EXPECT_NE(f.back().find("100%  40000/40000"), std::string::npos) << f.back();
}

TEST_F(ProgressTest, ThreadsAdvanceOneCounter) {
  const std::string out = capture_stderr([] {
    Progress p("threads", 80'000, Progress::Unit::Items);
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
      ts.emplace_back([&p] {
        for (int k = 0; k < 10'000; ++k) p.advance(1);
      });
    for (auto& t : ts) t.join();
    EXPECT_EQ(p.current(), 80'000u);
    p.done();
  });
  const auto f = frames(out);
  ASSERT_FALSE(f.empty());
  EXPECT_NE(f.back().find("threads  100%  80000/80000"), std::string::npos) << f.back();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

TEST_F(ProgressTest, OneBarAtATime) {
  const std::string out = capture_stderr([] {
    Progress a("first", 10, Progress::Unit::Items);
    a.advance(5);
    {
      Progress b("second", 10, Progress::Unit::Items);
      b.advance(10);
      b.done();
    }
    a.advance(5);
    a.done();
    Progress c("third", 1, Progress::Unit::Items);  // the screen is free again
    c.advance(1);
    c.done();
  });
  EXPECT_EQ(out.find("second"), std::string::npos) << out;
  EXPECT_NE(out.find("first  100%  10/10"), std::string::npos) << out;
  EXPECT_NE(out.find("third  100%  1/1"), std::string::npos) << out;
}

TEST_F(ProgressTest, AbandonedBarEndsItsLineWithoutClaimingCompletion) {
  const std::string out = capture_stderr([] {
    Progress p("failing", 100, Progress::Unit::Items);
    p.advance(10);
  });
  EXPECT_NE(out.find("failing   10%  10/100"), std::string::npos) << out;
  EXPECT_EQ(out.find("100%"), std::string::npos) << out;
  EXPECT_EQ(out.back(), '\n');
}

TEST(ProgressFormat, UnitsRateEtaAndLongLabels) {
  constexpr uint64_t GiB = 1024 * MiB;
  EXPECT_EQ(Progress::format("load m", 3 * GiB / 2, 3 * GiB, Progress::Unit::Bytes, 2.0, false),
            "load m   50%  1.50/3.00 GiB  768.0 MiB/s  ETA 2s");
  EXPECT_EQ(Progress::format("x", 3, 10, Progress::Unit::Items, 0.0, false), "x   30%  3/10");
  EXPECT_EQ(Progress::format("x", 10, 10, Progress::Unit::Items, 4.0, true), "x  100%  10/10  2.5/s  in 4.0s");
  EXPECT_EQ(Progress::format("x", MiB, 600 * MiB, Progress::Unit::Bytes, 1.0, false),
            "x    0%  1.0/600.0 MiB  1.0 MiB/s  ETA 9m59s");
  const std::string label = "synth /a/very/long/directory/name/for/the/models/llama-1b.gguf";
  const std::string line = Progress::format(label, 0, 1, Progress::Unit::Items, 0.0, false);
  EXPECT_EQ(line.rfind("synth ...", 0), 0u) << line;
  EXPECT_NE(line.find("models/llama-1b.gguf    0%"), std::string::npos) << line;
  EXPECT_LE(line.find(" 0%"), 44u) << line;
}

// Stand-ins for the model writers' spec types (safetensors TensorSpec, GGUF GgufTensorSpec).
struct FillSpec {
  std::vector<int64_t> shape;
  std::function<void(std::vector<uint8_t>&)> fill;
};
struct WriteSpec {
  uint64_t n = 0;
  std::function<void(const std::function<void(const void*, size_t)>&)> write;
  uint64_t nbytes() const { return n; }
};

TEST(ProgressHelpers, TrackFillsAndWritesCountTheBytesProduced) {
  ::setenv("FLEET_PROGRESS", "0", 1);
  Progress p("helpers", 0);
  std::vector<FillSpec> fills = {{{2, 3}, [](std::vector<uint8_t>& out) { out.assign(24, 1); }},
                                 {{5}, [](std::vector<uint8_t>& out) { out.assign(20, 2); }}};
  track_fills(p, fills, [](const FillSpec& s) { return shape_bytes(s.shape, 4); });
  EXPECT_EQ(p.total(), 44u);
  std::vector<uint8_t> buf;
  fills[0].fill(buf);
  EXPECT_EQ(buf, std::vector<uint8_t>(24, 1));  // the original fill still runs
  EXPECT_EQ(p.current(), 24u);
  fills[1].fill(buf);
  EXPECT_EQ(p.current(), 44u);

  size_t received = 0;
  WriteSpec w = track_writes(p, WriteSpec{100, [](const auto& put) {
                                            const char data[60] = {};
                                            put(data, 60);
                                            put(data, 40);
                                          }});
  EXPECT_EQ(p.total(), 144u);
  w.write([&](const void*, size_t n) { received += n; });
  EXPECT_EQ(received, 100u);
  EXPECT_EQ(p.current(), 144u);
  ::unsetenv("FLEET_PROGRESS");
}

}  // namespace
}  // namespace fleet
