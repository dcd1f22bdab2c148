// The fleet's Redis schema against a real redis-server: requests, KV handles,
// membership with heartbeat TTLs, the weight manifest.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "state/keys.h"
#include "state/kv_handle_store.h"
#include "state/membership.h"
#include "state/redis_client.h"
#include "state/redis_server.h"
#include "state/request_store.h"
#include "state/weight_manifest.h"
#include "test_support.h"

namespace fleet {
namespace {

using namespace std::chrono_literals;
using test::error_of;
using test::eventually;

class StateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<test::RedisServer>(); }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override {
    redis_ = std::make_unique<RedisClient>(server_->url());
    redis_->command({"FLUSHALL"});
  }
  static RequestRecord sample_request(const std::string& id) {
    RequestRecord r;
    r.id = id;
    r.model = "stories260K";
    r.params = RequestParams::from_json({{"max_tokens", 16}, {"temperature", 0.0}, {"top_p", 0.9}, {"top_k", 40},
                                         {"seed", 7}, {"stop", {"\n\n"}}});
    r.source = "fleet.prompts:3:41";
    r.prompt = "Once upon a time";
    r.prompt_tokens = {1, 403, 407, 261, 378};
    return r;
  }
  static std::unique_ptr<test::RedisServer> server_;
  std::unique_ptr<RedisClient> redis_;
};
std::unique_ptr<test::RedisServer> StateTest::server_;

// ---------------------------------------------------------------- RequestStore

TEST_F(StateTest, RequestCreateAndLoadRoundTrip) {
  RequestStore store(*redis_);
  RequestRecord in = sample_request("r1");
  ASSERT_TRUE(store.create(in));
  auto out = store.load("r1");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->status, RequestStatus::Queued);
  EXPECT_EQ(out->model, "stories260K");
  EXPECT_EQ(out->params, in.params);
  EXPECT_EQ(out->params.seed, 7u);
  EXPECT_EQ(out->source, "fleet.prompts:3:41");
  EXPECT_EQ(out->prompt, "Once upon a time");
  EXPECT_TRUE(out->messages.is_null());
  EXPECT_EQ(out->prompt_tokens, in.prompt_tokens);
  EXPECT_TRUE(out->generated.empty());
  EXPECT_GT(out->created_ms, 0);
  EXPECT_EQ(out->finished_ms, 0);
  // Inspectable with redis-cli as documented.
  auto h = redis_->hgetall("fleet:req:r1");
  EXPECT_EQ(h["status"], "queued");
  EXPECT_EQ(h["prompt_tokens"], "[1,403,407,261,378]");
  EXPECT_EQ(h["prompt_token_count"], "5");
  EXPECT_EQ(redis_->pttl("fleet:req:r1"), -1);  // no TTL while in flight

  EXPECT_EQ(store.load("nope"), std::nullopt);
}

TEST_F(StateTest, RequestCreateIsFirstWriterWins) {
  RequestStore store(*redis_);
  ASSERT_TRUE(store.create(sample_request("r1")));
  store.set_status("r1", RequestStatus::Running);
  RequestRecord again = sample_request("r1");
  again.model = "other";
  EXPECT_FALSE(store.create(again));  // a redelivered prompt changes nothing
  EXPECT_EQ(store.load("r1")->model, "stories260K");
  EXPECT_EQ(store.load("r1")->status, RequestStatus::Running);
}

TEST_F(StateTest, RequestWithMessagesKeepsThemAsJson) {
  RequestStore store(*redis_);
  RequestRecord r = sample_request("chat");
  r.prompt.clear();
  r.messages = nlohmann::json::array({{{"role", "user"}, {"content", "hi \"there\"\n"}}});
  ASSERT_TRUE(store.create(r));
  auto out = store.load("chat");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->messages, r.messages);
  EXPECT_FALSE(redis_->hget(keys::request("chat"), "prompt").has_value());
}

TEST_F(StateTest, GeneratedTokensAppendIdempotentlyAndReplay) {
  RequestStore store(*redis_);
  ASSERT_TRUE(store.create(sample_request("r1")));
  store.set_status("r1", RequestStatus::Running);
  store.append_generated_token("r1", 0, 11);
  store.append_generated_token("r1", 1, 12);
  store.append_generated_token("r1", 1, 12);                  // a retried step: no duplicate
  store.append_generated_tokens("r1", 1, {12, 13, 14});       // overlapping batch: only the new ones
  EXPECT_EQ(store.generated_count("r1"), 4);
  EXPECT_EQ(redis_->lrange("fleet:req:r1:tokens", 0, -1), (std::vector<std::string>{"11", "12", "13", "14"}));

  std::string err = error_of([&] { store.append_generated_token("r1", 6, 99); });
  EXPECT_NE(err.find("gap"), std::string::npos) << err;
  EXPECT_NE(err.find("r1"), std::string::npos) << err;
  err = error_of([&] { store.append_generated_token("r1", 2, 77); });
  EXPECT_NE(err.find("already holds token 13"), std::string::npos) << err;
  err = error_of([&] { store.append_generated_token("ghost", 0, 1); });
  EXPECT_NE(err.find("no request 'ghost'"), std::string::npos) << err;
  EXPECT_FALSE(redis_->exists(keys::request_tokens("ghost")));  // no orphan list
  EXPECT_EQ(store.generated_count("r1"), 4);

  // Replay after a failure: prompt tokens + generated tokens, in order.
  auto r = store.load("r1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, RequestStatus::Running);
  EXPECT_EQ(r->prompt_tokens, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(r->generated, (std::vector<int32_t>{11, 12, 13, 14}));
  EXPECT_GE(r->updated_ms, r->created_ms);
}

TEST_F(StateTest, FinishSetsFieldsAndTtlOnEveryKeyOfTheRequest) {
  RequestStore store(*redis_, {.finished_ttl = 60s});
  KvHandleStore kv(*redis_);
  ASSERT_TRUE(store.create(sample_request("r1")));
  store.append_generated_tokens("r1", 0, {5, 6});
  kv.set("r1", 0, {"w0", 1, 7});
  store.finish("r1", "length");
  auto r = store.load("r1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, RequestStatus::Done);
  EXPECT_EQ(r->finish_reason, "length");
  EXPECT_GE(r->finished_ms, r->created_ms);
  for (const std::string& key : {keys::request("r1"), keys::request_tokens("r1"), keys::kv("r1")}) {
    long long ttl = redis_->pttl(key);
    EXPECT_GT(ttl, 50'000) << key;
    EXPECT_LE(ttl, 60'000) << key;
  }
  // A KV handle written after finishing inherits the request's TTL.
  kv.remove_all("r1");
  kv.set("r1", 1, {"w1", 1, 9});
  EXPECT_GT(redis_->pttl(keys::kv("r1")), 50'000);

  std::string err = error_of([&] { store.finish("ghost", "stop"); });
  EXPECT_NE(err.find("ghost"), std::string::npos) << err;
  EXPECT_FALSE(redis_->exists(keys::request("ghost")));
  err = error_of([&] { store.set_status("ghost", RequestStatus::Running); });
  EXPECT_NE(err.find("no request 'ghost'"), std::string::npos) << err;
}

TEST_F(StateTest, SetErrorRecordsTheMessageAndExpires) {
  RequestStore store(*redis_, {.finished_ttl = 30s});
  ASSERT_TRUE(store.create(sample_request("r2")));
  store.set_error("r2", "no KV cache for decode step at stage 1");
  auto r = store.load("r2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, RequestStatus::Error);
  EXPECT_EQ(r->error, "no KV cache for decode step at stage 1");
  EXPECT_GT(redis_->pttl(keys::request("r2")), 0);
}

// fleet:progress: unfinished requests scored by their last progress; claim_stalled hands each
// stalled one to one caller per stall.
TEST_F(StateTest, ProgressIndexTracksUnfinishedRequestsAndClaimsEachStallOnce) {
  RequestStore store(*redis_);
  auto score = [&](const std::string& id) { return redis_->command({"ZSCORE", keys::progress(), id}); };
  RequestRecord a = sample_request("a"), b = sample_request("b"), failed = sample_request("failed");
  a.updated_ms = 1000;
  b.updated_ms = 5000;
  failed.status = RequestStatus::Error;  // recorded as failed at admission: never indexed
  ASSERT_TRUE(store.create(a));
  ASSERT_TRUE(store.create(b));
  ASSERT_TRUE(store.create(failed));
  EXPECT_EQ(score("a").as_string(), "1000");
  EXPECT_EQ(score("failed").type, RedisReply::Type::Nil);

  EXPECT_EQ(store.claim_stalled(1500, 1000ms, 10), std::vector<std::string>{}) << "nothing older than 500";
  EXPECT_EQ(store.claim_stalled(4000, 1000ms, 10), std::vector<std::string>{"a"});
  EXPECT_EQ(score("a").as_string(), "4000") << "claimed: its clock starts again";
  EXPECT_EQ(store.claim_stalled(4500, 1000ms, 10), std::vector<std::string>{}) << "a second caller finds it claimed";

  store.append_generated_token("b", 0, 42);  // progress: scored now
  EXPECT_GT(std::stoll(score("b").as_string()), 5000);
  EXPECT_EQ(store.claim_stalled(6500, 1000ms, 10), std::vector<std::string>{"a"});

  const int64_t before_end = now_ms();
  store.finish("a", "stop");
  store.set_error("b", "internal: gone");
  // Ended, they stay, scored at their end, until their terminal events are known delivered.
  EXPECT_GE(std::stoll(score("a").as_string()), before_end);
  EXPECT_GE(std::stoll(score("b").as_string()), before_end);
  const std::string ended_at = score("a").as_string();
  std::this_thread::sleep_for(2ms);  // so that a progress score would differ (not a wait for a condition)
  store.append_generated_token("a", 0, 42);  // a late duplicate of an ended request's token
  EXPECT_EQ(score("a").as_string(), ended_at) << "an ended request makes no progress";
  store.forget_progress({"a", "b"});
  EXPECT_EQ(redis_->command({"ZCARD", keys::progress()}).as_integer(), 0);
  store.append_generated_token("a", 0, 42);
  EXPECT_EQ(score("a").type, RedisReply::Type::Nil) << "an ended request is not indexed again";

  ASSERT_TRUE(store.create(sample_request("c")));
  EXPECT_EQ(redis_->pttl(keys::progress()), -1) << "the index itself never expires";
  store.forget_progress({"c"});
  EXPECT_EQ(score("c").type, RedisReply::Type::Nil);
}

TEST_F(StateTest, FinishedRequestExpires) {
  RequestStore store(*redis_, {.finished_ttl = 1s});
  KvHandleStore kv(*redis_);
  ASSERT_TRUE(store.create(sample_request("r3")));
  store.append_generated_token("r3", 0, 42);
  kv.set("r3", 0, {"w0", 2, 6});
  store.finish("r3", "stop");
  ASSERT_TRUE(store.load("r3").has_value());
  EXPECT_TRUE(eventually([&] { return !store.load("r3").has_value(); }, 10s));
  EXPECT_FALSE(redis_->exists(keys::request_tokens("r3")));
  EXPECT_FALSE(redis_->exists(keys::kv("r3")));
}

TEST_F(StateTest, CorruptFieldsGiveClearErrors) {
  RequestStore store(*redis_);
  redis_->hset(keys::request("bad"), {{"status", "queued"}, {"params", "{not json"}});
  std::string err = error_of([&] { store.load("bad"); });
  EXPECT_NE(err.find("request 'bad' field params"), std::string::npos) << err;
  redis_->hset(keys::request("bad2"), {{"status", "sleeping"}});
  err = error_of([&] { store.load("bad2"); });
  EXPECT_NE(err.find("unknown request status 'sleeping'"), std::string::npos) << err;
}

// --------------------------------------------------------------- KvHandleStore

TEST_F(StateTest, KvHandlesPerStage) {
  KvHandleStore kv(*redis_);
  EXPECT_EQ(kv.get("r1", 0), std::nullopt);
  kv.set("r1", 0, {"stage0-a", 3, 17});
  kv.set("r1", 2, {"stage2-b", 1, 17});
  EXPECT_EQ(kv.get("r1", 0), (KvHandle{"stage0-a", 3, 17}));
  kv.set("r1", 0, {"stage0-a", 3, 18});  // the cache grew
  EXPECT_EQ(kv.get("r1", 0)->cached_len, 18);
  auto all = kv.get_all("r1");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[2], (KvHandle{"stage2-b", 1, 17}));
  nlohmann::json raw = nlohmann::json::parse(*redis_->hget("fleet:kv:r1", "2"));
  EXPECT_EQ(raw, (nlohmann::json{{"worker", "stage2-b"}, {"epoch", 1}, {"cached_len", 17}}));
  // No request "r1" exists: the handles get the orphan TTL instead of living forever.
  long long orphan = redis_->pttl("fleet:kv:r1");
  EXPECT_GT(orphan, 0);
  EXPECT_LE(orphan, 3'600'000);

  EXPECT_TRUE(kv.remove("r1", 2));
  EXPECT_FALSE(kv.remove("r1", 2));
  EXPECT_EQ(kv.get("r1", 2), std::nullopt);
  kv.remove_all("r1");
  EXPECT_TRUE(kv.get_all("r1").empty());

  redis_->set("fleet:kv:wrongtype", "x");  // errors inside a script name its key
  std::string err = error_of([&] { kv.set("wrongtype", 0, {"w", 1, 1}); });
  EXPECT_NE(err.find("fleet:kv:wrongtype"), std::string::npos) << err;
  EXPECT_NE(err.find("WRONGTYPE"), std::string::npos) << err;

  redis_->hset("fleet:kv:r9", {{"0", "{\"worker\":\"w\"}"}});
  err = error_of([&] { kv.get("r9", 0); });
  EXPECT_NE(err.find("KV handle of request 'r9' stage 0"), std::string::npos) << err;
}

TEST_F(StateTest, KvHandlesLiveAsLongAsTheRequest) {
  RequestStore store(*redis_, {.finished_ttl = 60s});
  KvHandleStore kv(*redis_, 5s);
  kv.set("r1", 0, {"w", 1, 1});  // before the request exists: orphan TTL
  EXPECT_LE(redis_->pttl(keys::kv("r1")), 5'000);
  ASSERT_TRUE(store.create(sample_request("r1")));
  kv.set("r1", 0, {"w", 1, 2});  // in flight: no TTL, like the request
  EXPECT_EQ(redis_->pttl(keys::kv("r1")), -1);
  store.finish("r1", "stop");
  kv.set("r1", 1, {"w", 1, 3});  // finished: the request's TTL
  EXPECT_GT(redis_->pttl(keys::kv("r1")), 50'000);
}

TEST_F(StateTest, LongTokenRunsAreAppendedInChunks) {
  RequestStore store(*redis_);
  ASSERT_TRUE(store.create(sample_request("long")));
  std::vector<int32_t> tokens(5000);
  for (int i = 0; i < 5000; ++i) tokens[i] = i * 7 % 512;
  store.append_generated_tokens("long", 0, tokens);
  store.append_generated_tokens("long", 0, tokens);  // idempotent across chunks too
  auto r = store.load("long");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->generated, tokens);
}

// A batch's writes in one round trip each: one token per request, one KV handle per request;
// one request's problem is reported for it alone.
TEST_F(StateTest, BatchOfRequestsWritesTokensAndHandlesTogether) {
  RequestStore store(*redis_);
  ASSERT_TRUE(store.create(sample_request("ba")));
  ASSERT_TRUE(store.create(sample_request("bb")));
  auto problems = store.append_tokens_of_requests({{"ba", 0, 11}, {"bb", 0, 22}, {"ghost", 0, 5}, {"bb", 3, 9}});
  ASSERT_EQ(problems.size(), 4u);
  EXPECT_EQ(problems[0], "");
  EXPECT_EQ(problems[1], "");
  EXPECT_NE(problems[2].find("no request 'ghost'"), std::string::npos) << problems[2];
  EXPECT_NE(problems[3].find("would leave a gap"), std::string::npos) << problems[3];
  problems = store.append_tokens_of_requests({{"ba", 0, 11}, {"bb", 0, 23}});  // a replay's copy; a different token
  EXPECT_EQ(problems[0], "");
  EXPECT_NE(problems[1].find("already holds token 22"), std::string::npos) << problems[1];
  EXPECT_EQ(store.load("ba")->generated, (std::vector<int32_t>{11}));
  EXPECT_EQ(store.load("bb")->generated, (std::vector<int32_t>{22}));
  EXPECT_TRUE(store.append_tokens_of_requests({}).empty());

  KvHandleStore kv(*redis_);
  kv.set_many(1, {{"ba", {"w1", 7, 12}}, {"bb", {"w1", 7, 3}}});
  EXPECT_EQ(kv.get("ba", 1), (KvHandle{"w1", 7, 12}));
  EXPECT_EQ(kv.get("bb", 1), (KvHandle{"w1", 7, 3}));
}

// ------------------------------------------------------------------ Membership

WorkerInfo sample_worker(const std::string& id, int stage) {
  WorkerInfo w;
  w.worker_id = id;
  w.stage = stage;
  w.layer_begin = stage * 2;
  w.layer_end = stage * 2 + 2;
  w.model = "stories260K";
  w.fingerprint = "fp-" + std::to_string(stage);
  w.host = "host-a";
  w.pid = 1234 + stage;
  w.rss_bytes = 50'000'000;
  w.kv_bytes = 1'000'000;
  w.batch_stats = {{"batches", 10}, {"mean_rows", 3.5}};
  w.metrics_port = 9400 + stage;
  return w;
}

TEST_F(StateTest, MembershipRegisterHeartbeatDeregister) {
  Membership m(*redis_, 30s);
  m.register_worker(sample_worker("w-b", 1));
  m.register_worker(sample_worker("w-a", 1));
  m.register_worker(sample_worker("w-0", 0));
  auto live = m.live_workers();
  ASSERT_EQ(live.size(), 3u);
  EXPECT_EQ(live[0].worker_id, "w-0");  // sorted by (stage, id)
  EXPECT_EQ(live[1].worker_id, "w-a");
  EXPECT_EQ(live[2].worker_id, "w-b");
  EXPECT_EQ(live[1].layer_begin, 2);
  EXPECT_EQ(live[1].layer_end, 4);
  EXPECT_EQ(live[1].batch_stats["mean_rows"], 3.5);
  EXPECT_EQ(live[1].pid, 1235);
  EXPECT_EQ(live[1].metrics_port, 9401);
  EXPECT_GT(live[1].heartbeat_ms, 0);
  EXPECT_GT(live[1].started_ms, 0);

  auto h = redis_->hgetall("fleet:worker:w-a");
  EXPECT_EQ(h["layers"], "2-3");  // inclusive, as documented
  EXPECT_EQ(h["stage"], "1");
  EXPECT_EQ(h["metrics_port"], "9401");
  long long ttl = redis_->pttl("fleet:worker:w-a");
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 30'000);
  EXPECT_TRUE(redis_->command({"ZSCORE", "fleet:workers", "w-a"}).as_optional_string().has_value());

  WorkerInfo w = sample_worker("w-a", 1);
  w.rss_bytes = 77;
  EXPECT_TRUE(m.heartbeat(w));
  EXPECT_EQ(m.get("w-a")->rss_bytes, 77);

  m.deregister("w-a");
  EXPECT_EQ(m.get("w-a"), std::nullopt);
  EXPECT_FALSE(redis_->command({"ZSCORE", "fleet:workers", "w-a"}).as_optional_string().has_value());
  EXPECT_EQ(m.live_workers().size(), 2u);
}

TEST_F(StateTest, LiveWorkersPrunesEntriesWhoseHashIsGone) {
  Membership m(*redis_, 30s);
  m.register_worker(sample_worker("w-0", 0));
  m.register_worker(sample_worker("w-1", 1));
  redis_->del({"fleet:worker:w-1"});  // crashed and deleted behind our back
  auto live = m.live_workers();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].worker_id, "w-0");
  EXPECT_EQ(redis_->command({"ZCARD", "fleet:workers"}).as_integer(), 1);
}

TEST_F(StateTest, WorkerEntryExpiresWithoutHeartbeats) {
  Membership m(*redis_, 1000ms);
  m.register_worker(sample_worker("w-dead", 0));
  ASSERT_TRUE(redis_->exists("fleet:worker:w-dead"));
  EXPECT_EQ(m.live_workers().size(), 1u);
  EXPECT_TRUE(eventually([&] { return !redis_->exists("fleet:worker:w-dead"); }, 10s));
  EXPECT_TRUE(m.live_workers().empty());
  EXPECT_EQ(redis_->command({"ZCARD", "fleet:workers"}).as_integer(), 0);  // pruned
  // A heartbeat after the lapse re-creates the entry and says it had lapsed.
  EXPECT_FALSE(m.heartbeat(sample_worker("w-dead", 0)));
  EXPECT_EQ(m.live_workers().size(), 1u);
}

TEST(LayerRangeTest, FormatsInclusiveAndParsesBack) {
  EXPECT_EQ(format_layer_range(0, 5), "0-4");
  int b = -1, e = -1;
  parse_layer_range("3-4", &b, &e);
  EXPECT_EQ(b, 3);
  EXPECT_EQ(e, 5);
  EXPECT_NE(error_of([&] { parse_layer_range("x-4", &b, &e); }).find("layer range"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_layer_range("7", &b, &e); }).find("bad layer range"), std::string::npos);
}

// -------------------------------------------------------------- WeightManifest

TEST_F(StateTest, ManifestFirstWriterWinsAndMismatchNamesTheLayer) {
  WeightManifest manifest(*redis_);
  std::map<int, std::string> ours = {{0, "aa00"}, {1, "bb11"}, {2, "cc22"}, {3, "dd33"}, {4, "ee44"}};
  EXPECT_TRUE(manifest.register_layer_hashes("stories260K", ours).empty());
  // Same weights for layers 2..4 from a second worker: agreed.
  EXPECT_TRUE(manifest.register_layer_hashes("stories260K", {{2, "cc22"}, {3, "dd33"}, {4, "ee44"}}).empty());
  // A worker with different weights for layer 3.
  auto bad = manifest.register_layer_hashes("stories260K", {{2, "cc22"}, {3, "ffff"}});
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].layer, 3);
  EXPECT_EQ(bad[0].ours, "ffff");
  EXPECT_EQ(bad[0].stored, "dd33");
  std::string msg = WeightManifest::describe("stories260K", bad);
  EXPECT_NE(msg.find("layer 3"), std::string::npos) << msg;
  EXPECT_EQ(manifest.load("stories260K"), ours);  // the manifest was not overwritten
  EXPECT_EQ(redis_->hget("fleet:manifest:stories260K", "layer:3"), "dd33");
  // Another model is independent.
  EXPECT_TRUE(manifest.register_layer_hashes("other", {{3, "ffff"}}).empty());
}

TEST_F(StateTest, ManifestRaceHasExactlyOneWinnerPerLayer) {
  std::vector<std::vector<LayerMismatch>> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      RedisClient c(server_->url());  // one client per thread
      WeightManifest m(c);
      std::map<int, std::string> hashes;
      for (int layer = 0; layer < 8; ++layer) hashes[layer] = "worker" + std::to_string(t);
      results[t] = m.register_layer_hashes("race", hashes);
    });
  }
  for (auto& th : threads) th.join();
  // The whole registration is atomic: one worker wins every layer, the others lose all.
  int winners = 0;
  for (const auto& r : results) {
    if (r.empty()) ++winners;
    else EXPECT_EQ(r.size(), 8u);
  }
  EXPECT_EQ(winners, 1);
}

}  // namespace
}  // namespace fleet
