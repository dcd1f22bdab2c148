#pragma once
// tests/ingress helpers: a fleet-ingress process (started on a free port, stopped with SIGTERM),
// HTTP calls to it, server-sent events parsed, and a stories260K model directory with a chat
// template (stories260K has none of its own).
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fleet::test {

class IngressProcess {
 public:
  // Starts build/services/fleet-ingress/fleet-ingress --config CONFIG --host 127.0.0.1 --port 0
  // with `env` added, and waits for its "listening on" line (a fatal failure if it exits first).
  IngressProcess(const std::string& config_path, const std::string& log_path,
                 const std::map<std::string, std::string>& env = {});
  ~IngressProcess();  // SIGTERM, then waits
  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  bool running();                // still alive (not exited)
  int stop();                    // SIGTERM; the exit status (-1: did not exit within 20 s)
  std::string log() const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

struct HttpResult {
  int status = 0;  // 0: no response (connection failed)
  std::string body;
  std::string content_type;
};

HttpResult http_post(int port, const std::string& path, const std::string& body, const std::string& api_key);
HttpResult http_get(int port, const std::string& path, const std::string& api_key);

// The "data: ..." payloads of an SSE body, in order ("[DONE]" included as is); lines that are
// neither data nor comments nor blank are returned as "!bad: <line>".
std::vector<std::string> sse_data(const std::string& body);
// The text of a streamed completion (choices[0].text or .delta.content of every chunk).
std::string sse_text(const std::vector<std::string>& data);

// A directory with links to stories260K.bin and tok512.bin and a tokenizer_config.json holding a
// ChatML chat template; returns it.
std::string stories_chat_model_dir();

// Runs `command` with /bin/sh; its stdout (the exit status in *status).
std::string run_command(const std::string& command, int* status);

}  // namespace fleet::test
