#include "ingress/fleet_view.h"

namespace fleet::ingress {

bool FleetSnapshot::ready() const { return why_not_ready().empty(); }

std::string FleetSnapshot::why_not_ready() const {
  if (!error.empty()) return "cannot read the fleet's membership from Redis: " + error;
  for (size_t k = 0; k < live_per_stage.size(); ++k)
    if (live_per_stage[k] == 0) return "stage " + std::to_string(k) + " has no live worker";
  return "";
}

nlohmann::json FleetSnapshot::to_json(const std::string& model) const {
  nlohmann::json stages = nlohmann::json::array();
  for (size_t k = 0; k < live_per_stage.size(); ++k)
    stages.push_back({{"stage", k}, {"live_workers", live_per_stage[k]}});
  nlohmann::json ws = nlohmann::json::array();
  for (const WorkerInfo& w : workers) ws.push_back(worker_json(w, now_ms));
  nlohmann::json j = {{"model", model}, {"ready", ready()}, {"stages", stages}, {"workers", ws}};
  if (!ready()) j["why_not_ready"] = why_not_ready();
  return j;
}

FleetView::FleetView(std::string redis_url, std::string model, int stages, std::chrono::milliseconds ttl,
                     std::chrono::milliseconds max_age)
    : redis_url_(std::move(redis_url)), model_(std::move(model)), stages_(stages), ttl_(ttl), max_age_(max_age) {}

FleetSnapshot FleetView::snapshot() {
  std::lock_guard<std::mutex> lk(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (cached_ && now - read_at_ < max_age_) return *cached_;
  FleetSnapshot s;
  s.live_per_stage.assign(static_cast<size_t>(stages_), 0);
  try {
    if (!redis_) redis_.emplace(redis_url_);
    s.now_ms = redis_->server_time_ms();
    for (WorkerInfo& w : Membership(*redis_, ttl_).live_workers()) {
      if (w.model != model_) continue;
      if (w.stage >= 0 && w.stage < stages_) ++s.live_per_stage[static_cast<size_t>(w.stage)];
      s.workers.push_back(std::move(w));
    }
  } catch (const std::exception& e) {
    redis_.reset();  // reconnect on the next read
    s.error = e.what();
  }
  cached_ = s;
  read_at_ = now;
  return s;
}

}  // namespace fleet::ingress
