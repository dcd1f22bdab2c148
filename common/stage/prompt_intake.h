#pragma once
// Stage 0's intake of the prompts topic: validate the JSON record, tokenize it, record the
// request in Redis, and send its prefill steps (prompt chunks) to stage 0's activation topic.
// Bad input becomes an error event on the results topic plus a dead-letter record; it never
// stops the worker and never affects other requests.
#include <optional>

#include "bus/consumer.h"
#include "stage/stage_context.h"

namespace fleet {

class PromptIntake {
 public:
  explicit PromptIntake(StageContext& ctx) : ctx_(ctx) {}
  // The id of the request it admitted (recorded in Redis, prefill steps sent); nullopt when the
  // record was rejected or was a redelivery of a request admitted before.
  std::optional<std::string> handle(const bus::Message& record);

 private:
  void reject(const bus::Message& record, const std::string& id, const ContractError& error);
  std::optional<std::string> rejected(const bus::Message& record, const std::string& id, const ContractError& error);
  std::vector<int32_t> tokenize(const PromptRequest& req);
  StageContext& ctx_;
};

}  // namespace fleet
