#include "ingress/result_router.h"

namespace fleet::ingress {

void ResultChannel::push(ResultEvent ev) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

std::deque<ResultEvent> ResultChannel::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return !events_.empty() || closed_; });
  std::deque<ResultEvent> out;
  out.swap(events_);
  return out;
}

void ResultChannel::close() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool ResultChannel::closed() const {
  std::lock_guard<std::mutex> lk(mu_);
  return closed_;
}

ResultRouter::ResultRouter(std::unique_ptr<bus::Consumer> consumer, std::function<void(const std::string&)> log)
    : consumer_(std::move(consumer)), log_(std::move(log)) {
  thread_ = std::thread([this] { run(); });
}

ResultRouter::~ResultRouter() { stop(); }

std::shared_ptr<ResultChannel> ResultRouter::open(const std::string& id) {
  auto ch = std::make_shared<ResultChannel>();
  std::lock_guard<std::mutex> lk(mu_);
  channels_[id] = ch;
  return ch;
}

void ResultRouter::close(const std::string& id) {
  std::lock_guard<std::mutex> lk(mu_);
  channels_.erase(id);
}

size_t ResultRouter::open_channels() const {
  std::lock_guard<std::mutex> lk(mu_);
  return channels_.size();
}

void ResultRouter::stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [id, ch] : channels_) ch->close();
  channels_.clear();
}

void ResultRouter::run() {
  int backoff_ms = 100;
  while (!stopping_.load()) {
    std::vector<bus::Message> batch;
    try {
      batch = consumer_->poll_batch(512, 100);
      backoff_ms = 100;
    } catch (const std::exception& e) {
      log_(std::string("results consumer: ") + e.what() + " (retrying)");
      for (int waited = 0; waited < backoff_ms && !stopping_.load(); waited += 50)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // backoff before polling again, not a sync
      backoff_ms = std::min(backoff_ms * 2, 5000);
      continue;
    }
    for (const bus::Message& m : batch) {
      std::shared_ptr<ResultChannel> ch;
      {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = channels_.find(m.key);
        if (it != channels_.end()) ch = it->second;
      }
      if (!ch) {
        ++skipped_;
        continue;
      }
      std::string why;
      std::optional<ResultEvent> ev = parse_result_event(m.value, &why);
      if (!ev || ev->id != m.key) {
        log_("unreadable result event for " + m.key + " at " + m.topic + "[" + std::to_string(m.partition) + "]@" +
             std::to_string(m.offset) + ": " + (ev ? "id differs from the key" : why));
        continue;
      }
      ++routed_;
      ch->push(std::move(*ev));
    }
  }
}

}  // namespace fleet::ingress
