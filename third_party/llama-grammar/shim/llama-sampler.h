// Not part of the archive: src/llama-grammar.cpp includes llama-sampler.h but uses nothing of it.
#pragma once
