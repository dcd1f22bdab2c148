#pragma once
// Activation messages on the per-stage topics: chunking to fit the broker's message limit,
// reassembly of chunks that arrive in any order (at-least-once delivery), validation, and
// conversion of float tensors to and from the wire (f32, bf16 or f16, little-endian).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "activation.pb.h"
#include "util/half_float.h"  // f32 <-> bf16 / f16 conversions used on the wire

namespace fleet {

using ActivationMsg = fleet::wire::ActivationMsg;
using WireDType = fleet::wire::Tensor::DType;

// Thrown for a message that breaks the wire contract (encoding side and tensor helpers).
class WireError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Headroom left under the broker's limit for the record's key, headers and batch overhead.
inline constexpr size_t kRecordHeadroomBytes = 16 * 1024;
// Largest tensor a message may carry, and the most chunks a step may be split into; larger
// values on the wire are rejected before anything is allocated.
inline constexpr uint64_t kMaxTensorBytes = uint64_t{4} << 30;
inline constexpr uint32_t kMaxChunkCount = 1u << 16;

// Bytes per element of a wire dtype (0 for DTYPE_UNSPECIFIED or an unknown value).
size_t wire_dtype_size(WireDType t);
const char* wire_dtype_name(WireDType t);
// "f32", "bf16", "f16" (case-insensitive) -> dtype; throws WireError otherwise.
WireDType parse_wire_dtype(const std::string& s);

// The budget for one serialized chunk: max_message_bytes - kRecordHeadroomBytes, or half of
// max_message_bytes when that is too small for the headroom.
size_t chunk_budget_bytes(size_t max_message_bytes);

// Splits msg into serialized records, each at most chunk_budget_bytes(max_message_bytes).
// Sets chunk_index / chunk_count / chunk_offset / total_bytes (the values in msg are ignored).
// Only tensor data is split; a token-id payload or a header too large for one record throws
// WireError. msg itself must pass validate_activation (ignoring its chunk fields).
std::vector<std::string> encode_activation_chunks(const ActivationMsg& msg, size_t max_message_bytes);

// Checks a complete (reassembled or single-chunk) message: request id, payload, dtype, shape
// versus n_tokens and total_bytes, chunk fields. Returns "" when valid, else a description.
std::string validate_activation(const ActivationMsg& msg);

// Collects the chunks of each (request_id, step) and hands back the whole message when the
// last one arrives. Never throws on bad input: a bad chunk yields Status::Invalid and an error.
class Reassembler {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    // How many recently completed (request_id, step) keys are remembered so that a redelivered
    // chunk of a completed step reports Status::Duplicate instead of starting it again.
    // 0 disables the memory: redelivered steps are reassembled and returned again.
    size_t completed_memory = 4096;
  };

  enum class Status {
    Incomplete,  // stored; more chunks of this step are due
    Complete,    // message holds the whole step
    Duplicate,   // this chunk (or its completed step) was seen already; nothing to do
    Invalid,     // error says why; the chunk was dropped
  };

  struct Result {
    Status status = Status::Invalid;
    std::string request_id;  // as far as it could be read ("" for undecodable bytes)
    uint64_t step = 0;
    std::optional<ActivationMsg> message;  // set for Complete
    std::string error;                     // set for Invalid
  };

  struct Expired {
    std::string request_id;
    uint64_t step = 0;
    uint32_t chunks_received = 0;
    uint32_t chunk_count = 0;
  };

  Reassembler() : Reassembler(Options{}) {}
  explicit Reassembler(Options options);

  Result add(std::string_view serialized_chunk, Clock::time_point now = Clock::now());
  Result add(const ActivationMsg& chunk, Clock::time_point now = Clock::now());

  // Drops incomplete steps whose first chunk arrived before now - max_age; returns them.
  std::vector<Expired> drop_expired(std::chrono::milliseconds max_age, Clock::time_point now = Clock::now());
  // Forgets everything about a request (e.g. when it finished or failed).
  void forget_request(const std::string& request_id);

  size_t pending_steps() const { return pending_.size(); }
  uint64_t pending_bytes() const { return pending_bytes_; }

 private:
  struct Pending {
    ActivationMsg header;  // the first chunk received, without its data
    std::vector<std::optional<std::string>> chunk_data;
    std::vector<uint64_t> chunk_offsets;
    uint32_t received = 0;
    Clock::time_point first_seen;
  };
  using Key = std::pair<std::string, uint64_t>;

  Result complete(const Key& key, Pending& p);
  void remember_completed(const Key& key);

  Options options_;
  std::map<Key, Pending> pending_;
  uint64_t pending_bytes_ = 0;
  std::map<Key, uint64_t> completed_;  // key -> completion sequence number
  std::map<uint64_t, Key> completed_order_;
  uint64_t completed_seq_ = 0;
};

// Tensor helpers. The host must be little-endian (static_assert in the implementation).

// Sets msg's payload to a [rows, cols] tensor of `values` encoded as `dtype` (bf16 and f16
// round to nearest even); also sets n_tokens = rows.
void set_tensor_from_f32(ActivationMsg& msg, const float* values, int64_t rows, int64_t cols, WireDType dtype);
// Decodes msg's complete tensor payload into floats (rows * cols values); throws WireError
// when the payload is not a consistent tensor.
std::vector<float> tensor_to_f32(const ActivationMsg& msg);
// Sets msg's payload to token ids; also sets n_tokens.
void set_token_ids(ActivationMsg& msg, const std::vector<int32_t>& ids);
std::vector<int32_t> token_ids_of(const ActivationMsg& msg);  // throws WireError if no token payload

}  // namespace fleet
