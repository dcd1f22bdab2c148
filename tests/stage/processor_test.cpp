// The stage layer end to end in one process (MemoryFleet: stories260K in three stages, a real
// redis-server, queues in place of Kafka): intake, batching, the sampling tail, and recovery by
// replay after a stage loses its state, each compared with fleet generate's text.
#include <algorithm>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "contracts/result_events.h"
#include "generate/generate.h"
#include "stage/memory_fleet.h"
#include "stage/stall_redrive.h"
#include "state/keys.h"
#include "support/stories_reference.h"
#include "test_support.h"

namespace fleet::test {
namespace {

struct Outcome {
  std::vector<int32_t> tokens;     // by index
  int duplicate_tokens = 0;        // token events for an index already seen
  int terminals = 0;               // done + error events
  std::string text, error_code, finish_reason;
};

std::map<std::string, Outcome> outcomes(const MemoryFleet& f) {
  std::map<std::string, Outcome> out;
  for (const std::string& v : f.results_log()) {
    auto ev = parse_result_event(v);
    EXPECT_TRUE(ev.has_value()) << v;
    if (!ev) continue;
    Outcome& o = out[ev->id];
    if (ev->type == ResultEvent::Type::Token) {
      if (ev->index < static_cast<int>(o.tokens.size())) ++o.duplicate_tokens;
      else if (ev->index == static_cast<int>(o.tokens.size())) o.tokens.push_back(ev->token_id);
      else ADD_FAILURE() << "token " << ev->index << " of " << ev->id << " before token " << o.tokens.size();
    } else {
      ++o.terminals;
      if (ev->type == ResultEvent::Type::Done) {
        o.text = ev->text;
        o.finish_reason = ev->finish_reason;
      } else {
        o.error_code = ev->error.code;
      }
    }
  }
  return out;
}


const std::vector<std::string> kPrompts = {"Once upon a time", "The little dog", "Lily and Ben went to the park"};

void submit(MemoryFleet& f, int max_tokens) {
  for (size_t i = 0; i < kPrompts.size(); ++i)
    f.publish(f.config().prompts_topic(), "r" + std::to_string(i), prompt_record("r" + std::to_string(i), kPrompts[i], max_tokens));
}

// Every request done once, each token index once, the text of fleet generate.
void expect_exact(const MemoryFleet& f, int max_tokens) {
  auto got = outcomes(f);
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    const Outcome& o = got["r" + std::to_string(i)];
    const GenerateResult& ref = stories_reference(kPrompts[i], max_tokens);
    EXPECT_EQ(o.error_code, "");
    EXPECT_EQ(o.terminals, 1) << "r" << i;
    EXPECT_EQ(o.duplicate_tokens, 0) << "r" << i;
    EXPECT_EQ(o.tokens, ref.tokens) << "r" << i;
    EXPECT_EQ(o.text, ref.text) << "r" << i;
  }
}

// Runs deliveries until `tokens` token events are out in total.
void run_until_tokens(MemoryFleet& f, size_t tokens) {
  for (int round = 0; round < 100000; ++round) {
    size_t n = 0;
    for (const auto& [id, o] : outcomes(f)) n += o.tokens.size();
    if (n >= tokens) return;
    ASSERT_TRUE(f.deliver_once()) << "the fleet went idle with " << n << " tokens out";
  }
}

TEST(StageIntake, PromptIsRecordedWithItsSourceAndPrefilledInChunks) {
  MemoryFleetOptions o;
  o.prefill_chunk = 2;
  MemoryFleet f(o);
  f.publish(f.config().prompts_topic(), "p1", prompt_record("p1", "Once upon a time", 4));
  f.deliver_once();  // stage 0 reads the prompt
  f.deliver_all(0);  // route its outputs without processing them
  auto rec = f.requests().load("p1");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->source, "mem.prompts:0:0");
  EXPECT_EQ(rec->params.max_tokens, 4);
  EXPECT_TRUE(rec->params.seed.has_value());  // chosen by the service, recorded for replay
  const auto& q = f.queue(f.config().stage_topic(0));
  EXPECT_EQ(q.size(), (rec->prompt_tokens.size() + 1) / 2);
}

TEST(StageIntake, BadRecordsGetAnErrorEventAndADeadLetterOnceAndReusedIdsAreRefused) {
  MemoryFleet f;
  const std::string prompts = f.config().prompts_topic();
  f.publish(prompts, "bad1", R"({"id": "bad1", "prompt": "x", "max_token": 3})");
  f.publish(prompts, "bad2", "not json");
  f.publish(prompts, "ok", prompt_record("ok", "The little dog", 3));
  f.deliver_all();
  // The same records delivered again (a worker died before committing): answered once.
  f.publish(prompts, "ok", prompt_record("ok", "The little dog", 3));  // a reuse: a new offset
  auto& q = f.queue(prompts);
  bus::Message again;
  again.topic = prompts;
  again.partition = 0;
  again.offset = 0;
  again.key = "bad1";
  again.value = R"({"id": "bad1", "prompt": "x", "max_token": 3})";
  q.push_back(again);
  f.deliver_all();
  auto got = outcomes(f);
  EXPECT_EQ(got["bad1"].error_code, "invalid_request");
  EXPECT_EQ(got["bad1"].terminals, 1);
  EXPECT_EQ(got["bad2"].error_code, "invalid_json");
  EXPECT_EQ(got["ok"].text, stories_reference("The little dog", 3).text);
  EXPECT_EQ(got["ok"].terminals, 2);  // its done event, then duplicate_id for the reuse
  EXPECT_EQ(got["ok"].error_code, "duplicate_id");
  EXPECT_EQ(f.dead_letters().size(), 3u);
}

TEST(StageProcessor, ThreeStagesGiveFleetGeneratesTextWithOneEventPerToken) {
  MemoryFleet f;
  submit(f, 40);
  f.deliver_all();
  expect_exact(f, 40);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(f.processor(k).stats().replay_requests, 0) << k;
  EXPECT_EQ(f.processor(0).stats().requests, 0);  // releases freed every cache
}

TEST(StageReplay, AMiddleStageThatLostItsCachesRebuildsThemByReplay) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 20);
  f.restart_stage(1);
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_GE(f.processor(1).stats().replay_requests, 1);
  EXPECT_GT(f.processor(0).stats().replayed_rows, 0);
}

TEST(StageReplay, StageZeroReplaysItsOwnLossFromRedis) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 20);
  f.restart_stage(0);
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_GE(f.processor(0).stats().replay_requests, 1);
}

TEST(StageReplay, ACacheEvictedUnderTheBudgetIsReplayed) {
  MemoryFleetOptions o;
  // A stage of 2 layers caches 2 x 32 KV values x 2 x 4 B = 512 B per position, allocated 64
  // positions at a time: 32 KiB per request. A budget of 80 KiB holds two of the three.
  o.kv_budget = "80KiB";
  MemoryFleet f(o);
  submit(f, 40);
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_GT(f.processor(1).stats().evictions, 0);
}

TEST(StageTail, ATailThatDiedBeforeDeliveringRepublishesTheMissingTokenOnce) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 20);
  // The last stage processes a batch (Redis gets its tokens), then dies before the events and
  // next steps are delivered; its input is delivered again to the new worker.
  do f.deliver_once();
  while (f.pending(2) == 0);
  f.restart_stage(2, /*lose_pending=*/true);
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_GE(f.processor(2).stats().republished, 1);
}

// Delivery rounds in which the tail's token events are lost in flight (its next steps go on),
// until `batches` of them lost such events; returns how many did.
int lose_tail_events(MemoryFleet& f, int batches) {
  auto& tail_out = static_cast<MemoryOutbox&>(*f.context(2).outbox);
  const std::string results = f.config().results_topic();
  int held = 0;
  for (int round = 0; round < 100 && held < batches; ++round) {
    f.deliver_once();
    const size_t before = tail_out.pending.size();
    std::erase_if(tail_out.pending, [&](const MemoryOutbox::Record& r) { return r.topic == results; });
    if (tail_out.pending.size() != before) ++held;
  }
  return held;
}

// A worker does not wait for its outputs' delivery between batches: a tail may die with the token
// events of several batches in flight while their next steps went on. The new tail publishes
// every missing index, once.
TEST(StageTail, ATailThatDiedWithSeveralBatchesOfEventsInFlightRepublishesThemAll) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 20);
  ASSERT_EQ(lose_tail_events(f, 2), 2);
  f.restart_stage(2, /*lose_pending=*/true);
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_GE(f.processor(2).stats().republished, 2);
}

// The same before any of the requests' events got out: the new tail finds none of them on the
// results topic and must publish every index, not only the last (a chaos run lost index 5 of a
// request that way: its earlier events lay before the scanned window).
TEST(StageTail, ATailThatDiedBeforeAnyEventGotOutPublishesEveryIndex) {
  MemoryFleet f;
  submit(f, 40);
  ASSERT_EQ(lose_tail_events(f, 2), 2);
  f.restart_stage(2, /*lose_pending=*/true);
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_GE(f.processor(2).stats().republished, 2);
}

// A tail taking over may read old duplicates of a request's steps (a re-read batch, a replay)
// before the step of its last token: they must not cancel the resend of the next step that the
// old tail never delivered (fleet_outage_test once stranded 4 of 20 requests that way).
TEST(StageTail, OldDuplicateStepsBeforeTheLastTokensStepDoNotStrandATakenOverRequest) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 10);
  std::vector<MemoryOutbox::Record> old_steps;  // steps of earlier tokens, on their way to the tail
  for (int round = 0; round < 20 && old_steps.empty(); ++round) {
    for (const auto& r : static_cast<MemoryOutbox&>(*f.context(1).outbox).pending)
      if (r.topic == f.config().stage_topic(2)) old_steps.push_back(r);
    if (old_steps.empty()) f.deliver_once();
  }
  ASSERT_FALSE(old_steps.empty());
  run_until_tokens(f, 20);
  do f.deliver_once();
  while (f.pending(2) == 0);
  f.restart_stage(2, /*lose_pending=*/true);
  auto& q = f.queue(f.config().stage_topic(2));
  const size_t redelivered = q.size();
  ASSERT_GT(redelivered, 0u);
  for (const auto& r : old_steps) f.publish(r.topic, r.key, r.value);
  std::rotate(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(redelivered), q.end());  // old ones first
  f.deliver_all();
  expect_exact(f, 40);
}

TEST(StageTail, ATailTakingOverCleanlyRepublishesNothing) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 20);
  f.restart_stage(2);
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_GE(f.processor(2).stats().takeovers, 1);
  EXPECT_EQ(f.processor(2).stats().republished, 0);
}

// The takeover scan can fail (the broker away): the tail then republishes nothing and must not
// take the unknown for a terminal event already out (a chaos run in CI ended 3 requests so).
TEST(StageTail, ATakeoverWhoseScanFailsContinuesTheRequests) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 20);
  f.restart_stage(2);
  static_cast<MemoryOutbox&>(*f.context(2).outbox).scans_fail = true;
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_GE(f.processor(2).stats().takeovers, 1);
}

// A record reusing a running request's id is refused with a duplicate_id error under the same
// key: a takeover must not take that error for the request's end.
TEST(StageTail, ADuplicateIdRejectionIsNotTakenForTheEndOfTheRunningRequest) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 20);
  f.publish(f.config().prompts_topic(), "r0", prompt_record("r0", "The little dog", 10));
  f.restart_stage(2);
  f.deliver_all();
  auto got = outcomes(f);
  const GenerateResult& ref = stories_reference(kPrompts[0], 40);
  EXPECT_EQ(got["r0"].error_code, error_code::kDuplicateId);
  EXPECT_EQ(got["r0"].terminals, 2) << "the rejection, then the request's own done event";
  EXPECT_EQ(got["r0"].tokens, ref.tokens);
  EXPECT_EQ(got["r0"].text, ref.text);
  auto rec = f.requests().load("r0");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->status, RequestStatus::Done);
  EXPECT_GE(f.processor(2).stats().takeovers, 1);
}

TEST(StageTail, DuplicateStepsAreAbsorbed) {
  MemoryFleet f;
  submit(f, 30);
  run_until_tokens(f, 10);
  for (int k = 0; k < 3; ++k) {  // every queued record delivered twice
    auto& q = f.queue(f.config().stage_topic(k));
    std::deque<bus::Message> copy = q;
    q.insert(q.end(), copy.begin(), copy.end());
  }
  f.deliver_all();
  expect_exact(f, 30);
}

TEST(StageIntake, APromptRedeliveredAfterStageZeroDiedBeforeItsPrefillLeftCompletesOnce) {
  MemoryFleet f;
  submit(f, 20);
  f.deliver_once();  // stage 0 records the prompts in Redis and queues their prefill steps...
  f.restart_stage(0, /*lose_pending=*/true);  // ...and dies before they are delivered
  f.deliver_all();
  expect_exact(f, 20);
}

TEST(StageControl, CancelEndsTheRequestOnceWithItsTextSoFarAndFreesEveryStagesCache) {
  MemoryFleet f;
  submit(f, 60);
  run_until_tokens(f, 15);
  f.publish(f.config().control_topic(), "r0", R"({"id": "r0", "cancel": true})");
  f.publish(f.config().control_topic(), "nobody", R"({"id": "nobody", "cancel": true})");  // a no-op
  f.publish(f.config().control_topic(), "bad", R"({"id": "bad", "cancel": false})");       // dead letter
  f.deliver_all();
  auto got = outcomes(f);
  const Outcome& r0 = got["r0"];
  EXPECT_EQ(r0.terminals, 1);
  EXPECT_EQ(r0.duplicate_tokens, 0);
  EXPECT_EQ(r0.finish_reason, "cancelled");
  const GenerateResult& ref = stories_reference(kPrompts[0], 60);
  ASSERT_LT(r0.tokens.size(), ref.tokens.size());
  EXPECT_EQ(r0.tokens, std::vector<int32_t>(ref.tokens.begin(), ref.tokens.begin() + static_cast<long>(r0.tokens.size())));
  EXPECT_EQ(ref.text.rfind(r0.text, 0), 0u) << "the text so far is a prefix of the whole";
  for (const char* id : {"r1", "r2"}) EXPECT_EQ(got[id].finish_reason, stories_reference(id == std::string("r1") ? kPrompts[1] : kPrompts[2], 60).finish_reason);
  EXPECT_EQ(got.count("nobody"), 0u);
  EXPECT_EQ(got.count("bad"), 0u);
  EXPECT_EQ(f.dead_letters().size(), 1u);
  auto rec = f.requests().load("r0");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->finish_reason, "cancelled");
  KvHandleStore handles(*f.context(0).redis);
  EXPECT_TRUE(handles.get_all("r0").empty());
  for (int k = 0; k < 3; ++k) EXPECT_EQ(f.processor(k).stats().requests, 0) << "stage " << k;
  // A second cancel of the finished request changes nothing.
  f.publish(f.config().control_topic(), "r0", R"({"id": "r0", "cancel": true})");
  f.deliver_all();
  EXPECT_EQ(outcomes(f)["r0"].terminals, 1);
}

TEST(StageControl, ARequestPastItsTimeoutEndsWithATimeoutError) {
  MemoryFleet f;
  f.publish(f.config().prompts_topic(), "slow", R"({"id": "slow", "prompt": "Once upon a time", "max_tokens": 60,
                                                    "temperature": 0, "timeout_s": 5})");
  f.publish(f.config().prompts_topic(), "fine", prompt_record("fine", "The little dog", 20));
  run_until_tokens(f, 4);
  auto rec = f.requests().load("slow");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->params.timeout_s, 5.0);
  EXPECT_EQ(f.requests().load("fine")->params.timeout_s, f.config().timeouts.request_s);  // the default
  // As if it had started 10 s ago (the last stage reads it again after a restart).
  f.context(0).redis->hset("fleet:req:slow", {{"created_ms", std::to_string(rec->created_ms - 10000)}});
  f.restart_stage(2);
  f.deliver_all();
  auto got = outcomes(f);
  EXPECT_EQ(got["slow"].error_code, "timeout");
  EXPECT_EQ(got["slow"].terminals, 1);
  EXPECT_EQ(got["fine"].text, stories_reference("The little dog", 20).text);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(f.processor(k).stats().requests, 0) << "stage " << k;
}

// Stalled requests. A record that never arrives (a producer dropping it after its message
// timeout; fleet_outage_test once left 4 of 20 requests unfinished so) leaves its request with no
// step in flight, and nothing else moves it: stage 0 finds it without progress for
// timeouts.stall_s and asks for its next step again (StallRedrive).

// Drops the records the stage produced for `topic` and has not delivered yet; returns how many.
size_t drop_pending(MemoryFleet& f, int stage, const std::string& topic) {
  auto& pending = static_cast<MemoryOutbox&>(*f.context(stage).outbox).pending;
  return std::erase_if(pending, [&](const MemoryOutbox::Record& r) { return r.topic == topic; });
}

// Delivery rounds until a round's records from `stage` to `topic` could be dropped (lost).
size_t lose_records(MemoryFleet& f, int stage, const std::string& topic) {
  for (int round = 0; round < 50; ++round) {
    f.deliver_once();
    if (size_t n = drop_pending(f, stage, topic)) return n;
  }
  return 0;
}

size_t unfinished(const MemoryFleet& f) {
  size_t n = 0;
  auto got = outcomes(f);
  for (size_t i = 0; i < kPrompts.size(); ++i) n += got["r" + std::to_string(i)].terminals == 0;
  return n;
}

// Runs the fleet dry with some requests stranded, re-drives them one stall later, and checks
// that they end with their text, that nothing is re-driven early and that finished requests
// leave the index.
void expect_redriven(MemoryFleet& f) {
  f.deliver_all();
  const size_t stranded = unfinished(f);
  ASSERT_GT(stranded, 0u) << "nothing was stranded: the test lost no step";
  StallRedrive redrive(f.context(0));
  const int64_t now = now_ms(), stall_ms = static_cast<int64_t>(f.config().timeouts.stall_s * 1000);
  EXPECT_EQ(redrive.sweep(now), 0) << "nothing has stalled for timeouts.stall_s yet";
  EXPECT_EQ(redrive.sweep(now + stall_ms + 1000), static_cast<int>(stranded));
  EXPECT_EQ(redrive.sweep(now + stall_ms + 2000), 0) << "claimed: not re-driven again before another stall";
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_EQ(redrive.sweep(now + 10 * stall_ms), 0);
  EXPECT_EQ(f.context(0).redis->command({"ZCARD", keys::progress()}).as_integer(), 0)
      << "finished requests leave fleet:progress";
}

TEST(StageStall, ARequestWhoseLoopBackStepWasLostIsRedriven) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 20);
  ASSERT_GT(lose_records(f, 2, f.config().stage_topic(0)), 0u);
  expect_redriven(f);
}

TEST(StageStall, ARequestWhosePrefillWasLostIsRedrivenFromItsPrompt) {
  MemoryFleet f;
  submit(f, 40);
  ASSERT_GT(lose_records(f, 0, f.config().stage_topic(1)), 0u);
  expect_redriven(f);
}

TEST(StageStall, ARequestWhoseReplayRequestWasLostIsRedriven) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 20);
  f.restart_stage(1);  // its caches gone: its next steps ask stage 0 for a replay...
  ASSERT_GT(lose_records(f, 1, f.config().stage_topic(0)), 0u);  // ...which is lost
  expect_redriven(f);
  // What the recovery cost, timed from the re-drive: stage 1 rebuilt its caches, the tail
  // published each request's next token.
  EXPECT_EQ(f.processor(1).stats().recoveries, static_cast<int64_t>(kPrompts.size()));
  EXPECT_GT(f.processor(1).stats().recovery_ms_max, 0);
  const std::string exposed = f.context(2).metrics->registry.expose();
  EXPECT_NE(exposed.find("fleet_recovery_seconds_count{phase=\"next_token\"} 3"), std::string::npos) << exposed;
}

TEST(StageStall, ACancelWhoseReleaseWasLostIsSentAgain) {
  MemoryFleet f;
  submit(f, 40);
  run_until_tokens(f, 10);
  f.publish(f.config().control_topic(), "r0", R"({"id": "r0", "cancel": true})");
  ASSERT_GT(lose_records(f, 0, f.config().stage_topic(1)), 0u);  // the release with other steps
  f.deliver_all();
  ASSERT_EQ(outcomes(f)["r0"].terminals, 0) << "the cancel's release was not lost";
  StallRedrive redrive(f.context(0));
  EXPECT_GE(redrive.sweep(now_ms() + static_cast<int64_t>(f.config().timeouts.stall_s * 1000) + 1000), 1);
  f.deliver_all();
  auto got = outcomes(f);
  EXPECT_EQ(got["r0"].terminals, 1);
  EXPECT_EQ(got["r0"].finish_reason, "cancelled");
  for (const char* id : {"r1", "r2"}) {
    EXPECT_EQ(got[id].terminals, 1) << id;
    EXPECT_EQ(got[id].text, stories_reference(kPrompts[id[1] - '0'], 40).text) << id;
  }
}

// Redis may lose its last second of writes, a request's end among them: a re-drive then brings
// back a request whose terminal event is out. The tail finds that event and records the end
// again instead of sampling past it.
TEST(StageStall, ARedriveOfARequestWhoseEndRedisLostPublishesNothing) {
  MemoryFleet f;
  submit(f, 40);
  f.deliver_all();
  expect_exact(f, 40);
  RedisClient& redis = *f.context(0).redis;
  redis.hset(keys::request("r0"), {{"status", "running"}, {"finish_reason", ""}});
  redis.command({"ZADD", keys::progress(), "0", "r0"});
  const size_t events = f.results_log().size();
  StallRedrive redrive(f.context(0));
  EXPECT_EQ(redrive.sweep(now_ms()), 1);
  f.deliver_all();
  EXPECT_EQ(f.results_log().size(), events) << "something more was published for r0";
  expect_exact(f, 40);
  auto rec = f.requests().load("r0");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->status, RequestStatus::Done);
  EXPECT_EQ(rec->finish_reason, stories_reference(kPrompts[0], 40).finish_reason);
  EXPECT_EQ(redis.command({"ZCARD", keys::progress()}).as_integer(), 0);
}

// The same before the first token: a request cancelled during its prefill, whose end Redis then
// lost, is re-driven; the last stage, which holds nothing of it, checks the results topic and
// records the end again instead of sampling token 0 (the re-drive's replay, when the cancel mark
// was lost too) or ending it a second time (the re-drive's repeated cancel).
TEST(StageStall, ARedriveOfARequestThatEndedBeforeItsFirstTokenPublishesNothing) {
  for (const bool cancel_mark_lost : {true, false}) {
    SCOPED_TRACE(cancel_mark_lost ? "the cancel mark lost too: replayed" : "cancelled again");
    MemoryFleet f;
    f.publish(f.config().prompts_topic(), "c0", prompt_record("c0", kPrompts[0], 40));
    f.deliver_once();  // stage 0 admits it and sends its prefill
    f.publish(f.config().control_topic(), "c0", R"({"id": "c0", "cancel": true})");
    f.deliver_all();
    auto got = outcomes(f);
    ASSERT_EQ(got["c0"].terminals, 1);
    ASSERT_EQ(got["c0"].finish_reason, "cancelled");
    ASSERT_TRUE(got["c0"].tokens.empty()) << "the cancel came after the first token";
    RedisClient& redis = *f.context(0).redis;
    redis.hset(keys::request("c0"), {{"status", "queued"}, {"finish_reason", ""}});  // its end lost
    if (cancel_mark_lost) redis.command({"HDEL", keys::request("c0"), "cancel_requested_ms"});
    redis.command({"ZADD", keys::progress(), "0", "c0"});
    const size_t events = f.results_log().size();
    f.restart_stage(2);  // and the last stage holds nothing of it
    StallRedrive redrive(f.context(0));
    EXPECT_EQ(redrive.sweep(now_ms()), 1);
    f.deliver_all();
    EXPECT_EQ(f.results_log().size(), events) << "something more was published for c0";
    auto rec = f.requests().load("c0");
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->status, RequestStatus::Done);
    EXPECT_EQ(rec->finish_reason, "cancelled");
    EXPECT_TRUE(rec->generated.empty());
    EXPECT_EQ(redis.command({"ZCARD", keys::progress()}).as_integer(), 0);
  }
}

// The last stage records a request's end in Redis, then dies before its terminal event is
// delivered (chaos seed 2 lost one request so). The batch read again by its successor finds no
// cache there, and stage 0 replays nothing for an ended request: nothing would publish the end.
// It stays in the progress index until its end is known delivered, so a re-drive has the last
// stage check the results topic and publish it.
TEST(StageStall, AnEndLostWithTheLastStageIsPublishedAfterAStall) {
  MemoryFleet f;
  submit(f, 40);
  auto done_pending = [&] {
    for (const MemoryOutbox::Record& r : static_cast<MemoryOutbox&>(*f.context(2).outbox).pending)
      if (r.topic == f.config().results_topic() && r.key == "r0" && r.value.find("\"done\"") != std::string::npos)
        return true;
    return false;
  };
  for (int round = 0; round < 200 && !done_pending(); ++round) ASSERT_TRUE(f.deliver_once());
  ASSERT_TRUE(done_pending()) << "r0 never ended";
  ASSERT_EQ(f.requests().load("r0")->status, RequestStatus::Done);
  f.restart_stage(2, true);  // dies with r0's done event undelivered (and those of the others,
                             // which end in the same batch)
  f.deliver_all();
  const size_t lost = unfinished(f);
  ASSERT_GE(lost, 1u);
  ASSERT_EQ(outcomes(f)["r0"].terminals, 0) << "r0's end was published without a re-drive";
  EXPECT_EQ(f.context(0).redis->command({"ZCARD", keys::progress()}).as_integer(), static_cast<long long>(lost))
      << "the requests whose ends were not delivered are left in fleet:progress, no other";
  StallRedrive redrive(f.context(0));
  const int64_t now = now_ms(), stall_ms = static_cast<int64_t>(f.config().timeouts.stall_s * 1000);
  // The first check cannot read the results topic (the broker away): nothing is published, and
  // the requests stay in the index for the next re-drive.
  static_cast<MemoryOutbox&>(*f.context(2).outbox).scans_fail = true;
  EXPECT_EQ(redrive.sweep(now + stall_ms + 1000), static_cast<int>(lost));
  f.deliver_all();
  EXPECT_EQ(outcomes(f)["r0"].terminals, 0) << "published without knowing what the results topic holds";
  EXPECT_EQ(f.context(0).redis->command({"ZCARD", keys::progress()}).as_integer(), static_cast<long long>(lost));
  static_cast<MemoryOutbox&>(*f.context(2).outbox).scans_fail = false;
  EXPECT_EQ(redrive.sweep(now + 2 * stall_ms + 2000), static_cast<int>(lost));
  f.deliver_all();
  expect_exact(f, 40);
  EXPECT_EQ(outcomes(f)["r0"].finish_reason, stories_reference(kPrompts[0], 40).finish_reason);
  EXPECT_EQ(f.context(0).redis->command({"ZCARD", keys::progress()}).as_integer(), 0);
}

}  // namespace
}  // namespace fleet::test
