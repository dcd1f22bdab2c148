// The log set-up: text and JSON lines, the worker and request fields, levels from the settings
// and from FLEET_LOG_LEVEL / FLEET_LOG_FORMAT (which win).
#include <cstdlib>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "log/log.h"

namespace fleet::log {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("FLEET_LOG_LEVEL");
    ::unsetenv("FLEET_LOG_FORMAT");
  }
  void TearDown() override {
    ::unsetenv("FLEET_LOG_LEVEL");
    ::unsetenv("FLEET_LOG_FORMAT");
    setup(Settings{}, "");  // back to stderr: `out` dies with the test
  }
  std::ostringstream out;
};

TEST_F(LogTest, JsonLinesCarryWorkerRequestAndEscapedMessage) {
  setup({"info", "json"}, "svc", Style::Service, &out);
  write(Level::Warn, "s0-host-1-ab", "req-\"7\"", "prompt rejected: \"bad\"\n\tsecond line \x01 caf\xc3\xa9");
  write(Level::Info, "", "", "no request here");
  spdlog::info("through spdlog {}", 42);
  flush();
  const auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  const auto a = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(a.at("level"), "warning");
  EXPECT_EQ(a.at("worker"), "s0-host-1-ab");
  EXPECT_EQ(a.at("request"), "req-\"7\"");
  EXPECT_EQ(a.at("msg"), "prompt rejected: \"bad\"\n\tsecond line \x01 caf\xc3\xa9");
  EXPECT_TRUE(std::regex_match(a.at("ts").get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")))
      << a.at("ts");
  const auto b = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(b.at("worker"), "svc");  // the set-up's name when the event names none
  EXPECT_TRUE(b.at("request").is_null());
  const auto c = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(c.at("msg"), "through spdlog 42");
  EXPECT_EQ(c.at("level"), "info");
}

TEST_F(LogTest, TextLinesEndWithTheMessageAfterTheWorker) {
  setup({"info", "text"}, "svc", Style::Service, &out);
  write(Level::Info, "s1-h-2-cd", "r1", "ready");
  flush();
  const auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 1u);
  // tests/fleet's deployment and cli_test.sh find "[<worker-id>] ready" at the end of a line.
  EXPECT_TRUE(
      std::regex_match(lines[0], std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info \[s1-h-2-cd\] ready)")))
      << lines[0];
}

TEST_F(LogTest, CliStyleIsTheMessageAlone) {
  setup({"info", "text"}, "fleet", Style::Cli, &out);
  write(Level::Info, "", "", "fleet submit: request r1 -> p.prompts");
  flush();
  EXPECT_EQ(out.str(), "fleet submit: request r1 -> p.prompts\n");
}

TEST_F(LogTest, LevelFromSettingsFilters) {
  setup({"warn", "text"}, "svc", Style::Cli, &out);
  EXPECT_FALSE(enabled(Level::Info));
  write(Level::Info, "", "", "hidden");
  write(Level::Debug, "", "", "hidden too");
  write(Level::Error, "", "", "shown");
  flush();
  EXPECT_EQ(out.str(), "shown\n");
}

TEST_F(LogTest, EnvironmentWinsOverSettings) {
  ::setenv("FLEET_LOG_LEVEL", "error", 1);
  ::setenv("FLEET_LOG_FORMAT", "json", 1);
  setup({"debug", "text"}, "svc", Style::Service, &out);
  write(Level::Warn, "", "", "hidden");
  write(Level::Error, "w", "", "shown");
  flush();
  const auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 1u) << out.str();
  EXPECT_EQ(nlohmann::json::parse(lines[0]).at("msg"), "shown");
}

TEST_F(LogTest, BadValuesAreRefusedNamingWhereTheyCameFrom) {
  auto error_of = [&](const Settings& s) {
    try {
      setup(s, "svc", Style::Service, &out);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of({"loud", "text"}).find("log.level: 'loud'"), std::string::npos);
  EXPECT_NE(error_of({"info", "xml"}).find("log.format: 'xml'"), std::string::npos);
  ::setenv("FLEET_LOG_LEVEL", "verbose", 1);
  EXPECT_NE(error_of({"info", "text"}).find("FLEET_LOG_LEVEL: 'verbose'"), std::string::npos);
  EXPECT_EQ(parse_level("warning"), Level::Warn);
  EXPECT_EQ(parse_format("json"), Format::Json);
}

}  // namespace
}  // namespace fleet::log
