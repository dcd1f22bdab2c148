#pragma once
// Stage 0's guard against stranded requests. A request is driven by one step in flight at a
// time; if that step is lost (a record dropped by a producer after its message timeout, a replay
// request that died with its worker), nothing else would ever move the request. So every
// stage-0 worker, now and then, claims the unfinished requests that made no progress (no token
// stored, fleet:progress in Redis) for timeouts.stall_s and asks for each one's next step again:
// a replay request to stage 0's own topic, keyed by the request, so the worker owning the
// request's partition (fenced like any owner) runs it. The claim is atomic in Redis, so one
// worker re-drives a request once per stall however many stage-0 replicas sweep.
//
// A re-drive of a request that was only slow is harmless: the replay recomputes bit-identical
// KV entries, and the last stage samples each generation index once (docs/replay.md).
#include <cstdint>
#include <string>

#include "stage/stage_context.h"

namespace fleet {

class StallRedrive {
 public:
  explicit StallRedrive(StageContext& ctx);
  // Claims the requests stalled at now_ms and sends each its next step again; returns how many
  // were re-driven. Finished or vanished requests found in the index are taken out of it.
  // Throws RedisUnavailable (nothing claimed) when Redis cannot be reached.
  int sweep(int64_t now_ms);
  // How often a worker should sweep: a quarter of the stall, at least a second.
  int64_t interval_ms() const;

 private:
  void redrive(const std::string& id);

  StageContext& ctx_;
  uint32_t nonce_;
};

}  // namespace fleet
