// Chunking of activation messages under the broker's limit, and reassembly in any order.
#include <algorithm>
#include <random>

#include <gtest/gtest.h>

#include "wire/activation_codec.h"

namespace fleet {
namespace {

using namespace std::chrono_literals;

ActivationMsg tensor_msg(const std::string& id, uint64_t step, int rows, int cols, WireDType dtype) {
  ActivationMsg m;
  m.set_request_id(id);
  m.set_step(step);
  m.set_start_pos(7);
  m.set_sample(true);
  m.set_generation_index(3);
  m.set_model_fingerprint("sha256:abc");
  m.set_source_stage(1);
  m.set_source_worker("w-1");
  auto* span = m.add_spans();
  span->set_stage("stage.0");
  span->set_start_us(100);
  span->set_end_us(250);
  std::vector<float> v(static_cast<size_t>(rows) * cols);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 1000) * 0.001f - 0.5f;
  set_tensor_from_f32(m, v.data(), rows, cols, dtype);
  return m;
}

TEST(WireChunking, SmallMessageIsOneChunk) {
  ActivationMsg m = tensor_msg("r1", 0, 2, 16, wire::Tensor::F32);
  auto chunks = encode_activation_chunks(m, 1000000);
  ASSERT_EQ(chunks.size(), 1u);
  ActivationMsg back;
  ASSERT_TRUE(back.ParseFromString(chunks[0]));
  EXPECT_EQ(back.chunk_count(), 1u);
  EXPECT_EQ(back.chunk_index(), 0u);
  EXPECT_EQ(back.total_bytes(), 2u * 16 * 4);
  EXPECT_EQ(validate_activation(back), "");
  EXPECT_EQ(back.tensor().data(), m.tensor().data());
}

TEST(WireChunking, LargePrefillOfTheOneBModelFitsTheDefaultKafkaLimit) {
  // A 1,500-token prompt of a dim-2048 model in f32: 12 MB of hidden states.
  ActivationMsg m = tensor_msg("long-prompt", 5, 1500, 2048, wire::Tensor::F32);
  const size_t limit = 1000000;
  auto chunks = encode_activation_chunks(m, limit);
  EXPECT_EQ(chunks.size(), 13u);
  for (const auto& c : chunks) EXPECT_LE(c.size(), limit - kRecordHeadroomBytes);
  Reassembler r;
  std::mt19937 rng(42);
  std::shuffle(chunks.begin(), chunks.end(), rng);
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    auto res = r.add(chunks[i]);
    ASSERT_EQ(res.status, Reassembler::Status::Incomplete) << res.error;
    EXPECT_EQ(res.request_id, "long-prompt");
    EXPECT_EQ(res.step, 5u);
  }
  EXPECT_EQ(r.pending_steps(), 1u);
  auto res = r.add(chunks.back());
  ASSERT_EQ(res.status, Reassembler::Status::Complete) << res.error;
  ASSERT_TRUE(res.message.has_value());
  EXPECT_EQ(validate_activation(*res.message), "");
  EXPECT_EQ(res.message->tensor().data(), m.tensor().data());
  EXPECT_EQ(res.message->start_pos(), 7);
  EXPECT_EQ(res.message->generation_index(), 3u);
  EXPECT_TRUE(res.message->sample());
  EXPECT_EQ(res.message->spans_size(), 1);
  EXPECT_EQ(res.message->model_fingerprint(), "sha256:abc");
  EXPECT_EQ(r.pending_steps(), 0u);
  EXPECT_EQ(r.pending_bytes(), 0u);
}

TEST(WireChunking, EveryChunkStaysUnderSmallLimits) {
  for (size_t limit : {size_t{2048}, size_t{5000}, size_t{40000}, size_t{70001}}) {
    ActivationMsg m = tensor_msg("r", 1, 9, 301, wire::Tensor::BF16);
    auto chunks = encode_activation_chunks(m, limit);
    EXPECT_GT(chunks.size(), limit < 10000 ? 1u : 0u);
    Reassembler r;
    Reassembler::Result last;
    for (auto it = chunks.rbegin(); it != chunks.rend(); ++it) {  // reverse order
      EXPECT_LE(it->size(), chunk_budget_bytes(limit)) << limit;
      last = r.add(*it);
    }
    ASSERT_EQ(last.status, Reassembler::Status::Complete) << last.error;
    EXPECT_EQ(tensor_to_f32(*last.message), tensor_to_f32(m));
  }
}

TEST(WireChunking, TokenIdsAreNotChunkedAndTooLargeIsAnError) {
  ActivationMsg m;
  m.set_request_id("t");
  set_token_ids(m, std::vector<int32_t>(100, 5));
  auto chunks = encode_activation_chunks(m, 1000000);
  ASSERT_EQ(chunks.size(), 1u);
  Reassembler r;
  auto res = r.add(chunks[0]);
  ASSERT_EQ(res.status, Reassembler::Status::Complete) << res.error;
  EXPECT_EQ(token_ids_of(*res.message), std::vector<int32_t>(100, 5));
  set_token_ids(m, std::vector<int32_t>(5000, 100000));
  EXPECT_THROW(encode_activation_chunks(m, 8000), WireError);
}

TEST(WireChunking, InvalidMessagesAreRefusedWhenEncoding) {
  ActivationMsg m = tensor_msg("r", 0, 2, 4, wire::Tensor::F32);
  m.set_n_tokens(3);  // shape[0] is 2
  try {
    encode_activation_chunks(m, 1000000);
    FAIL();
  } catch (const WireError& e) {
    EXPECT_NE(std::string(e.what()).find("shape[0] is 2 but n_tokens is 3"), std::string::npos) << e.what();
  }
  ActivationMsg empty;
  empty.set_request_id("x");
  empty.set_n_tokens(1);
  EXPECT_THROW(encode_activation_chunks(empty, 1000000), WireError);  // no payload
  ActivationMsg no_id = tensor_msg("", 0, 1, 4, wire::Tensor::F32);
  EXPECT_THROW(encode_activation_chunks(no_id, 1000000), WireError);
  ActivationMsg big_header = tensor_msg("r", 0, 1, 4, wire::Tensor::F32);
  big_header.set_source_worker(std::string(3000, 'w'));
  EXPECT_THROW(encode_activation_chunks(big_header, 4000), WireError);
}

TEST(WireReassembly, DuplicatesAreToleratedAndCompletedStepsAreRemembered) {
  ActivationMsg m = tensor_msg("dup", 2, 8, 200, wire::Tensor::F32);
  auto chunks = encode_activation_chunks(m, 4096);
  ASSERT_GE(chunks.size(), 3u);
  Reassembler r;
  EXPECT_EQ(r.add(chunks[0]).status, Reassembler::Status::Incomplete);
  EXPECT_EQ(r.add(chunks[0]).status, Reassembler::Status::Duplicate);
  for (size_t i = 1; i + 1 < chunks.size(); ++i) EXPECT_EQ(r.add(chunks[i]).status, Reassembler::Status::Incomplete);
  EXPECT_EQ(r.add(chunks[1]).status, Reassembler::Status::Duplicate);
  EXPECT_EQ(r.add(chunks.back()).status, Reassembler::Status::Complete);
  // Redelivery of the whole step after completion: every chunk is a duplicate.
  for (const auto& c : chunks) EXPECT_EQ(r.add(c).status, Reassembler::Status::Duplicate);
  EXPECT_EQ(r.pending_steps(), 0u);
  // After forgetting the request, the same step is reassembled again.
  r.forget_request("dup");
  Reassembler::Result last;
  for (const auto& c : chunks) last = r.add(c);
  EXPECT_EQ(last.status, Reassembler::Status::Complete);
}

TEST(WireReassembly, WithoutCompletedMemoryARedeliveredStepCompletesAgain) {
  ActivationMsg m = tensor_msg("again", 0, 1, 8, wire::Tensor::F32);
  auto chunks = encode_activation_chunks(m, 1000000);
  Reassembler r(Reassembler::Options{.completed_memory = 0});
  EXPECT_EQ(r.add(chunks[0]).status, Reassembler::Status::Complete);
  EXPECT_EQ(r.add(chunks[0]).status, Reassembler::Status::Complete);
}

TEST(WireReassembly, CompletedMemoryIsBounded) {
  Reassembler r(Reassembler::Options{.completed_memory = 2});
  std::vector<std::string> first;
  for (uint64_t step = 0; step < 3; ++step) {
    auto chunks = encode_activation_chunks(tensor_msg("b", step, 1, 4, wire::Tensor::F32), 1000000);
    if (step == 0) first = chunks;
    EXPECT_EQ(r.add(chunks[0]).status, Reassembler::Status::Complete);
  }
  // Step 0 was evicted (memory of 2): it completes again.
  EXPECT_EQ(r.add(first[0]).status, Reassembler::Status::Complete);
}

TEST(WireReassembly, InterleavedStepsAndRequests) {
  auto a = encode_activation_chunks(tensor_msg("a", 0, 4, 300, wire::Tensor::F32), 3000);
  auto b = encode_activation_chunks(tensor_msg("b", 0, 4, 300, wire::Tensor::F16), 3000);
  auto a1 = encode_activation_chunks(tensor_msg("a", 1, 4, 300, wire::Tensor::F32), 3000);
  Reassembler r;
  int complete = 0;
  for (size_t i = 0; i < std::max({a.size(), b.size(), a1.size()}); ++i)
    for (auto* v : {&a, &b, &a1})
      if (i < v->size()) {
        auto res = r.add((*v)[i]);
        ASSERT_NE(res.status, Reassembler::Status::Invalid) << res.error;
        complete += res.status == Reassembler::Status::Complete;
      }
  EXPECT_EQ(complete, 3);
}

TEST(WireReassembly, BadChunksAreInvalidWithClearErrors) {
  Reassembler r;
  auto garbage = r.add(std::string("\xff\xff\xff\xff garbage", 12));
  EXPECT_EQ(garbage.status, Reassembler::Status::Invalid);
  EXPECT_NE(garbage.error.find("not a valid ActivationMsg"), std::string::npos) << garbage.error;

  ActivationMsg m = tensor_msg("bad", 4, 4, 100, wire::Tensor::F32);
  auto chunks = encode_activation_chunks(m, 1000);
  ASSERT_GE(chunks.size(), 2u);
  ActivationMsg c0;
  ASSERT_TRUE(c0.ParseFromString(chunks[0]));
  EXPECT_EQ(r.add(c0).status, Reassembler::Status::Incomplete);

  ActivationMsg wrong_count;
  ASSERT_TRUE(wrong_count.ParseFromString(chunks[1]));
  wrong_count.set_chunk_count(wrong_count.chunk_count() + 1);
  auto res = r.add(wrong_count);
  EXPECT_EQ(res.status, Reassembler::Status::Invalid);
  EXPECT_NE(res.error.find("chunk_count"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find("request 'bad', step 4"), std::string::npos) << res.error;

  ActivationMsg wrong_dtype;
  ASSERT_TRUE(wrong_dtype.ParseFromString(chunks[1]));
  wrong_dtype.mutable_tensor()->set_dtype(wire::Tensor::BF16);
  res = r.add(wrong_dtype);
  EXPECT_EQ(res.status, Reassembler::Status::Invalid);
  EXPECT_NE(res.error.find("total_bytes"), std::string::npos) << res.error;  // bf16 halves the size

  ActivationMsg past_end;
  ASSERT_TRUE(past_end.ParseFromString(chunks[1]));
  past_end.set_chunk_offset(m.total_bytes() - 2);
  res = r.add(past_end);
  EXPECT_EQ(res.status, Reassembler::Status::Invalid);
  EXPECT_NE(res.error.find("runs past total_bytes"), std::string::npos) << res.error;

  ActivationMsg index_out_of_range;
  ASSERT_TRUE(index_out_of_range.ParseFromString(chunks[1]));
  index_out_of_range.set_chunk_index(index_out_of_range.chunk_count());
  res = r.add(index_out_of_range);
  EXPECT_EQ(res.status, Reassembler::Status::Invalid);
  EXPECT_NE(res.error.find("is not below chunk_count"), std::string::npos) << res.error;

  ActivationMsg no_dtype;
  ASSERT_TRUE(no_dtype.ParseFromString(chunks[1]));
  no_dtype.mutable_tensor()->set_dtype(wire::Tensor::DTYPE_UNSPECIFIED);
  res = r.add(no_dtype);
  EXPECT_EQ(res.status, Reassembler::Status::Invalid);
  EXPECT_NE(res.error.find("DTYPE_UNSPECIFIED"), std::string::npos) << res.error;

  ActivationMsg huge;
  ASSERT_TRUE(huge.ParseFromString(chunks[1]));
  huge.mutable_tensor()->set_shape(1, int64_t{1} << 40);
  res = r.add(huge);
  EXPECT_EQ(res.status, Reassembler::Status::Invalid);
  EXPECT_NE(res.error.find("exceeds"), std::string::npos) << res.error;

  ActivationMsg too_many_chunks;
  ASSERT_TRUE(too_many_chunks.ParseFromString(chunks[0]));
  too_many_chunks.set_request_id("other");
  too_many_chunks.set_chunk_count(static_cast<uint32_t>(m.total_bytes()) + 1);
  res = r.add(too_many_chunks);
  EXPECT_EQ(res.status, Reassembler::Status::Invalid);
  EXPECT_NE(res.error.find("chunks are never empty"), std::string::npos) << res.error;
  EXPECT_EQ(r.pending_steps(), 1u);

  // The valid remaining chunks still complete the step.
  Reassembler::Result last;
  for (size_t i = 1; i < chunks.size(); ++i) last = r.add(chunks[i]);
  EXPECT_EQ(last.status, Reassembler::Status::Complete) << last.error;
}

TEST(WireReassembly, InconsistentOffsetsAreDetectedAtCompletion) {
  ActivationMsg m = tensor_msg("gap", 0, 2, 100, wire::Tensor::F32);
  auto chunks = encode_activation_chunks(m, 600);
  ASSERT_GE(chunks.size(), 3u);
  Reassembler r;
  ActivationMsg c1;
  ASSERT_TRUE(c1.ParseFromString(chunks[1]));
  c1.mutable_tensor()->mutable_data()->pop_back();  // one byte short: a gap before chunk 2
  r.add(chunks[0]);
  r.add(c1);
  Reassembler::Result last;
  for (size_t i = 2; i < chunks.size(); ++i) last = r.add(chunks[i]);
  EXPECT_EQ(last.status, Reassembler::Status::Invalid);
  EXPECT_NE(last.error.find("chunk 2 starts at byte"), std::string::npos) << last.error;
  EXPECT_EQ(r.pending_steps(), 0u);
  EXPECT_EQ(r.pending_bytes(), 0u);
}

TEST(WireReassembly, IncompleteStepsExpire) {
  auto chunks = encode_activation_chunks(tensor_msg("slow", 9, 4, 300, wire::Tensor::F32), 2000);
  auto other = encode_activation_chunks(tensor_msg("fresh", 1, 4, 300, wire::Tensor::F32), 2000);
  Reassembler r;
  const auto t0 = Reassembler::Clock::time_point{} + 1h;
  r.add(chunks[0], t0);
  r.add(other[0], t0 + 20s);
  EXPECT_EQ(r.pending_steps(), 2u);
  EXPECT_GT(r.pending_bytes(), 0u);
  EXPECT_TRUE(r.drop_expired(30s, t0 + 29s).empty());
  auto dropped = r.drop_expired(30s, t0 + 31s);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].request_id, "slow");
  EXPECT_EQ(dropped[0].step, 9u);
  EXPECT_EQ(dropped[0].chunks_received, 1u);
  EXPECT_EQ(dropped[0].chunk_count, chunks.size());
  EXPECT_EQ(r.pending_steps(), 1u);
  r.forget_request("fresh");
  EXPECT_EQ(r.pending_steps(), 0u);
  EXPECT_EQ(r.pending_bytes(), 0u);
}

}  // namespace
}  // namespace fleet
