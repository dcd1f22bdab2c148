#pragma once
// Request state in Redis: fleet:req:<id> (HASH) and fleet:req:<id>:tokens (LIST of the
// generated token ids). See docs/redis-schema.md.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "contracts/request_params.h"
#include "state/redis_client.h"

namespace fleet {

enum class RequestStatus { Queued, Running, Done, Error };
const char* to_string(RequestStatus s);
RequestStatus request_status_from_string(const std::string& s);  // throws RedisError

struct RequestRecord {
  std::string id;
  RequestStatus status = RequestStatus::Queued;
  std::string model;
  RequestParams params;  // stored as JSON in the field "params"
  // Where the prompt record was read, "<topic>:<partition>:<offset>": a record delivered again
  // after a crash is recognised by it (and is not a reused id).
  std::string source;
  // Exactly one of these is set by the producer: a plain text prompt or chat messages.
  std::string prompt;
  nlohmann::json messages;  // null unless the request came with "messages"
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> generated;  // loaded from the tokens LIST
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  int64_t finished_ms = 0;  // 0 while not finished
  std::string finish_reason;
  std::string error;
  int64_t cancel_requested_ms = 0;  // a cancel record arrived (the last stage ends the request)
};

struct RequestStoreOptions {
  // Finished (done or error) requests, their token list and their KV handles expire
  // after this long.
  std::chrono::milliseconds finished_ttl{std::chrono::hours(1)};
};

class RequestStore {
 public:
  explicit RequestStore(RedisClient& redis, RequestStoreOptions options = {});

  // Records a new request (status, model, params, prompt, prompt tokens, timestamps).
  // Returns false and changes nothing when the request already exists (a redelivered
  // prompt). created_ms/updated_ms default to now when 0.
  bool create(const RequestRecord& record);
  // Sets status and updated_ms. Throws when the request does not exist.
  void set_status(const std::string& id, RequestStatus status);

  // Appends the token at position `index` of the generated sequence (0-based).
  // Idempotent: appending the same token at an index already stored is a no-op, so a
  // retried or redelivered step cannot duplicate a token. Throws when index skips ahead
  // of the stored length, or when a different token is already stored at index.
  void append_generated_token(const std::string& id, int64_t index, int32_t token);
  // The same for several consecutive tokens starting at `index`.
  void append_generated_tokens(const std::string& id, int64_t index, const std::vector<int32_t>& tokens);
  // One token for each of several requests (a batch's), in one round trip. Per entry: "" when
  // stored, else why not (the reasons append_generated_token throws for), so that one
  // request's problem fails only that request.
  struct TokenAppend {
    std::string id;
    int64_t index = 0;
    int32_t token = 0;
  };
  std::vector<std::string> append_tokens_of_requests(const std::vector<TokenAppend>& appends);
  int64_t generated_count(const std::string& id);

  // Everything needed to replay the request: the hash and the generated tokens, read
  // atomically. nullopt when the request does not exist (never created, or expired).
  std::optional<RequestRecord> load(const std::string& id);

  // status=done, finish_reason, finished_ms; then the request, its tokens and its KV
  // handles expire after finished_ttl.
  void finish(const std::string& id, const std::string& finish_reason);
  // Marks that a cancel arrived (field cancel_requested_ms): from then on nothing replays the
  // request, so no stage rebuilds a cache for it. Returns false when the request does not exist.
  bool request_cancel(const std::string& id);
  // status=error, error message, finished_ms; expires like finish().
  void set_error(const std::string& id, const std::string& message);

  // Stall detection (fleet:progress, a ZSET of the unfinished requests scored by their last
  // progress: admission and every token stored; an ended request stays, scored at its end, until
  // its worker knows the terminal event delivered and calls forget_progress). Returns the
  // requests whose last progress is older than `stall` at `now` (at most `limit`), claimed: their
  // score becomes `now`, so that another caller finds them only after another stall.
  std::vector<std::string> claim_stalled(int64_t now, std::chrono::milliseconds stall, size_t limit);
  // Takes requests out of the progress index (ended and their terminal events delivered, or
  // found gone when claimed).
  void forget_progress(const std::vector<std::string>& ids);

  const RequestStoreOptions& options() const { return options_; }

 private:
  void append_chunk(const std::string& id, int64_t index, const std::vector<int32_t>& tokens);
  void finalize(const std::string& id, RequestStatus status, const std::string& field, const std::string& value);

  RedisClient& redis_;
  RequestStoreOptions options_;
};

int64_t now_ms();  // wall clock, milliseconds since the Unix epoch

}  // namespace fleet
