// fleet_bus group rebalances against the real broker of bus_test (linked into that binary,
// sharing its stack): RebalanceListener calls, cooperative-sticky moves, commit from
// on_revoked and close(), takeover after SIGKILL.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bus/admin.h"
#include "bus/consumer.h"
#include "bus/producer.h"
#include "support/stack_env.h"

namespace fleet::bus {
namespace {

using fleet::test::kafka_brokers;
using fleet::test::unique_name;
using Clock = std::chrono::steady_clock;
using Parts = std::set<TopicPartition>;

constexpr auto kRebalanceDeadline = std::chrono::seconds(60);

Parts all_of(const std::string& topic, int partitions) {
  Parts out;
  for (int p = 0; p < partitions; ++p) out.insert({topic, p});
  return out;
}

std::string text(const Parts& parts) {
  std::string out;
  for (const auto& tp : parts) out += (out.empty() ? "" : ",") + std::to_string(tp.partition);
  return "{" + out + "}";
}

// Records every call; owned is what the calls say this member owns now.
struct Recorder : RebalanceListener {
  std::vector<std::vector<TopicPartition>> assigned_calls;
  std::vector<std::pair<std::vector<TopicPartition>, bool>> revoked_calls;
  Parts owned;
  Parts revoked;  // union of all revoked
  std::size_t complete_at = 0;         // owned.size() at which complete_time is taken
  Clock::time_point complete_time{};   // when an on_assigned first made owned.size() == complete_at
  Consumer* consumer = nullptr;        // set: on_revoked commits processed[] of the removed partitions
  std::map<TopicPartition, Message> processed;  // the last message processed per partition
  std::map<TopicPartition, int64_t> committed_in_revoke;

  void on_assigned(const std::vector<TopicPartition>& added) override {
    assigned_calls.push_back(added);
    for (const auto& tp : added) {
      if (!owned.insert(tp).second) ADD_FAILURE() << "partition " << tp.partition << " assigned twice";
    }
    if (complete_at && owned.size() == complete_at && complete_time == Clock::time_point{}) {
      complete_time = Clock::now();
    }
  }
  void on_revoked(const std::vector<TopicPartition>& removed, bool lost) override {
    revoked_calls.emplace_back(removed, lost);
    std::vector<Message> done;
    for (const auto& tp : removed) {
      if (!owned.erase(tp)) ADD_FAILURE() << "partition " << tp.partition << " revoked but not owned";
      revoked.insert(tp);
      auto it = processed.find(tp);
      if (it != processed.end()) {
        done.push_back(it->second);
        processed.erase(it);
      }
    }
    if (consumer && !lost && !done.empty()) {
      consumer->commit(done);  // synchronous, from inside the rebalance callback
      for (const auto& m : done) committed_in_revoke[{m.topic, m.partition}] = m.offset + 1;
    }
  }
};

Parts assignment_of(const Consumer& c) {
  auto a = c.assignment();
  return {a.begin(), a.end()};
}

// Polls the consumers (discarding messages, which these tests do not produce unless
// noted) until done() or the deadline.
template <typename Done>
bool poll_until(const std::vector<Consumer*>& consumers, Done done, std::chrono::milliseconds limit = kRebalanceDeadline,
                std::vector<Message>* got = nullptr) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    for (Consumer* c : consumers) {
      auto batch = c->poll_batch(256, 50);
      if (got) got->insert(got->end(), batch.begin(), batch.end());
    }
  }
  return true;
}

bool split_settled(const Parts& all, const Parts& a, const Parts& b) {
  Parts u = a;
  u.insert(b.begin(), b.end());
  return !a.empty() && !b.empty() && u == all && a.size() + b.size() == all.size();
}

TEST(BusRebalance, SingleMemberIsAssignedEveryPartitionOnce) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("rb-single");
  ensure_topics(brokers, {{topic, 4}});
  Recorder l;
  Consumer c(brokers, unique_name("g-rb-single"), {topic}, {}, &l);
  const Parts all = all_of(topic, 4);
  ASSERT_TRUE(poll_until({&c}, [&] { return l.owned == all; })) << "owned " << text(l.owned);
  ASSERT_EQ(l.assigned_calls.size(), 1u);
  EXPECT_EQ(l.assigned_calls[0], std::vector<TopicPartition>(all.begin(), all.end()));
  EXPECT_TRUE(l.revoked_calls.empty());
  EXPECT_EQ(assignment_of(c), all);
  c.close();
  ASSERT_EQ(l.revoked_calls.size(), 1u) << "close() must revoke through the listener";
  EXPECT_EQ(Parts(l.revoked_calls[0].first.begin(), l.revoked_calls[0].first.end()), all);
  EXPECT_FALSE(l.revoked_calls[0].second) << "a clean close() is not a loss";
}

TEST(BusRebalance, SecondMemberTakesOnlyTheMovedPartitions) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("rb-join");
  const int partitions = 6;
  ensure_topics(brokers, {{topic, partitions}});
  const std::string group = unique_name("g-rb-join");
  const Parts all = all_of(topic, partitions);
  Recorder l1, l2;
  Consumer c1(brokers, group, {topic}, {}, &l1);
  ASSERT_TRUE(poll_until({&c1}, [&] { return l1.owned == all; })) << "c1 owned " << text(l1.owned);

  Consumer c2(brokers, group, {topic}, {}, &l2);
  ASSERT_TRUE(poll_until({&c1, &c2}, [&] {
    return split_settled(all, l1.owned, l2.owned) && assignment_of(c1) == l1.owned && assignment_of(c2) == l2.owned;
  })) << "never split: c1 " << text(l1.owned) << " c2 " << text(l2.owned);

  // Cooperative: c1 gave up exactly what c2 got, and nothing else; it was never emptied.
  EXPECT_EQ(l1.revoked, l2.owned) << "c1 revoked " << text(l1.revoked);
  EXPECT_LT(l1.revoked.size(), all.size());
  for (const auto& [removed, lost] : l1.revoked_calls) EXPECT_FALSE(lost);
  EXPECT_EQ(l1.assigned_calls.size(), 1u) << "c1 should keep its partitions, not get them back";
  EXPECT_TRUE(l2.revoked_calls.empty());
  std::printf("[          ] c1 kept %s, c2 took %s\n", text(l1.owned).c_str(), text(l2.owned).c_str());
}

TEST(BusRebalance, OnRevokedAndCloseCommitWhatWasProcessed) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("rb-commit");
  const int partitions = 4, n = 200;
  ensure_topics(brokers, {{topic, partitions}});
  const std::string group = unique_name("g-rb-commit");
  const Parts all = all_of(topic, partitions);
  Producer p(brokers);
  for (int i = 0; i < n; ++i) p.produce(topic, "key-" + std::to_string(i % 31), std::to_string(i));
  p.flush(30000);

  Recorder l1, l2;
  Consumer c1(brokers, group, {topic}, {}, &l1);
  l1.consumer = &c1;
  std::vector<Message> got1;
  ASSERT_TRUE(poll_until({&c1}, [&] { return got1.size() >= static_cast<std::size_t>(n); }, kRebalanceDeadline, &got1));
  ASSERT_EQ(got1.size(), static_cast<std::size_t>(n));
  for (const auto& m : got1) l1.processed[{m.topic, m.partition}] = m;  // processed, not committed
  for (const auto& tp : all) EXPECT_EQ(c1.committed(tp), -1);

  Consumer c2(brokers, group, {topic}, {}, &l2);
  std::vector<Message> got2;
  ASSERT_TRUE(poll_until({&c1, &c2}, [&] { return split_settled(all, l1.owned, l2.owned); }, kRebalanceDeadline, &got2))
      << "never split: c1 " << text(l1.owned) << " c2 " << text(l2.owned);
  // What moved was committed by c1's on_revoked before c2 started reading it.
  EXPECT_EQ(l1.revoked, l2.owned);
  for (const auto& tp : l2.owned) {
    ASSERT_TRUE(l1.committed_in_revoke.count(tp)) << "partition " << tp.partition << " moved uncommitted";
    EXPECT_EQ(c2.committed(tp), l1.committed_in_revoke[tp]) << "partition " << tp.partition;
  }
  // close() revokes the rest through the listener, which commits it too.
  const Parts kept = l1.owned;
  c1.close();
  EXPECT_TRUE(l1.owned.empty());
  for (const auto& tp : kept) {
    ASSERT_TRUE(l1.committed_in_revoke.count(tp)) << "partition " << tp.partition << " not committed at close()";
    EXPECT_EQ(c2.committed(tp), l1.committed_in_revoke[tp]) << "partition " << tp.partition;
  }
  // c2 ends up with everything and, everything being committed, reads nothing again.
  ASSERT_TRUE(poll_until({&c2}, [&] { return l2.owned == all; }, kRebalanceDeadline, &got2)) << "c2 owned " << text(l2.owned);
  poll_until({&c2}, [] { return false; }, std::chrono::milliseconds(1000), &got2);  // 1 s of polling
  EXPECT_TRUE(got2.empty()) << got2.size() << " committed message(s) delivered again, first at partition "
                            << got2.front().partition << " offset " << got2.front().offset;
}

// Polls each member for limit (or until done()), recording what it receives as processed
// by its listener (which commits it when the partition is revoked).
template <typename Done>
bool pump(const std::vector<std::pair<Consumer*, Recorder*>>& members, std::chrono::milliseconds limit, Done done) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    for (auto [c, l] : members) {
      for (auto& m : c->poll_batch(256, 20)) l->processed[{m.topic, m.partition}] = m;
    }
  }
  return true;
}

TEST(BusRebalance, CloseDuringARebalanceLeavesCleanly) {
  // librdkafka 2.0.2 mishandles close() during a cooperative rebalance (a hang, a commit
  // refused with UNKNOWN_MEMBER_ID, or an abort in the sticky assignor); Consumer::close()
  // works around it. Members are closed at several points of a rebalance, alternately the
  // one joining and the one that owned everything.
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("rb-close");
  const int partitions = 4;
  ensure_topics(brokers, {{topic, partitions}});
  const std::string group = unique_name("g-rb-close");
  const Parts all = all_of(topic, partitions);
  Producer p(brokers);
  for (int i = 0; i < 400; ++i) p.produce(topic, "key-" + std::to_string(i % 31), std::to_string(i));
  p.flush(30000);

  auto l_old = std::make_unique<Recorder>();
  auto c_old = std::make_unique<Consumer>(brokers, group, std::vector<std::string>{topic}, Config{}, l_old.get());
  l_old->consumer = c_old.get();
  ASSERT_TRUE(pump({{c_old.get(), l_old.get()}}, kRebalanceDeadline, [&] { return l_old->owned == all; }));
  double slowest = 0;
  for (int i = 0; i < 8; ++i) {
    auto l_new = std::make_unique<Recorder>();
    auto c_new = std::make_unique<Consumer>(brokers, group, std::vector<std::string>{topic}, Config{}, l_new.get());
    l_new->consumer = c_new.get();
    const auto into = std::chrono::milliseconds(70 * i);  // 0 .. 490 ms into the rebalance
    pump({{c_old.get(), l_old.get()}, {c_new.get(), l_new.get()}}, into, [] { return false; });
    const bool close_new = i % 2 == 0;
    Consumer& leaving = close_new ? *c_new : *c_old;
    Recorder& leaving_l = close_new ? *l_new : *l_old;
    const auto t0 = Clock::now();
    EXPECT_NO_THROW(leaving.close()) << "round " << i;
    const double took = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_LT(took, 10.0) << "round " << i << ": close() took " << took << " s";  // generous: a shared CI machine
    slowest = std::max(slowest, took);
    EXPECT_TRUE(leaving_l.owned.empty()) << "round " << i << ": close() left " << text(leaving_l.owned);
    if (!close_new) {
      std::swap(c_old, c_new);
      std::swap(l_old, l_new);
    }
    c_new.reset();
    ASSERT_TRUE(pump({{c_old.get(), l_old.get()}}, kRebalanceDeadline, [&] { return l_old->owned == all; }))
        << "round " << i << ": the remaining member owns " << text(l_old->owned);
    for (const auto& [removed, lost] : l_old->revoked_calls) EXPECT_FALSE(lost) << "round " << i;
  }
  // A member closed while its JoinGroup is pending waits for that rebalance to end.
  std::printf("[          ] slowest close() during a rebalance: %.2f s\n", slowest);
}

struct Thrower : RebalanceListener {
  void on_assigned(const std::vector<TopicPartition>&) override { throw std::runtime_error("listener says no"); }
  void on_revoked(const std::vector<TopicPartition>&, bool) override {}
};

TEST(BusRebalance, ListenerExceptionIsThrownByPollAndTheAssignmentStands) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("rb-throw");
  ensure_topics(brokers, {{topic, 2}});
  Thrower l;
  Consumer c(brokers, unique_name("g-rb-throw"), {topic}, {}, &l);
  std::string err;
  const auto deadline = Clock::now() + kRebalanceDeadline;
  while (err.empty() && Clock::now() < deadline) {
    try {
      c.poll(100);
    } catch (const std::runtime_error& e) {
      err = e.what();
    }
  }
  EXPECT_EQ(err, "listener says no");
  EXPECT_EQ(assignment_of(c), all_of(topic, 2));
  EXPECT_FALSE(c.poll(100).has_value());  // thrown once
}

// A group member in a forked child (no exec): reports "<owned count> <lost count>\n" on a
// pipe after every change (lost: partitions revoked with lost=true so far), until killed.
struct ChildMember {
  pid_t pid = -1;
  int fd = -1;
  std::string buffer;
  std::size_t owned = 0;
  std::size_t lost = 0;

  ChildMember(const std::string& brokers, const std::string& group, const std::string& topic) {
    // fork() copies only the calling thread: no librdkafka thread of this process may be
    // running (the earlier tests' clients are destroyed, which joins their threads).
    const auto until = Clock::now() + std::chrono::seconds(10);
    while (threads() != 1 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (threads() != 1) throw std::runtime_error("cannot fork: " + std::to_string(threads()) + " threads");
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    std::fflush(nullptr);
    pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      close(fds[0]);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      run_child(brokers, group, topic, fds[1]);
    }
    close(fds[1]);
    fd = fds[0];
    fcntl(fd, F_SETFL, O_NONBLOCK);
  }
  ~ChildMember() {
    kill_now();
    if (fd >= 0) close(fd);
  }

  [[noreturn]] static void run_child(const std::string& brokers, const std::string& group, const std::string& topic,
                                     int out) {
    try {
      struct Report : RebalanceListener {
        int out;
        std::size_t owned = 0, lost = 0;
        void say() {
          std::string line = std::to_string(owned) + " " + std::to_string(lost) + "\n";
          if (write(out, line.data(), line.size()) < 0) _exit(3);
        }
        void on_assigned(const std::vector<TopicPartition>& added) override { owned += added.size(); say(); }
        void on_revoked(const std::vector<TopicPartition>& removed, bool gone) override {
          owned -= removed.size();
          if (gone) lost += removed.size();
          say();
        }
      } report;
      report.out = out;
      Consumer c(brokers, group, {topic}, {}, &report);
      for (;;) {
        if (getppid() == 1) _exit(0);
        c.poll(100);
      }
    } catch (...) {
      _exit(2);
    }
  }

  static std::size_t threads() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
    return n;
  }

  // Reads what the child reported so far (its latest counts).
  void read_reports() {
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) buffer.append(buf, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      std::sscanf(buffer.substr(0, nl).c_str(), "%zu %zu", &owned, &lost);
      buffer.erase(0, nl + 1);
    }
  }

  void kill_now() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
  }
};

TEST(BusRebalance, SurvivorTakesOverAKilledMembersPartitionsQuickly) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("rb-kill");
  const int partitions = 6;
  ensure_topics(brokers, {{topic, partitions}});
  const std::string group = unique_name("g-rb-kill");
  const Parts all = all_of(topic, partitions);

  ChildMember child(brokers, group, topic);
  const auto deadline = Clock::now() + kRebalanceDeadline;
  while (child.owned != all.size()) {  // the child alone owns everything
    ASSERT_LT(Clock::now(), deadline) << "the child never got the partitions (owns " << child.owned << ")";
    pollfd pfd{child.fd, POLLIN, 0};
    ::poll(&pfd, 1, 100);
    child.read_reports();
  }

  Recorder l;
  Consumer survivor(brokers, group, {topic}, {}, &l);
  ASSERT_TRUE(poll_until({&survivor}, [&] {
    child.read_reports();
    return !l.owned.empty() && l.owned.size() + child.owned == all.size() && assignment_of(survivor) == l.owned;
  })) << "never split: survivor " << text(l.owned) << ", child " << child.owned;
  const std::size_t had = l.owned.size();
  l.complete_at = all.size();

  const auto killed = Clock::now();
  child.kill_now();
  ASSERT_TRUE(poll_until({&survivor}, [&] { return l.owned == all; }, std::chrono::seconds(30)))
      << "no takeover within 30 s: survivor owns " << text(l.owned);
  const double took = std::chrono::duration<double>(l.complete_time - killed).count();
  std::printf("[          ] takeover after SIGKILL: %.2f s (survivor had %zu of %d partitions)\n", took, had,
              partitions);
  EXPECT_LE(took, 20.0) << "generous for a shared CI machine; the figure is printed above";
  EXPECT_EQ(l.revoked_calls.size(), 0u) << "the survivor should keep its partitions throughout";
  EXPECT_EQ(assignment_of(survivor), all);
}

TEST(BusRebalance, AMemberFrozenPastItsSessionIsToldItsPartitionsWereLost) {
  const std::string brokers = kafka_brokers();
  const std::string topic = unique_name("rb-stop");
  const int partitions = 4;
  ensure_topics(brokers, {{topic, partitions}});
  const std::string group = unique_name("g-rb-stop");
  const Parts all = all_of(topic, partitions);
  ChildMember child(brokers, group, topic);
  auto wait_child = [&](auto done, const char* what) {
    const auto deadline = Clock::now() + kRebalanceDeadline;
    for (child.read_reports(); !done(); child.read_reports()) {
      if (Clock::now() >= deadline) return ::testing::AssertionFailure() << "child never " << what;
      pollfd pfd{child.fd, POLLIN, 0};
      ::poll(&pfd, 1, 100);
    }
    return ::testing::AssertionSuccess();
  };
  ASSERT_TRUE(wait_child([&] { return child.owned == all.size(); }, "owned everything"));
  Recorder l;
  Consumer survivor(brokers, group, {topic}, {}, &l);
  ASSERT_TRUE(poll_until({&survivor}, [&] {
    child.read_reports();
    return !l.owned.empty() && l.owned.size() + child.owned == all.size();
  })) << "never split";
  ::kill(child.pid, SIGSTOP);  // alive but silent: its session expires
  ASSERT_TRUE(poll_until({&survivor}, [&] { return l.owned == all; })) << "no takeover: " << text(l.owned);
  ::kill(child.pid, SIGCONT);
  // The child learns (at its next heartbeat) that its partitions are gone: revoked with
  // lost=true, so it must not commit for them.
  ASSERT_TRUE(wait_child([&] { return child.lost > 0; }, "reported lost partitions"));
  for (const auto& [removed, lost] : l.revoked_calls) EXPECT_FALSE(lost);
  // It rejoins and gets a share back.
  ASSERT_TRUE(poll_until({&survivor}, [&] {
    child.read_reports();
    return child.owned > 0 && l.owned.size() + child.owned == all.size();
  })) << "the child never rejoined: survivor " << text(l.owned) << ", child " << child.owned;
}

}  // namespace
}  // namespace fleet::bus
