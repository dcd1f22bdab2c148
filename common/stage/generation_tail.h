#pragma once
// The last stage's end of a step: sample the next token from the logits, publish it to the
// results topic, record it in Redis, and either loop it back to stage 0 as the next decode
// step or finish the request (done event, Redis status, release message down the pipeline).
#include <map>
#include <memory>
#include <span>
#include <string>

#include "generate/token_stream.h"
#include "sampling/sampler.h"
#include "stage/stage_context.h"

namespace fleet {

class GenerationTail {
 public:
  explicit GenerationTail(StageContext& ctx);
  void on_logits(const ActivationMsg& step, std::span<const float> logits);
  void forget(const std::string& id) { active_.erase(id); }
  size_t active_requests() const { return active_.size(); }

 private:
  struct Active {  // per-request sampling state, rebuilt from Redis on first use
    SamplingParams sampling;
    int prompt_tokens = 0;
    int64_t created_ms = 0, first_token_us = 0;
    std::unique_ptr<TokenStream> stream;
  };
  Active* lookup(const std::string& id);
  void finish(const std::string& id, Active& a, const std::string& reason);

  StageContext& ctx_;
  std::vector<int32_t> stop_tokens_;
  std::map<std::string, std::unique_ptr<Active>> active_;
};

}  // namespace fleet
