// Chunking, validation and reassembly of activation messages.
#include "wire/activation_codec.h"

#include <algorithm>
#include <limits>
#include <type_traits>

namespace fleet {

namespace {

std::string key_text(const std::string& request_id, uint64_t step) {
  return "(request '" + request_id + "', step " + std::to_string(step) + ")";
}

// Bytes of a [shape] tensor of dtype, or an error. Overflow-safe; bounded by kMaxTensorBytes.
std::string tensor_bytes_of(const wire::Tensor& t, uint64_t& bytes) {
  const size_t elem = wire_dtype_size(t.dtype());
  if (elem == 0) return "tensor dtype is " + std::string(wire_dtype_name(t.dtype())) + " (expected F32, BF16 or F16)";
  if (t.shape_size() == 0) return "tensor shape is empty (expected [n_tokens, dim])";
  uint64_t n = elem;
  for (int i = 0; i < t.shape_size(); ++i) {
    const int64_t d = t.shape(i);
    if (d < 1) return "tensor shape[" + std::to_string(i) + "] is " + std::to_string(d) + " (must be >= 1)";
    if (static_cast<uint64_t>(d) > kMaxTensorBytes / n)
      return "tensor of this shape exceeds " + std::to_string(kMaxTensorBytes) + " bytes";
    n *= static_cast<uint64_t>(d);
  }
  bytes = n;
  return "";
}

// Checks everything but the chunk fields and the size of the data carried.
std::string validate_header_and_shape(const ActivationMsg& m, uint64_t& tensor_bytes) {
  if (m.request_id().empty()) return "request_id is empty";
  if (m.request_id().size() > 256) return "request_id is longer than 256 bytes";
  tensor_bytes = 0;
  if (m.release()) {  // a control message: no rows, no payload
    if (m.n_tokens() != 0 || m.payload_case() != ActivationMsg::PAYLOAD_NOT_SET)
      return "a release message carries no rows and no payload";
    return "";
  }
  if (m.replay_request()) {  // a control message: positions to replay, no rows, no payload
    if (m.n_tokens() != 0 || m.payload_case() != ActivationMsg::PAYLOAD_NOT_SET)
      return "a replay request carries no rows and no payload";
    if (m.start_pos() < 0 || m.replay_end() <= m.start_pos())
      return "a replay request needs 0 <= start_pos < replay_end (got " + std::to_string(m.start_pos()) + ", " +
             std::to_string(m.replay_end()) + ")";
    return "";
  }
  if (m.n_tokens() < 1) return "n_tokens is " + std::to_string(m.n_tokens()) + " (must be >= 1)";
  if (m.start_pos() < 0) return "start_pos is " + std::to_string(m.start_pos()) + " (must be >= 0)";
  tensor_bytes = 0;
  switch (m.payload_case()) {
    case ActivationMsg::kTokenIds: {
      if (m.token_ids().ids_size() != m.n_tokens())
        return "token_ids has " + std::to_string(m.token_ids().ids_size()) + " ids but n_tokens is " +
               std::to_string(m.n_tokens());
      for (int32_t id : m.token_ids().ids())
        if (id < 0) return "token_ids contains the negative id " + std::to_string(id);
      return "";
    }
    case ActivationMsg::kTensor: {
      std::string err = tensor_bytes_of(m.tensor(), tensor_bytes);
      if (!err.empty()) return err;
      if (m.tensor().shape(0) != m.n_tokens())
        return "tensor shape[0] is " + std::to_string(m.tensor().shape(0)) + " but n_tokens is " +
               std::to_string(m.n_tokens());
      return "";
    }
    default:
      return "message has no payload (neither token_ids nor tensor)";
  }
}

std::string validate_chunk_fields(const ActivationMsg& m) {
  if (m.chunk_count() < 1 || m.chunk_count() > kMaxChunkCount)
    return "chunk_count is " + std::to_string(m.chunk_count()) + " (must be 1.." + std::to_string(kMaxChunkCount) + ")";
  if (m.chunk_index() >= m.chunk_count())
    return "chunk_index " + std::to_string(m.chunk_index()) + " is not below chunk_count " +
           std::to_string(m.chunk_count());
  if (m.has_token_ids() && m.chunk_count() != 1) return "a token_ids payload cannot be chunked (chunk_count must be 1)";
  return "";
}

// The fields every chunk of one step must agree on; "" when a and b agree.
std::string header_mismatch(const ActivationMsg& a, const ActivationMsg& b) {
  auto diff = [](const char* field, const auto& x, const auto& y) {
    std::string sx, sy;
    if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::string>) {
      sx = "'" + x + "'";
      sy = "'" + y + "'";
    } else {
      sx = std::to_string(x);
      sy = std::to_string(y);
    }
    return std::string(field) + " " + sy + " (earlier chunks: " + sx + ")";
  };
  if (a.chunk_count() != b.chunk_count()) return diff("chunk_count", a.chunk_count(), b.chunk_count());
  if (a.total_bytes() != b.total_bytes()) return diff("total_bytes", a.total_bytes(), b.total_bytes());
  if (a.start_pos() != b.start_pos()) return diff("start_pos", a.start_pos(), b.start_pos());
  if (a.n_tokens() != b.n_tokens()) return diff("n_tokens", a.n_tokens(), b.n_tokens());
  if (a.sample() != b.sample()) return diff("sample", int{a.sample()}, int{b.sample()});
  if (a.generation_index() != b.generation_index())
    return diff("generation_index", a.generation_index(), b.generation_index());
  if (a.model_fingerprint() != b.model_fingerprint())
    return diff("model_fingerprint", a.model_fingerprint(), b.model_fingerprint());
  if (a.payload_case() != b.payload_case()) return "payload kind differs from earlier chunks";
  if (a.has_tensor()) {
    if (a.tensor().dtype() != b.tensor().dtype())
      return std::string("dtype ") + wire_dtype_name(b.tensor().dtype()) + " (earlier chunks: " +
             wire_dtype_name(a.tensor().dtype()) + ")";
    if (!std::equal(a.tensor().shape().begin(), a.tensor().shape().end(), b.tensor().shape().begin(),
                    b.tensor().shape().end()))
      return "tensor shape differs from earlier chunks";
  }
  return "";
}

size_t varint_max_bytes() { return 10; }

}  // namespace

size_t chunk_budget_bytes(size_t max_message_bytes) {
  return max_message_bytes > 2 * kRecordHeadroomBytes ? max_message_bytes - kRecordHeadroomBytes
                                                      : max_message_bytes / 2;
}

std::string validate_activation(const ActivationMsg& msg) {
  uint64_t tensor_bytes = 0;
  std::string err = validate_header_and_shape(msg, tensor_bytes);
  if (err.empty()) err = validate_chunk_fields(msg);
  if (!err.empty()) return err;
  if (msg.has_tensor()) {
    if (msg.total_bytes() != tensor_bytes)
      return "total_bytes is " + std::to_string(msg.total_bytes()) + " but dtype and shape give " +
             std::to_string(tensor_bytes);
    if (msg.tensor().data().size() != tensor_bytes)
      return "tensor data has " + std::to_string(msg.tensor().data().size()) + " bytes but dtype and shape give " +
             std::to_string(tensor_bytes);
    if (msg.chunk_offset() != 0) return "a complete message must have chunk_offset 0";
  }
  return "";
}

std::vector<std::string> encode_activation_chunks(const ActivationMsg& msg, size_t max_message_bytes) {
  uint64_t tensor_bytes = 0;
  std::string err = validate_header_and_shape(msg, tensor_bytes);
  if (err.empty() && msg.has_tensor() && msg.tensor().data().size() != tensor_bytes)
    err = "tensor data has " + std::to_string(msg.tensor().data().size()) + " bytes but dtype and shape give " +
          std::to_string(tensor_bytes);
  if (!err.empty()) throw WireError("activation " + key_text(msg.request_id(), msg.step()) + ": " + err);
  const size_t budget = chunk_budget_bytes(max_message_bytes);

  ActivationMsg header = msg;
  std::string data;
  if (header.has_tensor()) data.swap(*header.mutable_tensor()->mutable_data());
  // Chunk fields at their widest encodings, so that the measured header size is an upper bound.
  header.set_chunk_index(std::numeric_limits<uint32_t>::max());
  header.set_chunk_count(std::numeric_limits<uint32_t>::max());
  header.set_chunk_offset(std::numeric_limits<uint64_t>::max());
  header.set_total_bytes(std::numeric_limits<uint64_t>::max());
  // data's tag and length, plus the growth of the tensor's own length prefix.
  const size_t overhead = header.ByteSizeLong() + 1 + 2 * varint_max_bytes();
  if (overhead + 64 > budget)
    throw WireError("activation " + key_text(msg.request_id(), msg.step()) + ": header of " +
                    std::to_string(overhead) + " bytes does not fit a record budget of " + std::to_string(budget) +
                    " bytes (max_message_bytes " + std::to_string(max_message_bytes) + ")");
  const size_t per_chunk = budget - overhead;
  const uint64_t count = data.empty() ? 1 : (data.size() + per_chunk - 1) / per_chunk;
  if (count > kMaxChunkCount)
    throw WireError("activation " + key_text(msg.request_id(), msg.step()) + ": " + std::to_string(data.size()) +
                    " bytes would need " + std::to_string(count) + " chunks (at most " +
                    std::to_string(kMaxChunkCount) + ")");

  std::vector<std::string> out;
  out.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t offset = i * per_chunk;
    const size_t len = std::min<uint64_t>(per_chunk, data.size() - offset);
    header.set_chunk_index(static_cast<uint32_t>(i));
    header.set_chunk_count(static_cast<uint32_t>(count));
    header.set_chunk_offset(offset);
    header.set_total_bytes(data.size());
    if (header.has_tensor()) header.mutable_tensor()->set_data(data.data() + offset, len);
    std::string record;
    if (!header.SerializeToString(&record))
      throw WireError("activation " + key_text(msg.request_id(), msg.step()) + ": serialization failed");
    if (record.size() > budget)
      throw WireError("activation " + key_text(msg.request_id(), msg.step()) + ": record of " +
                      std::to_string(record.size()) + " bytes exceeds the budget of " + std::to_string(budget) +
                      (msg.has_token_ids() ? " (token_ids payloads are never chunked)" : ""));
    out.push_back(std::move(record));
  }
  return out;
}

Reassembler::Reassembler(Options options) : options_(options) {}

Reassembler::Result Reassembler::add(std::string_view serialized_chunk, Clock::time_point now) {
  ActivationMsg m;
  if (serialized_chunk.size() > std::numeric_limits<int>::max() ||
      !m.ParseFromArray(serialized_chunk.data(), static_cast<int>(serialized_chunk.size()))) {
    Result r;
    r.error = "not a valid ActivationMsg protobuf (" + std::to_string(serialized_chunk.size()) + " bytes)";
    return r;
  }
  return add(m, now);
}

Reassembler::Result Reassembler::add(const ActivationMsg& chunk, Clock::time_point now) {
  Result r;
  r.request_id = chunk.request_id();
  r.step = chunk.step();
  auto invalid = [&](const std::string& why) {
    r.status = Status::Invalid;
    r.error = "activation " + key_text(chunk.request_id(), chunk.step()) + " chunk " +
              std::to_string(chunk.chunk_index()) + "/" + std::to_string(chunk.chunk_count()) + ": " + why;
    return r;
  };
  uint64_t tensor_bytes = 0;
  std::string err = validate_header_and_shape(chunk, tensor_bytes);
  if (err.empty()) err = validate_chunk_fields(chunk);
  if (!err.empty()) return invalid(err);
  Key key{chunk.request_id(), chunk.step()};
  if (completed_.count(key)) {
    r.status = Status::Duplicate;
    return r;
  }
  if (chunk.has_tensor()) {
    if (chunk.total_bytes() != tensor_bytes)
      return invalid("total_bytes is " + std::to_string(chunk.total_bytes()) + " but dtype and shape give " +
                     std::to_string(tensor_bytes));
    if (chunk.chunk_count() > std::max<uint64_t>(tensor_bytes, 1))
      return invalid("chunk_count " + std::to_string(chunk.chunk_count()) + " exceeds total_bytes " +
                     std::to_string(tensor_bytes) + " (chunks are never empty)");
    const uint64_t len = chunk.tensor().data().size();
    if (chunk.chunk_offset() > tensor_bytes || len > tensor_bytes - chunk.chunk_offset())
      return invalid("data [" + std::to_string(chunk.chunk_offset()) + ", +" + std::to_string(len) +
                     ") runs past total_bytes " + std::to_string(tensor_bytes));
  }

  if (chunk.chunk_count() == 1) {
    err = validate_activation(chunk);
    if (!err.empty()) return invalid(err);
    r.status = Status::Complete;
    r.message = chunk;
    remember_completed(key);
    return r;
  }

  auto it = pending_.find(key);
  if (it == pending_.end()) {
    Pending p;
    p.header = chunk;
    p.header.mutable_tensor()->clear_data();
    p.chunk_data.resize(chunk.chunk_count());
    p.chunk_offsets.resize(chunk.chunk_count());
    p.first_seen = now;
    it = pending_.emplace(key, std::move(p)).first;
  } else {
    err = header_mismatch(it->second.header, chunk);
    if (!err.empty()) return invalid(err);
  }
  Pending& p = it->second;
  auto& slot = p.chunk_data[chunk.chunk_index()];
  if (slot) {
    r.status = Status::Duplicate;
    return r;
  }
  slot = chunk.tensor().data();
  p.chunk_offsets[chunk.chunk_index()] = chunk.chunk_offset();
  pending_bytes_ += slot->size();
  ++p.received;
  if (p.received < chunk.chunk_count()) {
    r.status = Status::Incomplete;
    return r;
  }
  return complete(key, p);
}

Reassembler::Result Reassembler::complete(const Key& key, Pending& p) {
  Result r;
  r.request_id = key.first;
  r.step = key.second;
  ActivationMsg msg = std::move(p.header);
  const uint32_t count = msg.chunk_count();
  const uint64_t total = msg.total_bytes();
  std::string data;
  std::string err;
  uint64_t expected_offset = 0;
  for (uint32_t i = 0; i < count && err.empty(); ++i) {
    if (p.chunk_offsets[i] != expected_offset)
      err = "chunk " + std::to_string(i) + " starts at byte " + std::to_string(p.chunk_offsets[i]) + ", expected " +
            std::to_string(expected_offset);
    expected_offset += p.chunk_data[i]->size();
  }
  if (err.empty() && expected_offset != total)
    err = "chunks carry " + std::to_string(expected_offset) + " bytes but total_bytes is " + std::to_string(total);
  if (err.empty()) {
    data.reserve(total);
    for (uint32_t i = 0; i < count; ++i) data += *p.chunk_data[i];
  }
  for (auto& c : p.chunk_data) pending_bytes_ -= c ? c->size() : 0;
  pending_.erase(key);
  if (!err.empty()) {
    r.status = Status::Invalid;
    r.error = "activation " + key_text(key.first, key.second) + ": " + err + " (step dropped)";
    return r;
  }
  msg.mutable_tensor()->set_data(std::move(data));
  msg.set_chunk_index(0);
  msg.set_chunk_offset(0);
  remember_completed(key);
  r.status = Status::Complete;
  r.message = std::move(msg);
  return r;
}

void Reassembler::remember_completed(const Key& key) {
  if (options_.completed_memory == 0) return;
  const uint64_t seq = completed_seq_++;
  completed_[key] = seq;
  completed_order_[seq] = key;
  while (completed_.size() > options_.completed_memory) {
    auto oldest = completed_order_.begin();
    completed_.erase(oldest->second);
    completed_order_.erase(oldest);
  }
}

std::vector<Reassembler::Expired> Reassembler::drop_expired(std::chrono::milliseconds max_age, Clock::time_point now) {
  std::vector<Expired> out;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (now - it->second.first_seen > max_age) {
      out.push_back({it->first.first, it->first.second, it->second.received, it->second.header.chunk_count()});
      for (auto& c : it->second.chunk_data) pending_bytes_ -= c ? c->size() : 0;
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

void Reassembler::forget_request(const std::string& request_id) {
  for (auto it = pending_.lower_bound({request_id, 0}); it != pending_.end() && it->first.first == request_id;) {
    for (auto& c : it->second.chunk_data) pending_bytes_ -= c ? c->size() : 0;
    it = pending_.erase(it);
  }
  for (auto it = completed_.lower_bound({request_id, 0}); it != completed_.end() && it->first.first == request_id;) {
    completed_order_.erase(it->second);
    it = completed_.erase(it);
  }
}

}  // namespace fleet
