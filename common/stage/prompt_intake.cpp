#include "stage/prompt_intake.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "contracts/result_events.h"
#include "generate/generate.h"
#include "stage/steps.h"
#include "stage/worker_identity.h"
#include "tools/tool_calls.h"

namespace fleet {

std::vector<int32_t> PromptIntake::tokenize(const PromptRequest& req) {
  if (!req.is_chat()) return encode_prompt(*ctx_.tokenizer, *req.prompt);
  const ChatTemplate& tmpl = ctx_.chat_template();
  if (req.tools_enabled()) ctx_.tool_call_format();  // refuses a template whose calls fleet cannot read
  std::vector<ChatMessage> messages;
  for (const auto& m : req.messages) messages.push_back(chat_message(m.role, m.content, m.fields));
  const bool tools_in_history = std::any_of(req.messages.begin(), req.messages.end(), [](const PromptMessage& m) {
    return m.role == "tool" || m.fields.contains("tool_calls");
  });
  const bool renders_tools = (req.tools_enabled() || tools_in_history) && ctx_.chat_template_renders_tools();
  ChatInput in = chat_input_with_tools(std::move(messages), req.tools_enabled() ? req.tools : nlohmann::json(), renders_tools);
  ChatRenderOptions opt;
  opt.add_generation_prompt = true;
  opt.tools = std::move(in.tools);
  EncodeOptions enc;
  enc.allow_special = true;  // the template writes its special tokens as text (bos_token included)
  return ctx_.tokenizer->encode(tmpl.render(in.messages, opt), enc);
}

namespace {
std::string source_of(const bus::Message& record) {
  return record.topic + ":" + std::to_string(record.partition) + ":" + std::to_string(record.offset);
}
}  // namespace

void PromptIntake::reject(const bus::Message& record, const std::string& id, const ContractError& error) {
  if (is_valid_request_id(id)) {
    // Recorded in Redis as a failed request, unless the id belongs to an existing request,
    // whose state is left alone; the same record delivered again is answered once.
    RequestRecord rec;
    rec.id = id;
    rec.status = RequestStatus::Error;
    rec.model = ctx_.config.model.name;
    rec.source = source_of(record);
    if (ctx_.requests->create(rec)) {
      ctx_.requests->set_error(id, error.code + ": " + error.message);
      ctx_.ended_undelivered.push_back(id);  // its error event is produced below
    } else if (std::optional<RequestRecord> old = ctx_.requests->load(id); old && old->source == rec.source) {
      ctx_.log_at(log::Level::Info, id, "prompt %s at %s delivered again; it was answered before", id.c_str(),
                  rec.source.c_str());
      return;
    }
  }
  ctx_.log_at(log::Level::Info, id, "prompt %s rejected: %s: %s", id.c_str(), error.code.c_str(),
              error.message.c_str());
  ctx_.metrics->request_failed(error.code);
  ctx_.outbox->produce(ctx_.config.results_topic(), id, error_event(id, error));  // the answer first
  ctx_.dead_letter(record, id, error);
}

std::optional<std::string> PromptIntake::rejected(const bus::Message& record, const std::string& id,
                                                  const ContractError& error) {
  reject(record, id, error);
  return std::nullopt;
}

std::optional<std::string> PromptIntake::handle(const bus::Message& record) {
  std::optional<std::string_view> key;
  if (!record.key.empty()) key = record.key;
  PromptParseResult parsed = parse_prompt_record(record.value, key);
  if (!parsed.ok()) return rejected(record, parsed.id, *parsed.error);
  const PromptRequest& req = *parsed.request;
  std::vector<int32_t> prompt;
  try {
    prompt = tokenize(req);
  } catch (const std::exception& e) {
    return rejected(record, req.id, {error_code::kInvalidRequest, e.what()});
  }
  if (prompt.empty())
    return rejected(record, req.id, {error_code::kInvalidRequest, "the prompt encodes to no tokens"});
  if (!req.logit_bias.empty() && static_cast<size_t>(req.logit_bias.rbegin()->first) >= ctx_.tokenizer->vocab_size())
    return rejected(record, req.id,
                    {error_code::kInvalidRequest, "logit_bias names token " + std::to_string(req.logit_bias.rbegin()->first) +
                                                      "; the vocabulary has " + std::to_string(ctx_.tokenizer->vocab_size()) + " tokens"});
  const int context = ctx_.engine->config().max_seq_len;
  if (static_cast<int>(prompt.size()) >= context)
    return rejected(record, req.id,
                  {error_code::kPromptTooLong, "prompt has " + std::to_string(prompt.size()) +
                                                   " tokens; the model's context is " + std::to_string(context)});
  RequestRecord rec;
  rec.id = req.id;
  rec.status = RequestStatus::Queued;
  rec.model = ctx_.config.model.name;
  rec.params = req;  // the RequestParams part
  if (!rec.params.seed) rec.params.seed = static_cast<uint64_t>(std::random_device{}()) << 16;  // recorded: replayable
  if (!rec.params.timeout_s) rec.params.timeout_s = ctx_.config.timeouts.request_s;
  if (req.is_chat()) rec.messages = req.to_json()["messages"];
  else rec.prompt = *req.prompt;
  rec.prompt_tokens = prompt;
  rec.source = source_of(record);
  if (!ctx_.requests->create(rec)) {
    std::optional<RequestRecord> old = ctx_.requests->load(req.id);
    if (old && old->source == rec.source) {
      // This very record, delivered again (a worker died before committing its offset). If no
      // token is out yet, its prefill steps may never have left: send them again (a copy that
      // did leave is absorbed: the last stage samples each generation index once).
      ctx_.log_at(log::Level::Info, req.id, "prompt %s at %s delivered again (request %s)", req.id.c_str(),
                  rec.source.c_str(), to_string(old->status));
      if (old->status == RequestStatus::Queued)
        for (ActivationMsg& step : prefill_steps(req.id, old->prompt_tokens, ctx_.config.batching.prefill_chunk))
          ctx_.send_to_stage(0, step);
      return std::nullopt;
    }
    return rejected(record, req.id,
                  {error_code::kDuplicateId, "request id '" + req.id + "' is already used (status " +
                                                 (old ? to_string(old->status) : "unknown") +
                                                 "); ids stay reserved for timeouts.finished_request_ttl_s"});
  }
  for (ActivationMsg& step : prefill_steps(req.id, prompt, ctx_.config.batching.prefill_chunk))
    ctx_.send_to_stage(0, step);
  ctx_.metrics->admitted.inc();
  ctx_.metrics->prompt_tokens.inc(static_cast<double>(prompt.size()));
  return req.id;
}

}  // namespace fleet
