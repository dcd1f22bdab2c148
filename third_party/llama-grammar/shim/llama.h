// Not part of the archive: the few llama.h types src/llama-grammar.{h,cpp} name, so the vendored
// sources compile verbatim without the rest of llama.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

typedef int32_t llama_token;

typedef struct llama_token_data {
  llama_token id;
  float logit;
  float p;
} llama_token_data;

typedef struct llama_token_data_array {
  llama_token_data* data;
  size_t size;
  int64_t selected;
  bool sorted;
} llama_token_data_array;
