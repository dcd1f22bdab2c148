#pragma once
// Steps: the unit of work that travels through the stages (one request, a run of positions).
// Building them (prefill, replay), and choosing which ready steps run together in a batch.
//
// The replay protocol (full description: docs/replay.md):
//   * A stage that receives a step starting past the positions it caches (after a crash, a
//     rebalance, a restart, an eviction) cannot compute it. Stage k > 0 drops it and sends
//     a replay request to stage 0 (replay_request(step, cached)); stage 0 handles its own
//     shortfall the same way without the round trip.
//   * Stage 0 reads the request's tokens from Redis (prompt + generated so far) and emits
//     replay steps for positions [min(from, its cached length), end): ordinary steps with
//     token ids, chunked like a prefill, the last one carrying the lost step's sample flag
//     and generation index. Every stage on the way recomputes them (a step truncates the
//     cache at its start), which batch-invariant kernels make bit-identical to what was
//     lost; the stage that lacked the cache rebuilds it, and the request continues.
//   * Ordering: a request's messages share one Kafka key, so on every stage topic the replay
//     steps queue behind what came earlier and before what comes later for that request; one
//     step per request runs per batch. A request has one step in flight while decoding, so a
//     replay races with nothing but stale duplicates, which the last stage drops (it samples
//     each generation index once).
//   * An interrupted replay is an ordinary lost step: whichever stage lacks the cache next
//     asks again. Only a request whose Redis state is gone fails (kv_cache_missing).
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "wire/activation_codec.h"

namespace fleet {

struct Step {
  ActivationMsg msg;
  std::vector<float> hidden;  // stage > 0: the rows received (f32)
};

// Step ids: original steps use their start position; replay steps put a nonzero nonce in the
// high 32 bits, so a stage that saw the original step does not take a replay for a duplicate.
uint64_t step_id(uint32_t nonce, int start_pos);

// Steps carrying tokens[from, end) of a request, at most `chunk` tokens each; the last one asks
// the last stage to sample (when `sample`) the token at generation_index.
std::vector<ActivationMsg> token_steps(const std::string& request_id, const std::vector<int32_t>& tokens, int from,
                                       int end, int chunk, bool sample, uint32_t generation_index, uint32_t nonce);

// The prefill of a prompt: token_steps over the whole prompt, sampling generation index 0.
std::vector<ActivationMsg> prefill_steps(const std::string& request_id, const std::vector<int32_t>& prompt, int chunk);

// The control message by which a stage that caches only `cached` positions asks stage 0 to
// replay positions [cached, end of `lost`) and then continue as `lost` would have. Its step id
// carries the nonce (stage 0 must not take it for a copy of the lost step).
ActivationMsg replay_request(const ActivationMsg& lost, int cached, uint32_t nonce);

// A release of the request (every stage drops its cache, passing it on from stage 0 to the last);
// with `cancel`, the last stage ends the request "cancelled" unless it has ended.
ActivationMsg release_message(const std::string& request_id, bool cancel);

// Takes the next batch from the front of `ready`: at most one step per request (a request's
// next step needs this one's KV entries) and at most max_rows rows (a single larger step runs
// alone). Steps left behind keep their order.
std::vector<Step> take_batch(std::deque<Step>& ready, int max_rows);

}  // namespace fleet
