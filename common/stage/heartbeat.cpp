#include "stage/heartbeat.h"

#include <cstdio>
#include <memory>

namespace fleet {

Heartbeat::Heartbeat(std::string redis_url, std::chrono::milliseconds ttl, std::function<WorkerInfo()> snapshot)
    : redis_url_(std::move(redis_url)), ttl_(ttl), snapshot_(std::move(snapshot)) {
  RedisClient redis(redis_url_);
  Membership(redis, ttl_).register_worker(snapshot_());
  thread_ = std::thread([this] { loop(); });
}

Heartbeat::~Heartbeat() { stop(); }

void Heartbeat::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Heartbeat::deregister() {
  stop();
  WorkerInfo me = snapshot_();
  try {
    RedisClient redis(redis_url_);
    Membership(redis, ttl_).deregister(me.worker_id);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[%s] could not deregister (the entry expires with its TTL): %s\n", me.worker_id.c_str(),
                 e.what());
  }
}

void Heartbeat::loop() {
  std::unique_ptr<RedisClient> redis;  // its own connection: one client per thread
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, ttl_ / 3, [this] { return stop_; })) {
    lock.unlock();
    WorkerInfo info = snapshot_();
    try {
      if (!redis) redis = std::make_unique<RedisClient>(redis_url_);
      Membership m(*redis, ttl_);
      if (!m.heartbeat(info)) m.register_worker(info);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[%s] heartbeat failed: %s\n", info.worker_id.c_str(), e.what());
      redis.reset();
    }
    lock.lock();
  }
}

}  // namespace fleet
