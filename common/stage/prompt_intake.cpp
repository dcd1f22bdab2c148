#include "stage/prompt_intake.h"

#include <cstdio>
#include <filesystem>
#include <random>

#include "contracts/result_events.h"
#include "generate/generate.h"
#include "stage/worker_identity.h"

namespace fleet {

namespace fs = std::filesystem;

std::vector<ActivationMsg> prefill_steps(const std::string& request_id, const std::vector<int32_t>& prompt, int chunk) {
  std::vector<ActivationMsg> steps;
  const int n = static_cast<int>(prompt.size());
  for (int pos = 0; pos < n; pos += chunk) {
    const int len = std::min(chunk, n - pos);
    ActivationMsg m;
    m.set_request_id(request_id);
    m.set_step(static_cast<uint64_t>(pos));  // a step is identified by its first position
    m.set_start_pos(pos);
    m.set_n_tokens(len);
    m.set_sample(pos + len == n);
    m.set_generation_index(0);
    set_token_ids(m, std::vector<int32_t>(prompt.begin() + pos, prompt.begin() + pos + len));
    steps.push_back(std::move(m));
  }
  return steps;
}

std::vector<int32_t> PromptIntake::tokenize(const PromptRequest& req) {
  if (!req.is_chat()) return encode_prompt(*ctx_.tokenizer, *req.prompt);
  if (!chat_template_) {  // read once, on the first chat request (a model may have none)
    std::string where = ctx_.config.model.tokenizer.empty() ? ctx_.config.model.path : ctx_.config.model.tokenizer;
    if (!fs::is_directory(where)) where = fs::path(where).parent_path().string();
    chat_template_ = ChatTemplate::from_tokenizer_config(where);
  }
  const ChatTemplate& tmpl = *chat_template_;
  std::vector<ChatMessage> messages;
  for (const auto& m : req.messages) messages.push_back({m.role, m.content});
  EncodeOptions opt;
  opt.allow_special = true;  // the template writes its special tokens as text
  return ctx_.tokenizer->encode(tmpl.render(messages, true), opt);
}

void PromptIntake::reject(const bus::Message& record, const std::string& id, const ContractError& error) {
  std::fprintf(stderr, "[%s] prompt %s rejected: %s: %s\n", ctx_.worker_id.c_str(), id.c_str(), error.code.c_str(),
               error.message.c_str());
  DeadLetterSource src{record.topic, record.partition, record.offset, record.key, record.value};
  ctx_.producer->produce(ctx_.config.dead_letter_topic(), id, dead_letter_record(src, error, ctx_.worker_id, now_ms()));
  ctx_.producer->produce(ctx_.config.results_topic(), id, error_event(id, error));
  if (!is_valid_request_id(id)) return;
  // Recorded in Redis as a failed request, unless the id belongs to an existing request,
  // whose state is left alone.
  RequestRecord rec;
  rec.id = id;
  rec.status = RequestStatus::Error;
  rec.model = ctx_.config.model.name;
  if (ctx_.requests->create(rec)) ctx_.requests->set_error(id, error.code + ": " + error.message);
}

void PromptIntake::handle(const bus::Message& record) {
  std::optional<std::string_view> key;
  if (!record.key.empty()) key = record.key;
  PromptParseResult parsed = parse_prompt_record(record.value, key);
  if (!parsed.ok()) return reject(record, parsed.id, *parsed.error);
  const PromptRequest& req = *parsed.request;
  std::vector<int32_t> prompt;
  try {
    prompt = tokenize(req);
  } catch (const std::exception& e) {
    return reject(record, req.id, {error_code::kInvalidRequest, e.what()});
  }
  if (prompt.empty())
    return reject(record, req.id, {error_code::kInvalidRequest, "the prompt encodes to no tokens"});
  const int context = ctx_.engine->config().max_seq_len;
  if (static_cast<int>(prompt.size()) >= context)
    return reject(record, req.id,
                  {error_code::kPromptTooLong, "prompt has " + std::to_string(prompt.size()) +
                                                   " tokens; the model's context is " + std::to_string(context)});
  RequestRecord rec;
  rec.id = req.id;
  rec.status = RequestStatus::Queued;
  rec.model = ctx_.config.model.name;
  rec.params = req.to_json();
  rec.params.erase("id");
  rec.params.erase("prompt");
  rec.params.erase("messages");
  if (!req.seed) rec.params["seed"] = static_cast<uint64_t>(std::random_device{}()) << 16;  // recorded: replayable
  if (req.is_chat()) rec.messages = req.to_json()["messages"];
  else rec.prompt = *req.prompt;
  rec.prompt_tokens = prompt;
  if (!ctx_.requests->create(rec)) {
    // The id exists: a redelivered record of a request in flight (its steps were sent
    // already: nothing to do), or an id used again after its request finished.
    std::optional<RequestRecord> old = ctx_.requests->load(req.id);
    if (old && (old->status == RequestStatus::Done || old->status == RequestStatus::Error))
      reject(record, req.id, {error_code::kDuplicateId, "request id '" + req.id + "' was already used (status " +
                                                            to_string(old->status) +
                                                            "); ids stay reserved for timeouts.finished_request_ttl_s"});
    return;
  }
  for (ActivationMsg& step : prefill_steps(req.id, prompt, ctx_.config.batching.prefill_chunk))
    ctx_.send_to_stage(0, step);
}

}  // namespace fleet
