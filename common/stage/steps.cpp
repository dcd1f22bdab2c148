#include "stage/steps.h"

#include <algorithm>
#include <set>

namespace fleet {

uint64_t step_id(uint32_t nonce, int start_pos) {
  return (static_cast<uint64_t>(nonce) << 32) | static_cast<uint32_t>(start_pos);
}

std::vector<ActivationMsg> token_steps(const std::string& request_id, const std::vector<int32_t>& tokens, int from,
                                       int end, int chunk, bool sample, uint32_t generation_index, uint32_t nonce) {
  std::vector<ActivationMsg> steps;
  chunk = std::max(chunk, 1);
  for (int pos = from; pos < end; pos += chunk) {
    const int len = std::min(chunk, end - pos);
    ActivationMsg m;
    m.set_request_id(request_id);
    m.set_step(step_id(nonce, pos));
    m.set_start_pos(pos);
    m.set_n_tokens(len);
    m.set_sample(sample && pos + len == end);
    m.set_generation_index(generation_index);
    m.set_replayed(nonce != 0);
    set_token_ids(m, std::vector<int32_t>(tokens.begin() + pos, tokens.begin() + pos + len));
    steps.push_back(std::move(m));
  }
  return steps;
}

std::vector<ActivationMsg> prefill_steps(const std::string& request_id, const std::vector<int32_t>& prompt, int chunk) {
  return token_steps(request_id, prompt, 0, static_cast<int>(prompt.size()), chunk, true, 0, 0);
}

ActivationMsg replay_request(const ActivationMsg& lost, int cached, uint32_t nonce) {
  ActivationMsg r;
  r.set_request_id(lost.request_id());
  r.set_replay_request(true);
  r.set_step(step_id(nonce, cached));
  r.set_start_pos(cached);
  r.set_replay_end(lost.start_pos() + lost.n_tokens());
  r.set_sample(lost.sample());
  r.set_generation_index(lost.generation_index());
  return r;
}

ActivationMsg release_message(const std::string& request_id, bool cancel) {
  ActivationMsg r;
  r.set_request_id(request_id);
  r.set_step(UINT64_MAX);
  r.set_release(true);
  r.set_cancel(cancel);
  return r;
}

std::vector<Step> take_batch(std::deque<Step>& ready, int max_rows) {
  std::vector<Step> batch;
  std::deque<Step> rest;
  std::set<std::string> in_batch;
  int rows = 0;
  for (Step& s : ready) {
    const bool fits = rows == 0 || rows + s.msg.n_tokens() <= max_rows;
    const bool first_of_request = in_batch.insert(s.msg.request_id()).second;  // later steps wait for it
    if (fits && first_of_request) {
      rows += s.msg.n_tokens();
      batch.push_back(std::move(s));
    } else {
      rest.push_back(std::move(s));
    }
  }
  ready = std::move(rest);
  return batch;
}

}  // namespace fleet
