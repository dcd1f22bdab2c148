#pragma once
// Unicode Normalization Form C, as Hugging Face's NFC normalizer applies it.
#include <string>
#include <string_view>

namespace fleet::tok {

// text must be valid UTF-8.
std::string nfc_normalize(std::string_view text);

}  // namespace fleet::tok
