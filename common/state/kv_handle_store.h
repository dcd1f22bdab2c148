#pragma once
// KV cache handles in Redis: fleet:kv:<id> (HASH), field = stage index, value = JSON
// {"worker": ..., "epoch": ..., "cached_len": ...}: which worker holds the KV cache of
// the request for that stage. The hash expires with the request (RequestStore::finish).
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "state/redis_client.h"

namespace fleet {

struct KvHandle {
  std::string worker;      // worker id (fleet:worker:<id>)
  int64_t epoch = 0;       // the worker's cache epoch (bumped when it loses its caches)
  int64_t cached_len = 0;  // positions held in the cache
  bool operator==(const KvHandle&) const = default;
};

class KvHandleStore {
 public:
  // orphan_ttl: the lifetime of handles written for a request that does not exist (it
  // expired, or was never recorded), so that they cannot stay forever.
  explicit KvHandleStore(RedisClient& redis, std::chrono::milliseconds orphan_ttl = std::chrono::hours(1))
      : redis_(redis), orphan_ttl_(orphan_ttl) {}

  // Writes the handle for one stage. When the request already has a TTL (finished),
  // the KV hash gets the same remaining TTL, so a late write cannot outlive it; when
  // the request does not exist, it gets orphan_ttl.
  void set(const std::string& request_id, int stage, const KvHandle& handle);
  // set() for several requests in one round trip (a batch's).
  void set_many(int stage, const std::vector<std::pair<std::string, KvHandle>>& handles);
  std::optional<KvHandle> get(const std::string& request_id, int stage);
  std::map<int, KvHandle> get_all(const std::string& request_id);
  // Returns whether a handle was there.
  bool remove(const std::string& request_id, int stage);
  void remove_all(const std::string& request_id);

 private:
  // kSetScript's keys and arguments for one handle (set, set_many).
  RedisClient::ScriptCall set_call(const std::string& request_id, int stage, const KvHandle& handle) const;
  RedisClient& redis_;
  std::chrono::milliseconds orphan_ttl_;
};

}  // namespace fleet
