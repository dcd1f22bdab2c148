#pragma once
// A real redis-server for one test: a free loopback port (bind port 0), launched as a
// child process without persistence, ready when PING answers (bounded polling), killed
// and reaped on destruction. Optionally with a password (--requirepass) and a unix socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fcntl.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "state/redis_client.h"

namespace fleet::test {

// A loopback TCP port that was free a moment ago (the kernel picks it).
inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a loopback socket to port 0");
  }
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

struct RedisServerOptions {
  std::string log_path;     // where the server's stdout/stderr go ("" = /dev/null)
  std::string password;     // --requirepass ("" = none)
  bool unix_socket = false;  // also listen on a unix socket (socket_path())
};

class RedisServer {
 public:
  // log_path: where the server's stdout/stderr go ("" = /dev/null).
  explicit RedisServer(const std::string& log_path = "") : RedisServer(RedisServerOptions{log_path, "", false}) {}
  explicit RedisServer(RedisServerOptions options) : options_(std::move(options)) {
    const std::string& log_path = options_.log_path;
    std::string last_error;
    for (int attempt = 0; attempt < 3; ++attempt) {  // the port may be taken in between
      port_ = free_loopback_port();
      launch(log_path);
      last_error = wait_ready(std::chrono::seconds(10));
      if (last_error.empty()) return;
      stop();
    }
    throw std::runtime_error("redis-server did not start: " + last_error);
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  // Without the password.
  std::string url(int db = 0) const { return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db); }
  // With the password (as given: tests use URL-safe ones here).
  std::string url_with_password(int db = 0) const {
    return "redis://:" + options_.password + "@127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }
  const std::string& socket_path() const { return socket_path_; }
  std::string socket_url(int db = 0) const { return "unix://" + socket_path_ + "?db=" + std::to_string(db); }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
  }

 private:
  void launch(const std::string& log_path) {
    std::string port = std::to_string(port_);
    std::vector<std::string> args = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no"};
    if (!options_.password.empty()) args.insert(args.end(), {"--requirepass", options_.password});
    if (options_.unix_socket) {
      socket_path_ = "/tmp/fleet-test-redis-" + std::to_string(::getpid()) + "-" + port + ".sock";
      args.insert(args.end(), {"--unixsocket", socket_path_, "--unixsocketperm", "700"});
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork() failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      int fd = ::open(log_path.empty() ? "/dev/null" : log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    pid_ = pid;
  }

  // "" when PING answers; otherwise why not.
  std::string wait_ready(std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    std::string last = "no answer";
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "redis-server exited early (is it installed? port taken?)";
      }
      try {
        RedisOptions opt;
        opt.connect_timeout = std::chrono::milliseconds(200);
        RedisClient c(options_.password.empty() ? url() : url_with_password(), opt);
        c.ping();
        return "";
      } catch (const std::exception& e) {
        last = e.what();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling interval
    }
    return "PING did not answer within the limit: " + last;
  }

  RedisServerOptions options_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::string socket_path_;
};

// Polls cond until it is true or `limit` passes; returns its last value.
template <typename Cond>
bool eventually(Cond cond, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace fleet::test
