// The activation decoder and Reassembler (common/wire/activation_codec.h). The input is a
// sequence of operations on one Reassembler (small completed-step memory, so eviction is
// reached): each starts with an op byte, then
//   0..5  add a serialized chunk (u16 length + bytes), at a clock advanced by the op byte;
//   6     drop_expired;   7  forget_request of the last request id seen.
// A Complete message must validate, and its payload must decode; decoded tensors must
// re-encode into chunks that reassemble to the same payload.
#include <chrono>
#include <cstdlib>
#include <string>

#include "fuzz_util.h"
#include "wire/activation_codec.h"

namespace {

void check_complete(const fleet::ActivationMsg& m) {
  if (!fleet::validate_activation(m).empty()) std::abort();  // Complete implies valid
  try {
    if (m.has_token_ids()) {
      (void)fleet::token_ids_of(m);
      return;
    }
    const std::vector<float> v = fleet::tensor_to_f32(m);
    if (v.size() > (1u << 16)) return;  // keep the round trip cheap
    const auto chunks = fleet::encode_activation_chunks(m, 20000);  // budget 10000 bytes per chunk
    fleet::Reassembler fresh;
    fleet::Reassembler::Result last;
    for (const std::string& c : chunks) last = fresh.add(c);
    if (last.status != fleet::Reassembler::Status::Complete ||
        last.message->tensor().data() != m.tensor().data())
      std::abort();
  } catch (const fleet::WireError&) {
    // a valid message whose header alone is too big for 10000 bytes: fine
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fleet::fuzz::Input in(data, size);
  fleet::Reassembler r(fleet::Reassembler::Options{.completed_memory = 3});
  auto now = fleet::Reassembler::Clock::time_point{};
  std::string last_id;
  for (int ops = 0; !in.empty() && ops < 64; ++ops) {
    const uint8_t op = in.byte();
    now += std::chrono::milliseconds(op);
    switch (op % 8) {
      case 6:
        r.drop_expired(std::chrono::milliseconds(500), now);
        break;
      case 7:
        r.forget_request(last_id);
        break;
      default: {
        const fleet::Reassembler::Result res = r.add(in.bytes(), now);
        last_id = res.request_id;
        if ((res.status == fleet::Reassembler::Status::Complete) != res.message.has_value()) std::abort();
        if (res.status == fleet::Reassembler::Status::Invalid && res.error.empty()) std::abort();
        if (res.message) check_complete(*res.message);
      }
    }
  }
  return 0;
}
