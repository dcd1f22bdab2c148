#pragma once
// What the parts of a stage worker share: its config, identity, model, outbox and Redis
// stores. Owned by StageWorker (or a test); the processor, intake and tail borrow it.
#include <memory>
#include <optional>
#include <string>

#include "bus/consumer.h"
#include "chat/chat.h"
#include "config/deployment_config.h"
#include "contracts/prompt_request.h"
#include "engine/stage_engine.h"
#include "grammar/tool_call_grammar.h"
#include "log/log.h"
#include "stage/outbox.h"
#include "stage/stage_metrics.h"
#include "stage/stage_fingerprints.h"
#include "state/kv_handle_store.h"
#include "state/redis_client.h"
#include "state/request_store.h"
#include "tokenizer/tokenizer.h"
#include "wire/activation_codec.h"

namespace fleet {

struct StageContext {
  DeploymentConfig config;
  int stage = 0;
  bool is_first = false, is_last = false;
  std::string worker_id;
  uint64_t epoch = 0;             // microseconds at start: a restarted worker has a new epoch
  std::string model_fingerprint;  // hash of the stage's layer hashes
  std::string numerics_probe;     // engine/numerics_probe.h: replicas must agree
  std::unique_ptr<StageEngine> engine;
  std::unique_ptr<Tokenizer> tokenizer;  // stage 0 and the last stage
  std::unique_ptr<Outbox> outbox;
  std::unique_ptr<RedisClient> redis;
  std::unique_ptr<RequestStore> requests;
  std::unique_ptr<KvHandleStore> kv_handles;
  std::unique_ptr<StageFingerprints> fingerprints;  // what each stage's messages must carry
  // What the parts count (GET /metrics of the worker; docs/metrics.md). The worker replaces it
  // with one labelled with its model and stage.
  std::unique_ptr<StageMetrics> metrics = std::make_unique<StageMetrics>();
  // Requests this worker ended (their terminal event produced) since the worker last took the
  // list: once the outbox has delivered that event they leave fleet:progress
  // (StageWorker::confirm_delivered). If the worker dies first, they stay there, and the stall
  // re-drive has the last stage check the results topic for their end.
  std::vector<std::string> ended_undelivered;

  // Publishes an activation message to stage k's topic, chunked below the broker limit.
  void send_to_stage(int k, ActivationMsg& msg);
  // Publishes the steps one batch computed for stage k as peers (batch_id, batch_steps), and
  // empties `steps`.
  void send_peers_to_stage(int k, std::vector<ActivationMsg>& steps);
  uint64_t batches_sent = 0;  // numbers the batches sent as peers (batch_id)
  // Error event on the results topic, the request's state in Redis set to error, and a
  // release down the pipeline; does nothing for a request that already finished. Throws
  // RedisUnavailable (publishing nothing) when Redis cannot be reached.
  void fail_request(const std::string& id, const ContractError& error);
  // The model's chat template (model.chat_template, else the model's own or a built-in family:
  // chat_template_for), found on first use; throws std::runtime_error when there is none.
  const ChatTemplate& chat_template();
  // Whether that template renders tools, and the format the model calls them in
  // (tools/tool_calls.h), decided once; tool_call_format throws std::runtime_error when the
  // template's format is not one fleet reads.
  bool chat_template_renders_tools();
  ToolCallFormat tool_call_format();
  // A dead-letter record for a consumed record that could not be processed (keyed by `key`).
  void dead_letter(const bus::Message& record, const std::string& key, const ContractError& error);
  // A release message into stage 0: every stage drops its KV cache for the request.
  void send_release(const std::string& id);
  // One log line (common/log/log.h) with this worker's id: log() at info level, log_at() at a
  // level and about a request (the "request" field of JSON lines; "" = none).
  void log(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  void log_at(log::Level level, const std::string& request_id, const char* fmt, ...) const
      __attribute__((format(printf, 4, 5)));

 private:
  std::optional<ChatTemplate> chat_template_;
  std::optional<bool> renders_tools_;
  std::optional<ToolCallFormat> tool_call_format_;
};

}  // namespace fleet
