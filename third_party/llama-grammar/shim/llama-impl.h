// Not part of the archive: llama.cpp's logging and assertion macros for src/llama-grammar.cpp.
// Errors are dropped here: fleet's wrapper (common/grammar) reports a grammar that fails to
// build as an error of its own. A failed assertion throws instead of aborting, so a grammar
// that reaches an impossible state fails its request, not the worker.
#pragma once
#include <stdexcept>
#include <string>

#define LLAMA_LOG_ERROR(...) ((void)0)
#define LLAMA_LOG_DEBUG(...) ((void)0)
#define GGML_ASSERT(x)                                                                  \
  do {                                                                                  \
    if (!(x)) throw std::logic_error(std::string("grammar engine: assertion failed: ") + #x); \
  } while (0)
#define GGML_ABORT(msg) throw std::logic_error(std::string("grammar engine: ") + (msg))
