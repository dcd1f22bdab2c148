#include "stage/heartbeat.h"

#include <cstdio>
#include <memory>

#include "hardware/hardware.h"
#include "log/log.h"

namespace fleet {

Heartbeat::Heartbeat(std::string redis_url, std::chrono::milliseconds ttl, std::function<WorkerInfo()> snapshot)
    : redis_url_(std::move(redis_url)), ttl_(ttl), snapshot_(std::move(snapshot)),
      hardware_(detect_hardware().to_json()) {
  RedisClient redis(redis_url_);
  Membership(redis, ttl_).register_worker(annotated());
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
    log::write(log::Level::Warn, me.worker_id, "",
               std::string("could not deregister (the entry expires with its TTL): ") + e.what());
  }
}

WorkerInfo Heartbeat::annotated() {
  WorkerInfo w = snapshot_();
  HardwareInfo now;
  detect_memory(&now);
  if (now.mem_available_bytes) hardware_["mem_available_bytes"] = now.mem_available_bytes;
  w.hardware = hardware_;
  const auto t = std::chrono::steady_clock::now();
  const int64_t rows = w.batch_stats.is_object() ? w.batch_stats.value("rows", int64_t{0}) : 0;
  const double dt = std::chrono::duration<double>(t - last_time_).count();
  if (last_rows_ >= 0 && dt > 0 && rows >= last_rows_) w.rows_per_s = static_cast<double>(rows - last_rows_) / dt;
  last_rows_ = rows;
  last_time_ = t;
  return w;
}

void Heartbeat::loop() {
  std::unique_ptr<RedisClient> redis;  // its own connection: one client per thread
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, ttl_ / 3, [this] { return stop_; })) {
    lock.unlock();
    WorkerInfo info = annotated();
    try {
      if (!redis) redis = std::make_unique<RedisClient>(redis_url_);
      Membership m(*redis, ttl_);
      if (!m.heartbeat(info)) m.register_worker(info);
    } catch (const std::exception& e) {
      log::write(log::Level::Warn, info.worker_id, "", std::string("heartbeat failed: ") + e.what());
      redis.reset();
    }
    lock.lock();
  }
}

}  // namespace fleet
