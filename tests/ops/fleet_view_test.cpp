// What workers register about their machine (hardware, rows/s) round-trips through Redis; the
// Heartbeat adds it by itself; fleet status's view lists live workers and only the requests
// still queued or running; plan --from-fleet groups workers by host.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "hardware/hardware.h"
#include "plan/fleet_view.h"
#include "redis_server.h"
#include "stage/heartbeat.h"
#include "state/keys.h"
#include "state/membership.h"

namespace fleet {
namespace {

using namespace std::chrono_literals;

WorkerInfo worker(const std::string& id, int stage, const std::string& host, uint64_t mem) {
  WorkerInfo w;
  w.worker_id = id;
  w.stage = stage;
  w.layer_begin = stage * 3;
  w.layer_end = stage * 3 + 3;
  w.model = "m";
  w.host = host;
  w.pid = 42;
  if (mem) w.hardware = {{"mem_total_bytes", mem}, {"logical_cores", 8}, {"simd", {"avx2", "fma"}}};
  w.rows_per_s = 12.5;
  return w;
}

TEST(FleetView, HardwareRoundTripsAndPlansByHost) {
  test::RedisServer server;
  RedisClient redis(server.url());
  Membership m(redis, 30s);
  m.register_worker(worker("w0", 0, "host-a", 16ull << 30));
  m.register_worker(worker("w1", 1, "host-b", 48ull << 30));
  WorkerInfo recovered = worker("w1b", 1, "host-a", 16ull << 30);  // a replica on host-a
  recovered.batch_stats = {{"recoveries", 3}, {"recovery_ms_max", 4230.0}};  // it rebuilt 3 caches by replay
  m.register_worker(recovered);
  auto got = m.get("w1");
  ASSERT_TRUE(got);
  EXPECT_EQ(HardwareInfo::from_json(got->hardware).mem_total_bytes, 48ull << 30);
  EXPECT_EQ(HardwareInfo::from_json(got->hardware).simd.names(), (std::vector<std::string>{"avx2", "fma"}));
  EXPECT_DOUBLE_EQ(got->rows_per_s, 12.5);

  // Requests, found through fleet:progress: queued and running are in flight; an ended one still
  // indexed (its terminal event not yet known delivered) and a vanished one are not listed.
  redis.hset("fleet:req:r1", {{"status", "running"}, {"model", "m"}, {"prompt_token_count", "7"}, {"created_ms", "1"}});
  redis.rpush("fleet:req:r1:tokens", {"1", "2", "3"});
  redis.hset("fleet:req:r2", {{"status", "queued"}, {"model", "other"}, {"prompt_token_count", "2"}});
  redis.hset("fleet:req:r3", {{"status", "done"}, {"model", "m"}});
  redis.command({"ZADD", keys::progress(), "5", "r1", "6", "r2", "7", "r3", "8", "vanished"});
  FleetView v = read_fleet_view(redis);
  ASSERT_EQ(v.workers.size(), 3u);
  ASSERT_EQ(v.requests.size(), 2u);
  EXPECT_EQ(v.requests[0].id, "r1");  // oldest first
  EXPECT_EQ(v.requests[0].generated, 3);
  EXPECT_EQ(v.requests[0].prompt_tokens, 7);
  EXPECT_EQ(read_fleet_view(redis, "other").requests.size(), 1u);
  EXPECT_TRUE(read_fleet_view(redis, "other").workers.empty());
  const std::string table = format_fleet_view(v);
  EXPECT_NE(table.find("3 live worker(s)"), std::string::npos) << table;
  EXPECT_NE(table.find("2 request(s) in flight"), std::string::npos) << table;
  EXPECT_NE(table.find("3, <=4.2s"), std::string::npos) << "recoveries and the longest\n" << table;
  EXPECT_EQ(fleet_view_json(v)["workers"][1]["layers"], nlohmann::json({3, 6}));

  // One plan worker per host, in the order of the lowest stage each runs.
  auto pw = plan_workers_from_fleet(v);
  ASSERT_EQ(pw.size(), 2u);
  EXPECT_EQ(pw[0].name, "host-a");
  EXPECT_EQ(pw[0].memory_bytes, 16ull << 30);
  EXPECT_EQ(pw[1].name, "host-b");
  // A worker that registered no hardware cannot be planned for, and is named.
  m.register_worker(worker("old", 2, "host-c", 0));
  try {
    plan_workers_from_fleet(read_fleet_view(redis));
    FAIL();
  } catch (const PlanError& e) {
    EXPECT_NE(std::string(e.what()).find("worker old"), std::string::npos) << e.what();
  }
}

TEST(FleetView, HeartbeatRegistersThisMachine) {
  test::RedisServer server;
  Heartbeat hb(server.url(), 30s, [] { return worker("hb", 0, "h", 0); });  // registers at once
  RedisClient redis(server.url());
  auto got = Membership(redis, 30s).get("hb");
  ASSERT_TRUE(got);
  const HardwareInfo here = detect_hardware();
  const HardwareInfo reg = HardwareInfo::from_json(got->hardware);
  EXPECT_EQ(reg.mem_total_bytes, here.mem_total_bytes);
  EXPECT_EQ(reg.logical_cores, here.logical_cores);
  EXPECT_EQ(reg.cpu_model, here.cpu_model);
  EXPECT_GT(reg.mem_available_bytes, 0u);
  hb.deregister();
  EXPECT_FALSE(Membership(redis, 30s).get("hb"));
}

}  // namespace
}  // namespace fleet
