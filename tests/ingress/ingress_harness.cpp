#include "ingress/ingress_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "test_support.h"

namespace fleet::test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

IngressProcess::IngressProcess(const std::string& config_path, const std::string& log_path,
                               const std::map<std::string, std::string>& env)
    : log_path_(log_path) {
  const std::string binary = std::string(FLEET_BINARY_DIR) + "/services/fleet-ingress/fleet-ingress";
  pid_ = fork();
  if (pid_ == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    execl(binary.c_str(), binary.c_str(), "--config", config_path.c_str(), "--host", "127.0.0.1", "--port", "0",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  if (pid_ < 0) throw std::runtime_error("fork failed");
  const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    std::smatch m;
    const std::string text = log();
    if (std::regex_search(text, m, listening)) {
      port_ = std::stoi(m[1].str());
      return;
    }
    if (!running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling its log for readiness
  }
  ADD_FAILURE() << "fleet-ingress did not start:\n" << log();
  throw std::runtime_error("fleet-ingress did not start");
}

IngressProcess::~IngressProcess() {
  if (pid_ > 0) stop();
}

bool IngressProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  return waitpid(pid_, &status, WNOHANG) == 0;
}

int IngressProcess::stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a child's exit
  }
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return -1;
}

std::string IngressProcess::log() const {
  std::ifstream f(log_path_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

namespace {
HttpResult to_result(const httplib::Result& r) {
  HttpResult out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.content_type = r->get_header_value("Content-Type");
  return out;
}
httplib::Headers auth(const std::string& key) {
  if (key.empty()) return {};
  return {{"Authorization", "Bearer " + key}};
}
}  // namespace

HttpResult http_post(int port, const std::string& path, const std::string& body, const std::string& api_key) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(180, 0);
  return to_result(c.Post(path.c_str(), auth(api_key), body, "application/json"));
}

HttpResult http_get(int port, const std::string& path, const std::string& api_key) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  return to_result(c.Get(path.c_str(), auth(api_key)));
}

std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == ':') continue;
    if (line.rfind("data: ", 0) == 0) out.push_back(line.substr(6));
    else out.push_back("!bad: " + line);
  }
  return out;
}

std::string sse_text(const std::vector<std::string>& data) {
  std::string text;
  for (const std::string& d : data) {
    if (d == "[DONE]" || d.rfind("!bad", 0) == 0) continue;
    auto j = nlohmann::json::parse(d, nullptr, false);
    if (!j.is_object() || !j.contains("choices")) continue;
    for (const auto& c : j["choices"]) {
      if (c.contains("text") && c["text"].is_string()) text += c["text"].get<std::string>();
      if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string())
        text += c["delta"]["content"].get<std::string>();
    }
  }
  return text;
}

std::string stories_chat_model_dir() {
  const std::string dir = scratch_dir("ingress-chat-model");
  for (const std::string& f : {stories_bin(), stories_tok()}) {
    const fs::path link = fs::path(dir) / fs::path(f).filename();
    std::error_code ec;
    fs::remove(link, ec);
    fs::create_symlink(f, link);
  }
  const nlohmann::json cfg = {
      {"chat_template",
       "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
       "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"}};
  std::ofstream(dir + "/tokenizer_config.json") << cfg.dump(2);
  std::ofstream(dir + "/chat_template.jinja") << cfg["chat_template"].get<std::string>();  // beside the tokenizer
  return dir;
}

std::string run_command(const std::string& command, int* status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

}  // namespace fleet::test
