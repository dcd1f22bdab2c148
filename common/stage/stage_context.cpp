#include "stage/stage_context.h"

#include <cstdarg>
#include <cstdio>

#include "contracts/result_events.h"
#include "stage/steps.h"
#include "stage/worker_identity.h"
#include "tools/tool_calls.h"

namespace fleet {

namespace {
std::string vformat(const char* fmt, va_list ap) {
  char buf[2048];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  return buf;
}
}  // namespace

const ChatTemplate& StageContext::chat_template() {
  if (!chat_template_) {
    if (!config.model.chat_template.empty()) {
      chat_template_ = chat_template_from_file(config.model.chat_template, *tokenizer);
    } else {
      // The model's own Jinja template (GGUF, tokenizer_config.json, chat_template.jinja beside
      // the tokenizer or model files), else a built-in family; an error if neither fits.
      chat_template_ = chat_template_for(*tokenizer, config.model.tokenizer.empty() ? config.model.path : config.model.tokenizer);
    }
  }
  return *chat_template_;
}

bool StageContext::chat_template_renders_tools() {
  if (!renders_tools_) renders_tools_ = template_renders_tools(chat_template());
  return *renders_tools_;
}

ToolCallFormat StageContext::tool_call_format() {
  if (!tool_call_format_) tool_call_format_ = fleet::tool_call_format(chat_template(), chat_template_renders_tools());
  return *tool_call_format_;
}

void StageContext::log(const char* fmt, ...) const {
  if (!log::enabled(log::Level::Info)) return;
  va_list ap;
  va_start(ap, fmt);
  const std::string text = vformat(fmt, ap);
  va_end(ap);
  log::write(log::Level::Info, worker_id, "", text);
}

void StageContext::log_at(log::Level level, const std::string& request_id, const char* fmt, ...) const {
  if (!log::enabled(level)) return;
  va_list ap;
  va_start(ap, fmt);
  const std::string text = vformat(fmt, ap);
  va_end(ap);
  log::write(level, worker_id, request_id, text);
}

void StageContext::send_to_stage(int k, ActivationMsg& msg) {
  msg.set_model_fingerprint(model_fingerprint);
  msg.set_source_stage(stage);
  msg.set_source_worker(worker_id);
  msg.set_source_epoch(epoch);
  msg.set_sent_us(now_us());
  for (const std::string& chunk : encode_activation_chunks(msg, config.kafka.max_message_bytes))
    outbox->produce(config.stage_topic(k), msg.request_id(), chunk);
}

void StageContext::send_peers_to_stage(int k, std::vector<ActivationMsg>& steps) {
  const uint64_t id = ++batches_sent;
  for (ActivationMsg& m : steps) {
    if (steps.size() > 1) {
      m.set_batch_id(id);
      m.set_batch_steps(static_cast<uint32_t>(steps.size()));
    }
    send_to_stage(k, m);
  }
  steps.clear();
}

void StageContext::fail_request(const std::string& id, const ContractError& error) {
  log_at(log::Level::Warn, id, "request %s failed: %s: %s", id.c_str(), error.code.c_str(), error.message.c_str());
  if (is_valid_request_id(id)) {
    try {
      std::optional<RequestRecord> rec = requests->load(id);
      // A late duplicate step of a finished request: its outcome stands, nothing to report.
      if (rec && (rec->status == RequestStatus::Done || rec->status == RequestStatus::Error)) return;
      if (!rec) {
        RequestRecord fresh;
        fresh.id = id;
        fresh.model = config.model.name;
        requests->create(fresh);
      }
      requests->set_error(id, error.code + ": " + error.message);
    } catch (const RedisUnavailable&) {
      throw;  // the failure is recorded and published once Redis is back (the batch is retried)
    } catch (const std::exception& e) {
      log_at(log::Level::Warn, id, "could not record the error of %s in Redis: %s", id.c_str(), e.what());
    }
  }
  metrics->request_failed(error.code);
  outbox->produce(config.results_topic(), id, error_event(id, error));
  if (!is_valid_request_id(id)) return;
  ended_undelivered.push_back(id);
  send_release(id);  // free whatever the stages cached for it
}

void StageContext::dead_letter(const bus::Message& record, const std::string& key, const ContractError& error) {
  metrics->dead_letters.labels({error.code}).inc();
  DeadLetterSource src{record.topic, record.partition, record.offset, record.key, record.value};
  outbox->produce(config.dead_letter_topic(), key, dead_letter_record(src, error, worker_id, now_ms()));
}

void StageContext::send_release(const std::string& id) {
  ActivationMsg release = release_message(id, false);
  send_to_stage(0, release);
}

}  // namespace fleet
