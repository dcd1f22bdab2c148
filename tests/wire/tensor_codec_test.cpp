// Scalar and tensor conversions of the wire format.
#include <cmath>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>

#include "wire/activation_codec.h"

namespace fleet {
namespace {

float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(WireScalars, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between bf16 1.0 (even) and 1.0078125 (odd): ties go to even.
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808000u)), 0x3f80);
  // Halfway above an odd mantissa rounds up to even.
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f818000u)), 0x3f82);
  // Just above halfway rounds up.
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-2.5f)), -2.5f);
}

TEST(WireScalars, F16RoundTripsRepresentableValuesAndRoundsToNearestEven) {
  for (float v : {0.0f, 1.0f, -1.0f, 0.5f, 65504.0f, -65504.0f, 6.103515625e-05f /* 2^-14 */,
                  5.960464477539063e-08f /* 2^-24, smallest subnormal */, 3.0f / 1024.0f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v) << v;
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds to infinity
  EXPECT_EQ(f32_to_f16(1e9f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e9f), 0xfc00);
  // 1 + 2^-11 is halfway between 1.0 (even) and 1 + 2^-10: ties to even.
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
  // Subnormals: 2^-25 is halfway between 0 and 2^-24 -> 0; 1.5 * 2^-24 -> 2 * 2^-24.
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);
  EXPECT_EQ(f32_to_f16(1.5f * 0x1p-24f), 0x0002);
  EXPECT_EQ(f32_to_f16(0x1p-30f), 0x0000);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
}

TEST(WireScalars, F16MatchesExhaustiveRoundTrip) {
  // Every finite half value survives half -> float -> half exactly.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) continue;  // NaN payloads are not preserved bit-exactly
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(WireTensor, F32RoundTripIsExact) {
  std::vector<float> v(3 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.37f - 2.0f;
  ActivationMsg m;
  set_tensor_from_f32(m, v.data(), 3, 5, wire::Tensor::F32);
  EXPECT_EQ(m.n_tokens(), 3);
  ASSERT_EQ(m.tensor().shape_size(), 2);
  EXPECT_EQ(m.tensor().shape(1), 5);
  EXPECT_EQ(m.tensor().data().size(), v.size() * 4);
  // Raw little-endian bytes: the first element's bytes are those of -2.0f.
  const unsigned char* b = reinterpret_cast<const unsigned char*>(m.tensor().data().data());
  EXPECT_EQ(b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24), 0xc0000000u);
  EXPECT_EQ(tensor_to_f32(m), v);
}

TEST(WireTensor, Bf16AndF16AreCloseAndHalfTheSize) {
  std::vector<float> v(4 * 8);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<float>(i)) * 3.0f;
  for (WireDType d : {wire::Tensor::BF16, wire::Tensor::F16}) {
    ActivationMsg m;
    set_tensor_from_f32(m, v.data(), 4, 8, d);
    EXPECT_EQ(m.tensor().data().size(), v.size() * 2);
    auto back = tensor_to_f32(m);
    ASSERT_EQ(back.size(), v.size());
    const float tol = d == wire::Tensor::BF16 ? 3.0f / 128 : 3.0f / 1024;
    for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(back[i], v[i], tol) << wire_dtype_name(d);
  }
}

TEST(WireTensor, BadTensorsGiveClearErrors) {
  ActivationMsg m;
  m.set_request_id("r1");
  float x = 1;
  EXPECT_THROW(set_tensor_from_f32(m, &x, 0, 1, wire::Tensor::F32), WireError);
  EXPECT_THROW(set_tensor_from_f32(m, &x, 1, 1, wire::Tensor::DTYPE_UNSPECIFIED), WireError);
  EXPECT_THROW(tensor_to_f32(m), WireError);  // no tensor
  set_tensor_from_f32(m, &x, 1, 1, wire::Tensor::F32);
  m.mutable_tensor()->mutable_data()->push_back('x');
  try {
    tensor_to_f32(m);
    FAIL() << "expected WireError";
  } catch (const WireError& e) {
    EXPECT_NE(std::string(e.what()).find("5 bytes of data but its dtype and shape give 4"), std::string::npos)
        << e.what();
  }
}

TEST(WireTensor, TokenIds) {
  ActivationMsg m;
  set_token_ids(m, {1, 2, 3});
  EXPECT_EQ(m.n_tokens(), 3);
  EXPECT_EQ(token_ids_of(m), (std::vector<int32_t>{1, 2, 3}));
  ActivationMsg t;
  EXPECT_THROW(token_ids_of(t), WireError);
}

TEST(WireTensor, DtypeNames) {
  EXPECT_EQ(parse_wire_dtype("BF16"), wire::Tensor::BF16);
  EXPECT_EQ(parse_wire_dtype("f32"), wire::Tensor::F32);
  EXPECT_EQ(parse_wire_dtype("f16"), wire::Tensor::F16);
  EXPECT_THROW(parse_wire_dtype("q8_0"), WireError);
  EXPECT_EQ(wire_dtype_size(wire::Tensor::F16), 2u);
  EXPECT_EQ(wire_dtype_size(wire::Tensor::DTYPE_UNSPECIFIED), 0u);
}

}  // namespace
}  // namespace fleet
