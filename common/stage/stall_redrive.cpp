#include "stage/stall_redrive.h"

#include <algorithm>
#include <functional>

#include "stage/steps.h"
#include "stage/worker_identity.h"

namespace fleet {

namespace {
constexpr size_t kClaimLimit = 256;  // per sweep; the rest wait for the next one
}

StallRedrive::StallRedrive(StageContext& ctx)
    : ctx_(ctx), nonce_(static_cast<uint32_t>(std::hash<std::string>{}(ctx.worker_id + "/redrive") ^ ctx.epoch)) {}

int64_t StallRedrive::interval_ms() const {
  return std::max<int64_t>(1000, static_cast<int64_t>(ctx_.config.timeouts.stall_s * 1000 / 4));
}

int StallRedrive::sweep(int64_t now_ms) {
  const auto stall = std::chrono::milliseconds(static_cast<int64_t>(ctx_.config.timeouts.stall_s * 1000));
  int redriven = 0;
  for (const std::string& id : ctx_.requests->claim_stalled(now_ms, stall, kClaimLimit)) {
    std::optional<RequestRecord> rec;
    try {
      rec = ctx_.requests->load(id);
    } catch (const RedisUnavailable&) {
      throw;
    } catch (const RedisError& e) {  // a request whose state cannot be read: nothing can drive it
      ctx_.log_at(log::Level::Warn, id, "stalled request %s cannot be re-driven: %s", id.c_str(), e.what());
      ctx_.requests->forget_progress({id});
      continue;
    }
    const bool ended = rec && (rec->status == RequestStatus::Done || rec->status == RequestStatus::Error);
    if (!rec || (!ended && rec->prompt_tokens.empty())) {  // gone, or nothing to compute from
      ctx_.requests->forget_progress({id});
      continue;
    }
    if (ended || rec->cancel_requested_ms) {
      // Ended, but the worker that ended it died before its terminal event was known delivered;
      // or cancelled, and the cancel's release was lost. A cancel release down the pipeline: the
      // last stage publishes the terminal event if the results topic lacks it, or ends the request.
      ActivationMsg cancel = release_message(id, true);
      ctx_.send_to_stage(0, cancel);
      ctx_.metrics->requests_redriven.inc();
      if (ended)
        ctx_.log_at(log::Level::Warn, id, "request %s ended, but its end was not known delivered within %.0f s "
                    "(timeouts.stall_s): asking the last stage to check the results topic", id.c_str(),
                    ctx_.config.timeouts.stall_s);
      else
        ctx_.log_at(log::Level::Warn, id, "cancelled request %s did not end within %.0f s (timeouts.stall_s): "
                    "cancelling again", id.c_str(), ctx_.config.timeouts.stall_s);
      ++redriven;
      continue;
    }
    // The step that would come next: the last generated token's position, sampling the next
    // index; with no token out yet, the whole prompt, sampling index 0.
    const int prompt = static_cast<int>(rec->prompt_tokens.size());
    const int generated = static_cast<int>(rec->generated.size());
    ActivationMsg next;
    next.set_request_id(id);
    next.set_start_pos(generated > 0 ? prompt + generated - 1 : 0);
    next.set_n_tokens(generated > 0 ? 1 : prompt);
    next.set_sample(true);
    next.set_generation_index(static_cast<uint32_t>(generated));
    uint32_t nonce = nonce_++;
    if (nonce == 0) nonce = nonce_++;
    ActivationMsg ask = replay_request(next, next.start_pos(), nonce);
    ask.set_recovery_started_us(now_us());
    ctx_.send_to_stage(0, ask);
    ctx_.metrics->requests_redriven.inc();
    ctx_.log_at(log::Level::Warn, id,
                "request %s made no progress for %.0f s (timeouts.stall_s): asking for its step at position %d again",
                id.c_str(), ctx_.config.timeouts.stall_s, next.start_pos());
    ++redriven;
  }
  return redriven;
}

}  // namespace fleet
