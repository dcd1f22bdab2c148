#pragma once
// Every Redis key the fleet uses is built here, and only here (see docs/redis-schema.md).
#include <string>
#include <string_view>

namespace fleet::keys {

inline constexpr std::string_view kPrefix = "fleet:";

// HASH: one request's state (status, model, params, prompt, prompt_tokens, timestamps...).
inline std::string request(std::string_view id) { return std::string(kPrefix) + "req:" + std::string(id); }
// LIST: the generated token ids of a request, one element (decimal) per token, in order.
inline std::string request_tokens(std::string_view id) { return request(id) + ":tokens"; }
// ZSET: the requests not finished yet, member = request id, score = when it last made progress
// (admitted, a token stored, re-driven; Unix ms). Stage 0 re-drives those stalled past
// timeouts.stall_s (common/stage/stall_redrive.h).
inline std::string progress() { return std::string(kPrefix) + "progress"; }
// HASH: KV cache handles of a request, field = stage index, value = {worker, epoch, cached_len}.
inline std::string kv(std::string_view id) { return std::string(kPrefix) + "kv:" + std::string(id); }
// HASH with a TTL refreshed by heartbeats: one live worker.
inline std::string worker(std::string_view worker_id) { return std::string(kPrefix) + "worker:" + std::string(worker_id); }
// ZSET: index of workers, member = worker id, score = heartbeat expiry time (ms, Redis clock).
inline std::string workers_index() { return std::string(kPrefix) + "workers"; }
// HASH: a model's weight manifest, field "layer:<n>" = weight hash hex.
inline std::string manifest(std::string_view model) { return std::string(kPrefix) + "manifest:" + std::string(model); }
inline std::string manifest_field(int layer) { return "layer:" + std::to_string(layer); }

}  // namespace fleet::keys
