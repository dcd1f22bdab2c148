#pragma once
// A fingerprint of a stage engine's numerics: a fixed small forward pass (two sequences, five
// tokens, at positions 0..3 and 0) through the engine's own layers, kernels, norms and softmax,
// and the head where the stage has it, hashed bit for bit. Two workers with the same weights
// and the same probe compute the same bits, whatever CPU or kernel variant they run; replicas
// of a stage compare it before joining (stage/stage_worker.cpp).
#include <string>

#include "engine/stage_engine.h"

namespace fleet {

std::string numerics_probe(StageEngine& engine);  // 16 hex digits

}  // namespace fleet
